"""Length-aware routing: place requests by their predicted output length.

No published simulator routes by a learned length prediction; this router does, from
the same predictions the scheduling policies read. Where predictions come from:
- col=output_tokens: the true length (an oracle);
- col=pred_tokens_<name>: a predictor's estimate in tokens;
- col=score_<name>: a ranking score (higher = shorter, as the paper's): it orders
  requests but says nothing of their size, so it only splits by quantile;
- tau=T[,seed=S]: approx-oracle (policies/approx_oracle.py) at Kendall's tau T: the same
  noisy keys as the policy with that tau and seed; the trace's true lengths are handed
  out in the order of those keys (the k-th smallest key gets the k-th smallest length),
  so the predictions are a permutation of the true lengths at the policy's tau, as
  vllm-ltr's approximate oracle shuffles true lengths.
Token predictions are rounded to whole tokens, at least 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from policies.approx_oracle import ApproxOracle
from policies.base import RequestView, true_length
from policies.registry import did_you_mean, param
from policies.routing.base import PrefixProbe, ReplicaLoad, Router, RouteRequest, RouterError
from policies.routing.load import least_loaded
from policies.routing.registry import register_router
from traces.schema import PRED_TOKENS_PREFIX, SCORE_PREFIX

TRUE_LENGTH = "output_tokens"
MODES = ("work", "split")
DEFAULT_QUANTILE = 0.5


@register_router("length")
@dataclass
class LengthAware(Router):
    """By predicted output length: least predicted outstanding work, or short/long apart.

    mode=work: each replica's outstanding work is the predicted output tokens of the
    requests the router sent it that have not finished (tracked through route and
    on_finish; no progress is seen in between); the least wins, the lowest index on ties.
    mode=split: replicas 0..short_replicas-1 serve requests predicted short (at most
    threshold_tokens, or at or below the trace's `quantile` of predictions), the others
    the rest; least-loaded (waiting x 4 + running) within each group.
    """

    mode: str = param("work", "work: least predicted outstanding tokens; split: short/long")
    col: str | None = param(None, "output_tokens (default), pred_tokens_* or score_* column")
    tau: float | None = param(None, "approx-oracle at this Kendall's tau instead of col")
    seed: int = param(0, "seed of approx-oracle's noise (with tau)")
    threshold_tokens: float | None = param(None, "split: short = predicted tokens <= this")
    quantile: float | None = param(None, "split: short = at or below this quantile (0.5)")
    short_replicas: int | None = param(None, "split: replicas 0..k-1 take the short (N//2)")

    _tokens: dict[int, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _threshold: float | None = field(default=None, init=False, repr=False, compare=False)
    _outstanding: dict[int, int] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _sent: dict[int, tuple[int, int]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise RouterError(
                f"length: unknown mode {self.mode!r}{did_you_mean(self.mode, list(MODES))}; "
                f"valid: {', '.join(MODES)}"
            )
        if self.tau is not None:
            if self.col is not None:
                raise RouterError("length: give col= or tau=, not both")
            if not -1.0 <= self.tau <= 1.0:
                raise RouterError(f"length: tau must be in [-1, 1], got {self.tau}")
        elif self.col is None:
            self.col = TRUE_LENGTH
        if self.col is not None and not (
            self.col == TRUE_LENGTH or self.col.startswith((PRED_TOKENS_PREFIX, SCORE_PREFIX))
        ):
            raise RouterError(
                f"length: col must be {TRUE_LENGTH}, {PRED_TOKENS_PREFIX}* or "
                f"{SCORE_PREFIX}*, got {self.col!r}"
            )
        split_only = {
            "threshold_tokens": self.threshold_tokens,
            "quantile": self.quantile,
            "short_replicas": self.short_replicas,
        }
        if self.mode == "work":
            given = [k for k, v in split_only.items() if v is not None]
            if given:
                raise RouterError(f"length: {', '.join(given)} only with mode=split")
            if self.ranks_only:
                raise RouterError(
                    f"length: mode=work needs token predictions ({TRUE_LENGTH}, "
                    f"{PRED_TOKENS_PREFIX}* or tau=); {self.col} only ranks: use mode=split"
                )
            return
        if self.threshold_tokens is not None:
            if self.quantile is not None:
                raise RouterError("length: give threshold_tokens= or quantile=, not both")
            if self.ranks_only:
                raise RouterError(
                    f"length: {self.col} ranks requests, it has no tokens: use quantile="
                )
        elif self.quantile is None:
            self.quantile = DEFAULT_QUANTILE
        if self.quantile is not None and not 0.0 < self.quantile < 1.0:
            raise RouterError(f"length: quantile must be in (0, 1), got {self.quantile}")
        if self.short_replicas is not None and self.short_replicas < 1:
            raise RouterError(f"length: short_replicas must be >= 1, got {self.short_replicas}")
        self._threshold = self.threshold_tokens

    @property
    def ranks_only(self) -> bool:
        """True for a score_* column: an order without a size."""
        return self.col is not None and self.col.startswith(SCORE_PREFIX)

    @property
    def requires(self) -> tuple[str, ...]:  # type: ignore[override]
        if self.col is None or self.col == TRUE_LENGTH:
            return (TRUE_LENGTH,)
        return (f"features:{self.col}",)

    def prepare(self, requests: Sequence[RequestView], num_replicas: int) -> None:
        self._outstanding.clear()
        self._sent.clear()
        self._tokens.clear()
        if self.tau is not None:
            self._tokens.update(_approx_oracle_tokens(requests, self.tau, self.seed))
        if self.mode == "split" and self.quantile is not None:
            if not requests:
                raise RouterError("length: quantile= needs a non-empty trace")
            values = np.array([self.length_value(r) for r in requests], dtype=float)
            self._threshold = float(np.quantile(values, self.quantile, method="lower"))
        else:
            self._threshold = self.threshold_tokens

    def predicted_tokens(self, r: RequestView) -> int:
        """The request's predicted output tokens (not for score_* columns)."""
        if self.tau is not None:
            try:
                return self._tokens[r.request_id]
            except KeyError:
                raise RouterError(
                    f"length: tau= needs prepare() on the trace (request {r.request_id})"
                ) from None
        if self.col == TRUE_LENGTH:
            return max(1, true_length(r, f"length:col={TRUE_LENGTH}"))
        return max(1, round(self._feature(r)))

    def length_value(self, r: RequestView) -> float:
        """What split compares: predicted tokens, or -score for a score_* column (so that,
        as for tokens, lower = shorter)."""
        if self.ranks_only:
            return -self._feature(r)
        return float(self.predicted_tokens(r))

    def _feature(self, r: RequestView) -> float:
        value = r.features.get(self.col) if self.col else None
        if value is None or math.isnan(value):
            raise RouterError(f"length: column {self.col!r} missing for request {r.request_id}")
        return value

    def outstanding_tokens(self, num_replicas: int) -> list[int]:
        """Predicted output tokens sent to each replica and not yet finished."""
        return [self._outstanding.get(i, 0) for i in range(num_replicas)]

    def route(
        self,
        request: RouteRequest,
        replicas: Sequence[ReplicaLoad],
        probe: PrefixProbe,
        now_s: float,
    ) -> int:
        if self.mode == "work":
            tokens = self.predicted_tokens(request.view)
            work = self.outstanding_tokens(len(replicas))
            index = min(range(len(replicas)), key=lambda i: (work[i], i))
            self._outstanding[index] = work[index] + tokens
            self._sent[request.view.request_id] = (index, tokens)
            return index
        num = len(replicas)
        if num == 1:
            return 0
        if self._threshold is None:
            raise RouterError("length: mode=split with quantile= needs prepare() on the trace")
        short = min(self.short_replicas or max(1, num // 2), num - 1)
        is_short = self.length_value(request.view) <= self._threshold
        group = range(short) if is_short else range(short, num)
        return least_loaded(replicas, among=group)

    def on_finish(self, request_id: int, replica: int, now_s: float) -> None:
        sent = self._sent.pop(request_id, None)
        if sent is not None:
            index, tokens = sent
            self._outstanding[index] -= tokens


def _approx_oracle_tokens(requests: Sequence[RequestView], tau: float, seed: int) -> dict[int, int]:
    """Request id -> the true length at the rank of its approx-oracle key (ties in the
    key by request id): a permutation of the true lengths ordered as the policy orders."""
    oracle = ApproxOracle(tau=tau, seed=seed)
    oracle.prepare(requests)
    keyed = sorted(requests, key=lambda r: (oracle.key(r, 0.0), r.request_id))
    lengths = sorted(max(1, true_length(r, "length:tau")) for r in requests)
    return {r.request_id: length for r, length in zip(keyed, lengths, strict=True)}
