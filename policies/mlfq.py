"""Multi-level feedback queue: approximate SJF without any length prediction (FastServe)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from policies.base import INF, Policy, PolicyError, RequestView
from policies.registry import param, register

# Relative slack in boundary tests, so that a service of exactly one quantum written in
# decimal (0.03 s, 300 tokens * 1e-4 s) stays in its level despite float rounding.
_SLACK = 1.0 + 1e-9


@register("mlfq")
@dataclass
class MLFQ(Policy):
    """FastServe's skip-join multi-level feedback queue, demoting by attained service.

    Level p has time quantum quantum_s * growth**p; a request leaves a level once its
    service there exceeds the quantum (vllm-ltr vllm/core/mlfq_scheduler.py demotes when
    `process_time > base_quantum * threshold**priority`). Skip-join (FastServe, Wu et al.
    2023): a request joins the first level whose quantum covers its first iteration, here
    estimated as prompt_tokens * prefill_s_per_token (0 joins everyone at level 0, as
    vllm-ltr does). Key (level, arrival_s): FCFS within a level. Service is
    RequestView.service_s, so levels are a function of counters, the same in both engines.
    Defaults: quantum 0.03 s, x10 per level, the LTR paper's MLFQ settings (vllm-ltr's
    scripts ran 0.01 s x10 on ShareGPT, its `mlfq-base0.03` flag not being parsed, and
    0.03 s x2 on LMSYS). Unlike vllm-ltr, service past a quantum carries into the next
    level (theirs is dropped at demotion) and a level is FCFS (theirs puts requests that
    just ran at its front).
    """

    quantum_s: float = param(0.03, "time quantum of level 0, seconds")
    growth: float = param(10.0, "quantum ratio between adjacent levels (> 1)")
    prefill_s_per_token: float = param(
        1e-4, "prefill seconds per prompt token for skip-join (0: all join level 0)"
    )
    levels: int | None = param(None, "number of levels (none: unbounded); the last never demotes")

    def __post_init__(self) -> None:
        if not self.quantum_s > 0:
            raise PolicyError(f"mlfq: quantum_s must be > 0, got {self.quantum_s}")
        if not self.growth > 1:
            raise PolicyError(f"mlfq: growth must be > 1, got {self.growth}")
        if self.prefill_s_per_token < 0:
            raise PolicyError("mlfq: prefill_s_per_token must be >= 0")
        if self.levels is not None and self.levels < 1:
            raise PolicyError(f"mlfq: levels must be >= 1, got {self.levels}")

    def quantum(self, level: int) -> float:
        return self.quantum_s * self.growth**level

    def join_level(self, r: RequestView) -> int:
        """The first level whose quantum covers the estimated prefill time (skip-join)."""
        first_iteration_s = r.prompt_tokens * self.prefill_s_per_token
        level = 0
        if first_iteration_s > self.quantum_s * _SLACK:
            level = max(0, math.ceil(math.log(first_iteration_s / self.quantum_s, self.growth)))
            while level > 0 and self.quantum(level - 1) * _SLACK >= first_iteration_s:
                level -= 1
            while self.quantum(level) * _SLACK < first_iteration_s:
                level += 1
        return self._cap(level)

    def _cap(self, level: int) -> int:
        return level if self.levels is None else min(level, self.levels - 1)

    def _served_up_to(self, join: int, n: int) -> float:
        """Service after which a request that joined at `join` leaves level join + n - 1."""
        return self.quantum(join) * (self.growth**n - 1.0) / (self.growth - 1.0)

    def level_and_left(self, r: RequestView) -> tuple[int, float]:
        """(level, service seconds left in it) from the request's attained service."""
        join = self.join_level(r)
        s = r.service_s
        n = 1
        if s > self.quantum(join) * _SLACK:
            ratio = 1.0 + s * (self.growth - 1.0) / self.quantum(join)
            n = max(1, math.ceil(math.log(ratio, self.growth)))
            while n > 1 and self._served_up_to(join, n - 1) * _SLACK >= s:
                n -= 1
            while self._served_up_to(join, n) * _SLACK < s:
                n += 1
        level = join + n - 1
        if self.levels is not None and level >= self.levels - 1:
            return self.levels - 1, INF
        return level, max(0.0, self._served_up_to(join, n) - s)

    def key(self, r: RequestView, now_s: float) -> tuple[int, float]:
        return (self.level_and_left(r)[0], r.arrival_s)

    def horizon(
        self, waiting: Sequence[RequestView], running: Sequence[RequestView], now_s: float
    ) -> tuple[float, float]:
        """Seconds until the first running request uses up its quantum; waiting requests
        gain no service, so they never move."""
        left = min((self.level_and_left(r)[1] for r in running), default=INF)
        return (INF, max(0.0, left))
