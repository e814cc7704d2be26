"""What a replay driver learns about each request, and the requests table it becomes."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from traces.results import PREFIX_REQUEST_COLUMNS, REQUEST_COLUMNS, add_derived_columns

NAN = math.nan
FINISHED, REJECTED, FAILED, UNFINISHED = "finished", "rejected", "failed", "unfinished"


@dataclass
class RequestRecord:
    """One request of a replay. Times are seconds from trace time 0 on the driver's
    monotonic clock; arrival_s is the traced arrival (a session's later turn: when it was
    sent, as the simulator records it), submit_s when it was sent. cached_tokens: vLLM's
    num_cached_tokens, -1 where the engine did not report it. output_ids: the answer's
    token ids, kept only where a session's next turn needs them (else None)."""

    request_id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    policy_id: int = -1  # the id the policy saw (row in policy order)
    submit_s: float = NAN
    queued_s: float = NAN  # when the engine core took it in (its QUEUED stamp)
    first_scheduled_s: float = NAN
    first_token_s: float = NAN
    finish_s: float = NAN
    tokens_generated: int = 0
    preemptions: int = 0
    max_token_gap_s: float = 0.0
    status: str = UNFINISHED
    error: str = ""
    last_token_s: float = NAN  # when the driver last received tokens
    cached_tokens: int = -1
    output_ids: list[int] | None = None

    def on_tokens(self, n: int, t: float, ids: list[int] | None = None) -> None:
        """n new output tokens (ids, where the backend has them) reached the driver at t:
        track first token and gaps."""
        if n <= 0:
            return
        if self.output_ids is not None and ids is not None:
            self.output_ids.extend(ids)
        if math.isnan(self.first_token_s):
            self.first_token_s = t
        elif t - self.last_token_s > self.max_token_gap_s:
            self.max_token_gap_s = t - self.last_token_s
        self.last_token_s = t
        self.tokens_generated += n

    def fail(self, status: str, error: str) -> None:
        if self.status != FINISHED:
            self.status = status
            self.error = self.error or error


def check_length(rec: RequestRecord) -> None:
    """A server may cut max_tokens to fit max_model_len: a short answer is not a finish."""
    if rec.tokens_generated != rec.output_tokens:
        raise RuntimeError(f"got {rec.tokens_generated} of {rec.output_tokens} output tokens")


LIVE_REQUEST_COLUMNS = ("policy_id", "submit_s", "queued_s", "error")


def requests_frame(records: list[RequestRecord]) -> pd.DataFrame:
    """The shared requests.parquet schema (traces/results.py) plus live-only columns."""
    names = [*REQUEST_COLUMNS, *PREFIX_REQUEST_COLUMNS, *LIVE_REQUEST_COLUMNS]
    df = pd.DataFrame([{k: getattr(r, k) for k in names} for r in records], columns=names)
    df = df.astype(
        {"request_id": "int64", "prompt_tokens": "int64", "output_tokens": "int64",
         "tokens_generated": "int64", "preemptions": "int64", "policy_id": "int64",
         "cached_tokens": "int64"}
    )
    return add_derived_columns(df)
