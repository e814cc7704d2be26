"""Scoring inside the server: the plug-in runs the length predictor on requests that
arrive without a score, as vllm-ltr does (once per request, at the first step after it
arrives), so a user's own `vllm serve` gets learning-to-rank with no client change.

The plug-in sees token ids, not text: the first ids of each new prompt are decoded with
the served model's tokenizer, templated and re-encoded by the predictor's own tokenizer
(policies/predictor), and all of a step's newcomers are scored in one batch on the
predictor's device before the step is ordered. The score lands in the request's
RequestView features (score_<predictor name>), which live as long as the request does,
so a preempted request keeps it.

Requests that carry a score keep it: a score_<name> feature in extra_args
(`vllm_xargs={"ltrsched.f.score_<name>": s}`), or a non-zero vLLM `priority` (lower
first, so the score is -priority; priority 0, the default, means "none").

A predictor that fails while serving never takes the server down: the requests of that
batch get the score +inf, so they are served first among themselves in arrival order
(FCFS for the affected requests; starvation prevention still protects the others), and
the first failure is logged once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from live.errors import LiveError
from policies.base import RequestView
from traces.schema import SCORE_PREFIX

log = logging.getLogger("ltrsched.live")

# Decode at most this many served-model ids per predictor token kept: the predictor
# cuts the prompt to max_prompt_tokens of its own tokens, so the tail is never read.
DECODE_IDS_PER_TOKEN = 4
FALLBACK_SCORE = float("inf")


@dataclass
class InServerScorer:
    """Scores newcomers in one batch per step; see the module docstring."""

    column: str
    predict: Callable[[list[str]], np.ndarray]  # prompt texts -> scores (higher: shorter)
    decode: Callable[[list[int]], str]  # served-model token ids -> text
    max_decode_ids: int = 8192
    pending: list[tuple[Any, RequestView]] = field(default_factory=list)
    failures: int = 0  # requests that fell back to arrival order
    first_error: str | None = None
    scored: int = 0
    seconds: float = 0.0  # total time in score_pending

    def offer(self, request: Any, view: RequestView) -> None:
        """A request entered the scheduler: keep its own score, else queue it."""
        if self.column in view.features:
            return
        priority = getattr(request, "priority", 0) or 0
        if priority:
            view.features[self.column] = -float(priority)
            return
        self.pending.append((request, view))

    def score_pending(self) -> tuple[int, float]:
        """Score every queued request in one batch; returns (how many, seconds)."""
        if not self.pending:
            return 0, 0.0
        t = time.perf_counter()
        batch, self.pending = self.pending, []
        try:
            texts = [self.decode(list(_prompt_ids(r)[: self.max_decode_ids])) for r, _ in batch]
            scores = np.asarray(self.predict(texts), dtype=np.float64)
            if scores.shape != (len(batch),) or not np.all(np.isfinite(scores)):
                raise ValueError(f"predictor gave {scores.shape} scores for {len(batch)} "
                                 "prompts, or non-finite ones")
        except Exception as e:  # noqa: BLE001 - the server must keep serving
            self._fail(e, len(batch))
            scores = np.full(len(batch), FALLBACK_SCORE)
        for (_, view), s in zip(batch, scores, strict=True):
            view.features[self.column] = float(s)
        dt = time.perf_counter() - t
        self.scored += len(batch)
        self.seconds += dt
        return len(batch), dt

    def _fail(self, e: Exception, n: int) -> None:
        self.failures += n
        if self.first_error is None:
            self.first_error = f"{type(e).__name__}: {e}"
            log.error("ltrsched plug-in: the predictor failed (%s); the %d request(s) of this "
                      "batch, and of any later failing batch, are served in arrival order "
                      "(this is logged once)", self.first_error, n)


def _prompt_ids(request: Any) -> Sequence[int]:
    ids = getattr(request, "prompt_token_ids", None)
    if ids is None:
        raise ValueError(f"request {request.request_id} has no prompt token ids "
                         "(prompt embeddings cannot be scored)")
    return ids


def load_scorer(predictor_dir: str, device: str, tokenizer: str | None,
                trust_remote_code: bool = False) -> InServerScorer:
    """The scorer for a predictor directory and the served model's tokenizer (a path or
    name vLLM resolved). LiveError with one line when either cannot be loaded: this runs
    at engine start, so a bad directory stops the server before it serves."""
    from policies.predictor.checkpoint import load_predictor
    from policies.predictor.errors import PredictorError
    from policies.predictor.scoring import score_prompts

    if tokenizer is None:
        raise LiveError("ltrsched plug-in: the served model has no tokenizer "
                        "(skip_tokenizer_init), so the predictor cannot read prompts; serve "
                        "a model directory with a tokenizer, or send scores with requests")
    try:
        predictor = load_predictor(predictor_dir, _resolve_device(device))
    except PredictorError as e:
        raise LiveError(f"ltrsched plug-in: predictor {e}") from None
    served = _load_tokenizer(tokenizer, trust_remote_code)
    name = Path(predictor_dir).resolve().name
    max_ids = DECODE_IDS_PER_TOKEN * predictor.max_prompt_tokens

    def predict(texts: list[str]) -> np.ndarray:
        return score_prompts(predictor, texts, batch_size=max(1, len(texts)))

    def decode(ids: list[int]) -> str:
        return served.decode(ids, skip_special_tokens=True)

    log.info("ltrsched plug-in: predictor %s (%s, %s) on %s scores requests without a "
             "score into %s%s", predictor_dir, predictor.info.get("backbone"),
             predictor.objective.spec.describe(), device, SCORE_PREFIX, name)
    return InServerScorer(SCORE_PREFIX + name, predict, decode, max_ids)


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _load_tokenizer(name: str, trust_remote_code: bool) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as e:
        raise LiveError(f"ltrsched plug-in: cannot load the served model's tokenizer "
                        f"{name} ({str(e).splitlines()[0]})") from None
