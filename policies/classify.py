"""Length classes: the paper's classification baseline, ranking by a predicted bucket."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from policies.base import Policy, PolicyError, RequestView, true_length
from policies.registry import param, register

TRUE_LENGTH = "output_tokens"
# At or above this share of requests in one bucket, a run says the classes barely order.
ONE_BUCKET_SHARE = 0.9


@register("classify")
@dataclass
class Classify(Policy):
    """Smallest predicted length bucket first, FCFS within a bucket (LTR paper's classifier).

    The paper's baselines: 100-token buckets (`width=100`, the default) and 10 classes of
    820 tokens (`buckets=10,width=820`: longer outputs fall in the last class). With the
    default col=output_tokens the bucket comes from the true length: an ideal classifier.
    """

    width: float | None = param(None, "bucket width in tokens (default 100 unless percentile)")
    buckets: int | None = param(None, "number of buckets; the last one is open-ended")
    percentile: bool = param(False, "bucket edges at percentiles of the prepared lengths")
    col: str = param(TRUE_LENGTH, "pred_tokens_* column, or output_tokens (ideal classifier)")

    def __post_init__(self) -> None:
        if self.percentile:
            if self.width is not None:
                raise PolicyError("classify: give width= or percentile=true, not both")
            if self.buckets is None or self.buckets < 1:
                raise PolicyError("classify: percentile=true needs buckets=N (N >= 1)")
        elif self.width is None:
            self.width = 100.0
        if self.width is not None and not self.width > 0:
            raise PolicyError(f"classify: width must be > 0, got {self.width}")
        if self.buckets is not None and self.buckets < 1:
            raise PolicyError(f"classify: buckets must be >= 1, got {self.buckets}")
        self._edges: list[float] | None = None
        self._notes: list[str] = []

    @property
    def requires(self) -> tuple[str, ...]:  # type: ignore[override]
        return (TRUE_LENGTH,) if self.col == TRUE_LENGTH else (f"features:{self.col}",)

    def length(self, r: RequestView) -> float:
        """The (predicted) length this policy buckets."""
        if self.col == TRUE_LENGTH:
            return true_length(r, f"classify:col={TRUE_LENGTH}")
        value = r.features.get(self.col)
        if value is None or math.isnan(value):
            raise PolicyError(f"classify: column {self.col!r} missing for {r.request_id}")
        return value

    def prepare(self, requests: Sequence[RequestView]) -> None:
        lengths = [self.length(r) for r in requests]
        if self.percentile:
            if not lengths:
                raise PolicyError("classify: percentile=true needs a non-empty trace")
            qs = [100.0 * k / self.buckets for k in range(1, self.buckets)]
            self._edges = [float(e) for e in np.percentile(lengths, qs)]
        self._notes = self._one_bucket_note(requests)

    def _one_bucket_note(self, requests: Sequence[RequestView]) -> list[str]:
        """Buckets wider than most answers (the paper's 10 x 820 tokens on chat traces)
        put nearly every request in one class: the order is then almost FCFS's."""
        if not requests:
            return []
        counts = np.bincount([self.bucket(r) for r in requests])
        top = int(counts.argmax())
        share = counts[top] / len(requests)
        if share < ONE_BUCKET_SHARE:
            return []
        buckets = f"buckets={self.buckets}," if self.buckets is not None else ""
        if self.percentile:
            spec, where = f"classify:{buckets}percentile=true", f"bucket {top}"
        else:
            spec = f"classify:{buckets}width={self.width:g}"
            lo = top * self.width
            last = self.buckets is not None and top == self.buckets - 1
            span = f"{lo:g}+" if last else f"{lo:g}-{lo + self.width:g}"
            where = f"bucket {top} ({span} tokens)"
        return [
            f"{spec}: {share:.0%} of the trace's requests fall in {where}, so it orders "
            "them almost as fcfs does"
        ]

    def notes(self) -> list[str]:
        return list(self._notes)

    def bucket(self, r: RequestView) -> int:
        length = self.length(r)
        if self.percentile:
            if self._edges is None:
                raise PolicyError("classify: percentile=true needs prepare() on the trace")
            return bisect.bisect_right(self._edges, length)
        b = max(0, math.floor(length / self.width))
        return b if self.buckets is None else min(b, self.buckets - 1)

    def key(self, r: RequestView, now_s: float) -> int:
        return self.bucket(r)
