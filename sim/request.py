"""One simulated request: mechanism state (tokens, blocks) and what it experienced."""

from __future__ import annotations

import math

from policies.base import RequestView

WAITING, RUNNING, SWAPPED, FINISHED, REJECTED, PENDING = range(6)


class SimRequest:
    """Plain state of one request; the engine moves it.

    num_computed: tokens whose KV is in the cache (0 after a recompute preemption).
    generated: output tokens produced so far (kept across preemption).
    A request in the decode phase that runs every step is kept lazily: its counters
    are (g0, c0, gen0) at step g0 and advance by one per engine step until the engine
    materializes it (see Engine._materialize).
    """

    __slots__ = (
        "idx",
        "view",
        "prompt",
        "output",
        "state",
        "num_computed",
        "generated",
        "blocks",
        "cpu_blocks",
        "decoding",
        "lazy",
        "g0",
        "c0",
        "gen0",
        "wait_from_g",
        "steps_run",
        "service_s",
        "version",
        "first_scheduled_s",
        "first_token_s",
        "finish_s",
        "last_token_s",
        "max_gap_s",
        "preemptions",
    )

    def __init__(self, idx: int, view: RequestView) -> None:
        self.idx = idx
        self.view = view
        self.prompt = view.prompt_tokens
        self.output = view.output_tokens
        self.state = PENDING
        self.num_computed = 0
        self.generated = 0
        self.blocks = 0
        self.cpu_blocks = 0
        # Past its prefill: each step it runs computes one token (kept across a swap).
        self.decoding = False
        self.lazy = False
        self.g0 = 0
        self.c0 = 0
        self.gen0 = 0
        self.wait_from_g = 0
        self.steps_run = 0
        self.service_s = 0.0
        self.version = 0
        self.first_scheduled_s = math.nan
        self.first_token_s = math.nan
        self.finish_s = math.nan
        self.last_token_s = math.nan
        self.max_gap_s = 0.0
        self.preemptions = 0

    @property
    def num_tokens(self) -> int:
        """Prompt plus generated tokens: what a (re)prefill must compute."""
        return self.prompt + self.generated
