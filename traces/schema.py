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
- hash_ids       list<int64>  prefix identity, one id per block of hash_block_tokens
                          prompt tokens (see below)
- session_id     int64    the session (conversation) a turn belongs to (see below)
- turn           int64    0-based turn within its session
- think_s        float64  think time before this turn (s); 0 for turn 0
- stage          int64    0-based --stages stage the request (its session) was sent in

Prefix identity (hash_ids). len(hash_ids) == ceil(prompt_tokens / hash_block_tokens) on
every row, and the file metadata key hash_block_tokens (int >= 1) is required with the
column. Equal id at equal position with equal predecessors means identical tokens up to
and including that block; for a partial last block, identical tokens and equal length.
Ids may be chained (each one depends on the ones before, as traces/prefix.py makes them
and vLLM hashes its blocks) or not (Mooncake's traces); a consumer compares the whole
run of ids up to a block, never one id alone. An engine maps the blocks onto its own
block_size; a trace without the column has no prefix hits.

Sessions (session_id, turn, think_s: all three or none). Within a session, turns are
0..n-1 in row order; for turn k > 0, prompt_tokens[k] >= prompt_tokens[k-1] +
output_tokens[k-1] (its prompt is the conversation so far), and with hash_ids its first
floor((prompt_tokens[k-1] + output_tokens[k-1]) / block) ids are the blocks of turn
k-1's prompt and output (reading checks the part the trace spells out: turn k-1's
complete prompt blocks). Turn 0's arrival_s comes from the arrival process; a later
turn's arrival_s is the open-loop estimate, turn k-1's arrival_s + think_s[k], and rows
stay sorted by arrival_s. Engines send turn k think_s after turn k-1 finishes instead,
so it hits the blocks of the earlier turns. The `prompt` column of a turn holds only
its own (newest) user message, which is what a length predictor reads; `response` is
that turn's reply.

File metadata (Parquet key b"ltrsched", JSON): schema_version, source, path,
tokenizer, seed, arrival (process and parameters), rows_read, rows_dropped
(reason -> count), truncated (bool), offset, limit, synthetic (true for a generated
workload such as lmsys-like, whose parameters sit under the key lmsys_like), and
optionally created_at, which `trace build` leaves out so that the same options and seed
give the same bytes; hash_block_tokens with hash_ids; sessions (turns, max_turns,
think_dist, num_sessions) with session columns; the stages (rate, duration_s, requests,
start_s) under arrival when the process is "stages".
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
    "hash_ids": "list<int64>",
    "session_id": "int64",
    "turn": "int64",
    "think_s": "float64",
    "stage": "int64",
}
SESSION_COLUMNS = ("session_id", "turn", "think_s")
HASH_BLOCK_TOKENS_KEY = "hash_block_tokens"
SCORE_PREFIX = "score_"
PRED_TOKENS_PREFIX = "pred_tokens_"
METADATA_KEY = b"ltrsched"
SCHEMA_VERSION = 1
