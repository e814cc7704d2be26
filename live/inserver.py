"""Scoring inside the server: the plug-in runs the length predictor on requests that
arrive without a score, as vllm-ltr does (once per request, at the first step after it
arrives), so a user's own `vllm serve` gets learning-to-rank with no client change.

The plug-in sees token ids, not text: the first ids of each new prompt are decoded with
the served model's tokenizer, templated and re-encoded by the predictor's own tokenizer
(predictor/), and all of a step's newcomers are scored in one batch on the
predictor's device before the step is ordered. The score lands in the request's
RequestView features (score_<predictor name>), which live as long as the request does,
so a preempted request keeps it.

A distributional predictor (`--loss nll` or `quantile`) also gives each request its
bin probabilities, dist_<name>_NN, so `gittins` and `serpt` run in the server too.

Requests that carry a score keep it: a score_* feature in extra_args
(`vllm_xargs={"ltrsched.f.score_<name>": s}`; any name, stored under the predictor's
column), or a non-zero vLLM `priority` (lower first, so the score is -priority;
priority 0, the default, means "none"). They get no distribution.

Two modes (`predictor_mode`):
- sync: score_pending() at the start of schedule() scores the newcomers before the step
  is ordered; the time is on the step's critical path (vLLM's AsyncScheduler, the GPU
  default, already runs schedule() while the previous step executes).
- overlap (default): the batch is handed to a scoring thread when a step has been
  scheduled, so it runs while the model executes the step (vLLM's model runs in its
  worker process or on the GPU); the next schedule() takes the scores that are ready
  without waiting. A request not yet scored is ordered after every scored one, in
  arrival order (it may still be admitted when there is room), and is ranked from the
  first step after its score lands.

A predictor that fails while serving never takes the server down: the requests it
failed on (a chunk of SCORE_CHUNK prompts, or one prompt that cannot be decoded) get
the score +inf, so they are served first, among themselves in arrival order (FCFS for
the affected requests; starvation prevention still protects the others), and the first
failure is logged once. Prompts are decoded from the ids the server holds, which
include any chat template the server applied: the predictor sees that text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from live.errors import LiveError
from policies.base import RequestView
from policies.lengthdist import NUM_BINS
from traces.schema import SCORE_PREFIX

log = logging.getLogger("ltrsched.live")

# Decode at most this many served-model ids per predictor token kept: the predictor
# cuts the prompt to max_prompt_tokens of its own tokens, so the tail is never read.
DECODE_IDS_PER_TOKEN = 4
FALLBACK_SCORE = float("inf")  # a request that could not be scored is served first
FALLBACK_DIST = np.eye(NUM_BINS)[0]  # all mass on the shortest length, likewise
SCORE_CHUNK = 64  # prompts per predictor forward pass
MODES = ("overlap", "sync")


@dataclass
class InServerScorer:
    """Scores newcomers in one batch per step; see the module docstring."""

    column: str
    # prompt texts -> (scores, higher = shorter; bin probabilities [n, NUM_BINS] or None)
    predict: Callable[[list[str]], tuple[np.ndarray, np.ndarray | None]]
    decode: Callable[[list[int]], str]  # served-model token ids -> text
    max_decode_ids: int = 8192
    dist_columns: list[str] | None = None  # a distributional predictor's dist_<name>_NN
    overlap: bool = False
    pending: list[tuple[Any, RequestView]] = field(default_factory=list)
    in_flight: tuple[Future, list[tuple[Any, RequestView]]] | None = None
    _pool: ThreadPoolExecutor | None = None
    failures: int = 0  # requests that fell back (FALLBACK_SCORE)
    first_error: str | None = None
    scored: int = 0
    seconds: float = 0.0  # total time in score_pending
    batch_s: float = 0.0  # compute time of the batch score_pending last applied

    def offer(self, request: Any, view: RequestView) -> None:
        """A request entered the scheduler: keep its own score, else queue it. A score
        it brings under another score_* name becomes this column (the only one, so that
        `ltr` without col= finds it)."""
        own = sorted(k for k in view.features if k.startswith(SCORE_PREFIX))
        if own:
            value = view.features.get(self.column, view.features[own[0]])
            for k in own:
                del view.features[k]
            view.features[self.column] = value
            return
        priority = getattr(request, "priority", 0) or 0
        if priority:
            view.features[self.column] = -float(priority)
            return
        self.pending.append((request, view))

    def score_pending(self) -> tuple[int, float]:
        """Sync mode: score every queued request in one batch now. Overlap mode: apply
        the scores of a finished batch, without waiting. Returns (requests scored,
        seconds spent here)."""
        t = time.perf_counter()
        if self.overlap:
            if self.in_flight is None or not self.in_flight[0].done():
                return 0, time.perf_counter() - t
            future, batch = self.in_flight
            self.in_flight = None
            scores, dists, self.batch_s = future.result()
        else:
            if not self.pending:
                return 0, 0.0
            batch, self.pending = self.pending, []
            scores, dists, self.batch_s = self._score(batch)
        for i, (_, view) in enumerate(batch):
            view.features[self.column] = float(scores[i])
            if self.dist_columns:
                # a fallback is the shortest possible request for gittins/serpt too
                p = dists[i] if dists is not None and np.isfinite(scores[i]) else FALLBACK_DIST
                view.features.update(zip(self.dist_columns, map(float, p), strict=True))
        self.scored += len(batch)
        dt = time.perf_counter() - t
        self.seconds += dt
        return len(batch), dt

    def start_scoring(self) -> None:
        """Overlap mode: hand the queued requests to the scoring thread (one batch at a
        time; newcomers wait for the next)."""
        if not self.overlap or not self.pending or self.in_flight is not None:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="ltrsched-score")
        batch, self.pending = self.pending, []
        self.in_flight = (self._pool.submit(self._score, batch), batch)

    def _score(self, batch: list[tuple[Any, RequestView]]
               ) -> tuple[np.ndarray, np.ndarray | None, float]:
        """Scores of the batch, bin probabilities (distributional predictors) and the
        seconds taken. Prompts go through the predictor SCORE_CHUNK at a time; a request
        that cannot be decoded, or whose chunk fails, gets FALLBACK_SCORE."""
        t = time.perf_counter()
        scores = np.full(len(batch), FALLBACK_SCORE)
        dists: np.ndarray | None = None
        texts: list[tuple[int, str]] = []
        for i, (request, _) in enumerate(batch):
            try:
                texts.append((i, self.decode(list(_prompt_ids(request)[: self.max_decode_ids]))))
            except Exception as e:  # noqa: BLE001 - the server must keep serving
                self._fail(e, 1)
        for start in range(0, len(texts), SCORE_CHUNK):
            chunk = texts[start : start + SCORE_CHUNK]
            idx = [i for i, _ in chunk]
            try:
                s, d = self.predict([x for _, x in chunk])
                s = np.asarray(s, dtype=np.float64)
                if s.shape != (len(chunk),) or not np.all(np.isfinite(s)):
                    raise ValueError(f"predictor gave {s.shape} scores for {len(chunk)} "
                                     "prompts, or non-finite ones")
            except Exception as e:  # noqa: BLE001
                self._fail(e, len(chunk))
                continue
            scores[idx] = s
            if d is not None:
                if dists is None:
                    dists = np.zeros((len(batch), np.shape(d)[1]))
                dists[idx] = d
        return scores, dists, time.perf_counter() - t

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _fail(self, e: Exception, n: int) -> None:
        self.failures += n
        if self.first_error is None:
            self.first_error = f"{type(e).__name__}: {e}"
            log.error("ltrsched plug-in: the predictor failed (%s); the %d request(s) "
                      "concerned, and any later ones it fails on, are served first, among "
                      "themselves in arrival order (this is logged once)", self.first_error, n)


def _prompt_ids(request: Any) -> Sequence[int]:
    ids = getattr(request, "prompt_token_ids", None)
    if ids is None:
        raise ValueError(f"request {request.request_id} has no prompt token ids "
                         "(prompt embeddings cannot be scored)")
    return ids


def load_scorer(predictor_dir: str, device: str, tokenizer: str | None,
                trust_remote_code: bool = False, mode: str = "overlap") -> InServerScorer:
    """The scorer for a predictor directory and the served model's tokenizer (a path or
    name vLLM resolved). LiveError with one line when either cannot be loaded: this runs
    at engine start, so a bad directory stops the server before it serves."""
    from policies.lengthdist import dist_columns
    from predictor.checkpoint import load_predictor
    from predictor.errors import PredictorError
    from predictor.scoring import predict_prompts

    if mode not in MODES:
        raise LiveError(f"ltrsched plug-in: predictor_mode {mode!r}: use one of "
                        f"{', '.join(MODES)}")
    if tokenizer is None:
        raise LiveError("ltrsched plug-in: the served model has no tokenizer "
                        "(skip_tokenizer_init), so the predictor cannot read prompts; serve "
                        "a model directory with a tokenizer, or send scores with requests")
    try:
        predictor = load_predictor(predictor_dir, _resolve_device(device))
    except PredictorError as e:
        raise LiveError(f"ltrsched plug-in: predictor {e}") from None
    except (RuntimeError, AssertionError, ValueError) as e:  # e.g. cuda on a CPU-only host
        raise LiveError(f"ltrsched plug-in: predictor {predictor_dir} on {device}: "
                        f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    served = _load_tokenizer(tokenizer, trust_remote_code)
    name = Path(predictor_dir).resolve().name
    max_ids = DECODE_IDS_PER_TOKEN * predictor.max_prompt_tokens

    def predict(texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        return predict_prompts(predictor, texts, batch_size=SCORE_CHUNK)

    def decode(ids: list[int]) -> str:
        return served.decode(ids, skip_special_tokens=True)

    log.info("ltrsched plug-in: predictor %s (%s, %s) on %s scores requests without a "
             "score into %s%s", predictor_dir, predictor.info.get("backbone"),
             predictor.objective.spec.describe(), device, SCORE_PREFIX, name)
    distributional = predictor.objective.spec.distributional
    return InServerScorer(SCORE_PREFIX + name, predict, decode, max_ids,
                          dist_columns=dist_columns(name) if distributional else None,
                          overlap=mode == "overlap")


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
