"""Learning to rank: serve in the order of a predictor's score, the paper's own policy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from policies.base import Policy, PolicyError, RequestView
from policies.registry import param, register
from traces.schema import SCORE_PREFIX


@register("ltr")
@dataclass
class LearnedRank(Policy):
    """Highest predicted score (= shortest) first: learning to rank (Fu et al. 2024, LTR).

    The score comes from a trace column, computed once per request, as vllm-ltr scores
    each request once, at the first step after it arrives, and then sorts waiting,
    running and swapped requests together by it every step (`_get_opt_ordered_requests`).
    """

    col: str | None = param(None, "score column (default: the trace's only score_* column)")

    def __post_init__(self) -> None:
        self._col: str | None = self.col

    @property
    def requires(self) -> tuple[str, ...]:  # type: ignore[override]
        return (f"features:{self._col or SCORE_PREFIX + '*'}",)

    def prepare(self, requests: Sequence[RequestView]) -> None:
        names = sorted({k for r in requests for k in r.features if k.startswith(SCORE_PREFIX)})
        if self.col is None:
            self._col = _only_score_column(names)
        for r in requests:
            if self._col not in r.features:
                raise PolicyError(
                    f"ltr: score column {self._col!r} missing (request {r.request_id}); "
                    f"score columns: {', '.join(names) or 'none'}"
                )
            if math.isnan(r.features[self._col]):
                # Views number requests by row in arrival order (policies.views), not
                # by the trace's request_id: say which, so "5" is not read as an id.
                raise PolicyError(
                    f"ltr: score column {self._col!r} is NaN in row {r.request_id} of the "
                    "trace (rows in arrival order, from 0)"
                )

    def key(self, r: RequestView, now_s: float) -> float:
        if self._col is None:  # not prepared: resolve from the first request seen
            self._col = _only_score_column(
                sorted(k for k in r.features if k.startswith(SCORE_PREFIX))
            )
        try:
            return -r.features[self._col]
        except KeyError:
            raise PolicyError(f"ltr: request {r.request_id} has no {self._col!r}") from None

    def params(self) -> dict[str, Any]:
        return {"col": self._col}


def _only_score_column(names: list[str]) -> str:
    if len(names) != 1:
        raise PolicyError(
            f"ltr: give col=, the trace has {len(names)} score columns: "
            f"{', '.join(names) or 'none'}"
        )
    return names[0]
