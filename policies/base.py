"""The policy contract: what a scheduling policy sees and what it returns.

A policy is written once and drives both engines (sim/ and live/). At a step
boundary the engine hands it a `RequestView` per request and asks for a sort key;
requests are served in ascending key order, ties broken by the engine with
`tie_key` (arrival time, then request id), never by heap or dict order.

The engine owns the mechanism (token budget, KV blocks, preemption) and the
per-request counters in `RequestView`; `RequestCounters` below is the one
implementation of how those counters move, shared by both engines so that a
policy sees the same numbers in the simulator and in vLLM.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

INF = math.inf


class PolicyError(ValueError):
    """A user mistake in a policy spec (unknown name, bad parameter)."""


@dataclass(slots=True)
class RequestView:
    """Per-request state a policy may read. Plain numbers only: no engine types.

    Counters (all maintained by the engine through `RequestCounters`):
    - tokens_generated: output tokens produced so far (kept across preemption).
    - steps_waiting: consecutive engine steps, since arrival or since it last ran,
      in which it was not scheduled. Reset to 0 in every step it runs.
    - steps_run: engine steps in which it was scheduled (prefill chunks included).
    - service_s: summed duration of the steps it was scheduled in (attained service).
    - waiting_since_s: time it last stopped running (or arrived); equals the time
      of its last scheduled step's end while it runs.
    - cached_tokens: prompt tokens found in the prefix cache when it was first scheduled
      (vLLM's num_cached_tokens); 0 before that, and without prefix caching. For a policy
      with probes_prefix_cache, an engine that can look into its cache gives a waiting
      request what it would hit if admitted now.
    """

    request_id: int
    arrival_s: float
    prompt_tokens: int
    # True output length. Oracle policies read it; None where the engine does not know it.
    output_tokens: int | None = None
    tokens_generated: int = 0
    steps_waiting: int = 0
    steps_run: int = 0
    service_s: float = 0.0
    waiting_since_s: float = 0.0
    preemptions: int = 0
    running: bool = False
    cached_tokens: int = 0
    # Predictor outputs and other numeric per-request features, by trace column name
    # (e.g. "score_opt125m": higher = shorter, as in the paper).
    features: Mapping[str, float] = field(default_factory=dict)

    @property
    def remaining_tokens(self) -> int | None:
        if self.output_tokens is None:
            return None
        return self.output_tokens - self.tokens_generated


def format_param(value: Any) -> str:
    """A parameter value as written in a spec (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def spec_string(name: str, params: Mapping[str, Any]) -> str:
    """`NAME[:key=value,...]`: the name, then every parameter that is not None, in order
    (the canonical spec of a policy or a router)."""
    items = [f"{k}={format_param(v)}" for k, v in params.items() if v is not None]
    return f"{name}:{','.join(items)}" if items else name


def true_length(r: RequestView, who: str) -> int:
    """r.output_tokens for an oracle policy, or a PolicyError naming the policy."""
    if r.output_tokens is None:
        raise PolicyError(f"{who} needs true output lengths; request {r.request_id} has none")
    return r.output_tokens


def tie_key(r: RequestView) -> tuple[float, int]:
    """The stable tie-breaker every engine appends to a policy's key."""
    return (r.arrival_s, r.request_id)


class Policy:
    """Base class of scheduling policies. Subclasses set `name` and override `key`.

    static_keys: True when a request's key depends only on fields that do not change
    while it waits (arrival, prompt, score, tokens_generated...). Engines may then keep
    the waiting queue in a heap keyed once on entry. Policies whose keys move while a
    request waits (aging, starvation promotion) set it False and report, through
    `horizon`, how long their order is guaranteed to hold.
    """

    name: ClassVar[str] = "base"
    static_keys: ClassVar[bool] = True
    # Fields of RequestView this policy needs that an engine might not have
    # ("output_tokens" for oracles, "features:<col>" for a score column).
    requires: ClassVar[tuple[str, ...]] = ()
    # True: the policy reads cached_tokens of waiting requests (engines probe the cache).
    probes_prefix_cache: ClassVar[bool] = False

    def key(self, r: RequestView, now_s: float) -> Any:
        """Sort key; lower is served first. Must be comparable across requests."""
        raise NotImplementedError

    def prepare(self, requests: Sequence[RequestView]) -> None:  # noqa: B027
        """Called once with every request of a trace before a run (optional).

        Policies that need the whole trace (approx-oracle calibrating its noise to a
        target tau) compute what they need here. Live mode calls it on the trace too.
        """

    def horizon(
        self, waiting: Sequence[RequestView], running: Sequence[RequestView], now_s: float
    ) -> tuple[float, float]:
        """(steps, seconds) for which the relative order of these requests cannot
        change, absent arrivals and completions, if running ones keep running and
        waiting ones keep waiting. Engines that skip steps must stop at this horizon
        and ask again. Default: never changes on its own.

        Precisely (the engines rely on exactly this): call key() for every request at
        now_s first; then at every later step boundary less than `steps` steps and less
        than `seconds` seconds ahead, over identical steps (each running request
        scheduled, each waiting one skipped), the order among waiting requests and the
        order among running requests are unchanged, and no waiting request gets ahead
        of a running one. A running request may overtake a waiting one (SRTF: its
        remaining length shrinks); that cannot change which requests run. An engine
        runs at least one step, so a horizon of 0 means "ask again after one step"."""
        return (INF, INF)

    def notes(self) -> list[str]:
        """What a user should know about how this policy met the trace it was prepared
        on (one line each; engines print them as warnings). Default: nothing."""
        return []

    def forget(self, request_id: int) -> None:  # noqa: B027
        """The request has left the engine (finished or aborted): drop any state kept
        for it, so that a long-running server does not grow (optional)."""

    def params(self) -> dict[str, Any]:
        """The spec parameters of this policy and their values, in declaration order
        (the dataclass fields declared with `policies.registry.param`)."""
        if not dataclasses.is_dataclass(self):
            return {}
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.init and "help" in f.metadata
        }

    def describe(self) -> str:
        """The spec string that rebuilds this policy (for outputs and provenance):
        the name, then every parameter that is not None, in declaration order."""
        return spec_string(self.name, self.params())

    def __repr__(self) -> str:
        return f"<Policy {self.describe()}>"


class RequestCounters:
    """How the counters in a RequestView move; the one implementation both engines use."""

    @staticmethod
    def on_scheduled(r: RequestView, steps: int, step_end_s: float, service_s: float) -> None:
        """r ran in `steps` consecutive steps, the last ending at step_end_s."""
        r.steps_run += steps
        r.steps_waiting = 0
        r.service_s += service_s
        r.waiting_since_s = step_end_s
        r.running = True

    @staticmethod
    def on_skipped(r: RequestView, steps: int) -> None:
        """r was present but not scheduled in `steps` consecutive steps."""
        r.steps_waiting += steps

    @staticmethod
    def on_preempted(r: RequestView, now_s: float) -> None:
        r.preemptions += 1
        r.running = False
        r.waiting_since_s = now_s
