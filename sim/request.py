"""One simulated request: mechanism state (tokens, blocks) and what it experienced."""

from __future__ import annotations

import math

from policies.base import RequestView

WAITING, RUNNING, SWAPPED, FINISHED, REJECTED, PENDING = range(6)


class SimRequest:
    """Plain state of one request; the scheduler and the engine move it.

    The policy-visible counters (steps run and waited, service, preemptions) live in
    `view` and move only through policies.base.RequestCounters.
    num_computed: tokens whose KV is in the cache (0 after a recompute preemption).
    generated: output tokens produced so far (kept across preemption).
    A decoding request that runs every step is kept lazily (sim/decode_set.py): its
    counters are (g0, c0, gen0) at step g0 and advance by one per engine step; the view's
    steps_run and service_s were steps_run0 and service0 then.
    held / registered / self_cached: its cached blocks (sim/kv_cache.py).
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
        "steps_run0",
        "service0",
        "skip_from",
        "version",
        "first_scheduled_s",
        "first_token_s",
        "finish_s",
        "last_token_s",
        "max_gap_s",
        "cached_tokens",
        "held",
        "keys",
        "registered",
        "self_cached",
        "successor",
        "think_s",
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
        self.steps_run0 = 0
        self.service0 = 0.0
        self.skip_from = 0  # steps from here on that it is not scheduled count as waiting
        self.version = 0
        self.first_scheduled_s = math.nan
        self.first_token_s = math.nan
        self.finish_s = math.nan
        self.last_token_s = math.nan
        self.max_gap_s = 0.0
        self.cached_tokens = -1  # prefix-cache hit when first scheduled (vLLM's num_cached_tokens)
        self.held: list[tuple[int, int]] = []
        self.keys: list[int] | None = None  # its block keys, once the cache needs them
        self.registered = 0
        self.self_cached = False
        self.successor = -1  # the next turn of its session, released when this one finishes
        self.think_s = 0.0

    @property
    def num_tokens(self) -> int:
        """Prompt plus generated tokens: what a (re)prefill must compute."""
        return self.prompt + self.generated
