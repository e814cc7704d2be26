"""The trace schema: one row per request, stored as Parquet with metadata.

Required columns
- request_id     int64    unique within the trace, stable across reruns
- arrival_s      float64  seconds from the trace's start, non-decreasing
- prompt_tokens  int64    >= 1
- output_tokens  int64    >= 1, the true (traced) output length

Optional columns
- prompt         string   first-turn prompt text (needed to train or run a predictor)
- response       string   first response text
- source         string   dataset the row came from
- record_id      string   the row's id in its source (conversation id, line number)
- score_<name>   float64  a predictor's score; higher = predicted shorter (paper's sign)
- pred_tokens_<name> float64 a predictor's estimate of output_tokens
- category       string   task category of a generated request (lmsys-like)
- len_mu         float64  the log-normal mu its output_tokens was drawn from (ln tokens)
- len_sigma      float64  the log-normal sigma of that draw (lmsys-like)

File metadata (Parquet key b"ltrsched", JSON): schema_version, source, path,
tokenizer, seed, arrival (process and parameters), rows_read, rows_dropped
(reason -> count), truncated (bool), offset, limit, synthetic (true for a generated
workload such as lmsys-like, whose parameters sit under the key lmsys_like), and
optionally created_at, which `trace build` leaves out so that the same options and seed
give the same bytes.
Drop reasons and the other keys `trace build` writes are listed in traces/records.py
and traces/build.py.
"""

REQUIRED_COLUMNS: dict[str, str] = {
    "request_id": "int64",
    "arrival_s": "float64",
    "prompt_tokens": "int64",
    "output_tokens": "int64",
}
OPTIONAL_COLUMNS: dict[str, str] = {
    "prompt": "string",
    "response": "string",
    "source": "string",
    "record_id": "string",
    "category": "string",
    "len_mu": "float64",
    "len_sigma": "float64",
}
SCORE_PREFIX = "score_"
PRED_TOKENS_PREFIX = "pred_tokens_"
METADATA_KEY = b"ltrsched"
SCHEMA_VERSION = 1
