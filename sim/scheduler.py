"""Schedulers: each step, decide what runs (vLLM V1's scheduler by default).

A scheduler owns the queues (waiting, running, swapped) and asks the KV cache manager
for blocks; `schedule()` returns the step's plan (the requests that compute tokens and
how many, besides the lazy decode set) and leaves running it to the engine, which hands
the step back through `update_from_output()` (tokens, prefill -> decode, finishes): the
scheduler alone moves requests between its queues. The policy enters in one place,
`rank()`. Mode "vllm-v1" (release 0.10+), as vllm/v1/core/sched/scheduler.py does it:
- the running requests go first: every decoding request computes one token, then
  running requests still in (chunked) prefill take what is left of
  max_num_batched_tokens; then waiting requests are admitted in the policy's order while
  budget, max_num_seqs and free KV blocks allow, stopping at the first that does not fit;
- a request holds ceil(computed tokens / block_size) blocks; when a running request
  cannot get a block, the lowest-ranked running request is preempted by recompute: its
  blocks are freed and it waits to prefill prompt and generated tokens anew. No waiting
  request is admitted in a step that preempted.
The paper's engine is sim/paper_scheduler.py.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import NamedTuple

from policies.base import Policy, RequestCounters, RequestView, tie_key
from sim.config import EngineConfig
from sim.decode_set import DecodeSet
from sim.kv_cache import KVCacheManager
from sim.request import FINISHED, RUNNING, SWAPPED, WAITING, SimRequest


@dataclass
class Clock:
    """The engine's position: the index of the next step and the time it starts."""

    g: int = 0
    now: float = 0.0


@dataclass(slots=True)
class StepPlan:
    """One step as scheduled: `work` are (request, tokens) outside the lazy decode set
    (prefill chunks, and decodes in the paper's engine), already given their blocks."""

    work: list[tuple[SimRequest, int]] = field(default_factory=list)
    preempted: int = 0
    swapped_blocks: int = 0
    cached_tokens: int = 0


class StepOutput(NamedTuple):
    """A step as the engine ran it: its index and when it started and ended (a named
    tuple: one is made per step, and a frozen dataclass costs several times more)."""

    g: int
    start_s: float
    end_s: float
    duration_s: float


class Scheduler:
    """What both modes share: queues, the policy's ranking, preemption, admission, and
    applying a step's output (`update_from_output`)."""

    # Whether the engine tries a decode stretch before planning a step (V1), or after
    # a step that repeats as one (the paper's engine, see repeats_as_stretch).
    stretch_before_plan = True
    # Whether running requests are re-ranked every step (their order can change a step).
    reranks_running = False

    def __init__(
        self,
        reqs: list[SimRequest],
        policy: Policy,
        config: EngineConfig,
        kv: KVCacheManager,
        decode: DecodeSet,
        clock: Clock,
    ) -> None:
        self.reqs = reqs
        self.policy = policy
        self.cfg = config
        self.kv = kv
        self.decode = decode
        self.clock = clock
        self.budget_tokens = config.max_num_batched_tokens
        self.max_seqs = config.max_num_seqs
        self.dynamic = not policy.static_keys
        self.has_horizon = type(policy).horizon is not Policy.horizon
        self.heap_waiting = not self.dynamic
        self.probe = policy.probes_prefix_cache and kv.enabled
        self.running: dict[int, SimRequest] = {}  # admission order
        self.prefilling: dict[int, SimRequest] = {}  # running, not in the lazy decode set
        self.waiting: dict[int, SimRequest] = {}
        self.waiting_heap: list = []  # static keys: (key, tie, idx, version)
        self.swapped: dict[int, SimRequest] = {}
        self.preemptions = 0

    # ------------------------------------------------------------- the policy
    def view(self, r: SimRequest) -> RequestView:
        """r's view brought up to the current step (lazy counters, skipped steps)."""
        v = r.view
        g = self.clock.g
        if r.lazy:
            self.decode.peek(r, g, self.clock.now)
        else:
            v.tokens_generated = r.generated
            if g > r.skip_from:
                RequestCounters.on_skipped(v, g - r.skip_from)
                r.skip_from = g
            v.running = r.state == RUNNING
        if self.probe and r.state == WAITING:
            v.cached_tokens = self.kv.lookup(r)[0] * self.kv.block_size
        else:
            v.cached_tokens = max(r.cached_tokens, 0)
        return v

    def rank(self, r: SimRequest):
        return (self.policy.key(self.view(r), self.clock.now), tie_key(r.view))

    def horizon(self) -> tuple[float, float]:
        waiting = [self.view(r) for r in self.waiting.values()]
        waiting += [self.view(r) for r in self.swapped.values()]
        running = [self.view(r) for r in self.running.values()]
        return self.policy.horizon(waiting, running, self.clock.now)

    # ---------------------------------------------------------------- queues
    def add_request(self, r: SimRequest) -> None:
        """A request the engine was given joins the waiting queue."""
        self.add_waiting(r)

    def add_waiting(self, r: SimRequest) -> None:
        r.state = WAITING
        self.waiting[r.idx] = r
        if self.heap_waiting:
            r.version += 1
            key = self.policy.key(self.view(r), self.clock.now)
            heapq.heappush(self.waiting_heap, (key, tie_key(r.view), r.idx, r.version))

    def waiting_order(self) -> list[SimRequest]:
        return sorted(self.waiting.values(), key=self.rank)

    def waiting_head(self) -> SimRequest | None:
        if not self.waiting:
            return None
        if self.dynamic:
            return min(self.waiting.values(), key=self.rank)
        h = self.waiting_heap
        while h:
            _, _, idx, ver = h[0]
            r = self.reqs[idx]
            if r.state == WAITING and r.version == ver:
                return r
            heapq.heappop(h)
        return None

    def take_waiting(self, r: SimRequest, from_heap: bool) -> None:
        del self.waiting[r.idx]
        if from_heap:
            heapq.heappop(self.waiting_heap)

    def has_work(self) -> bool:
        return bool(self.running or self.waiting or self.swapped)

    def unlazy_all(self) -> list[SimRequest]:
        out = [r for r in self.running.values() if r.lazy]
        for r in out:
            self.decode.leave(r, self.clock.g)
        return out

    # ------------------------------------------------------------ step output
    def update_from_output(self, plan: StepPlan, out: StepOutput) -> list[SimRequest]:
        """Apply a step that ran: tokens computed, first tokens, prefill -> decode, and
        finishes (also of lazy decoders whose last token fell in this step); returns the
        requests that finished, in order."""
        g, end = out.g, out.end_s
        done: list[SimRequest] = []
        for r, n in plan.work:
            if math.isnan(r.first_scheduled_s):
                r.first_scheduled_s = out.start_s
            r.num_computed += n
            RequestCounters.on_scheduled(r.view, 1, end, out.duration_s)
            r.skip_from = g + 1
            if r.num_computed == r.num_tokens:
                self.emit_token(r, end)
                if r.generated >= r.output:
                    self.finish(r, g + 1)
                    done.append(r)
                else:
                    self.prefilling.pop(r.idx, None)
                    self.decode.enter(r, g + 1)
        self.clock.g = g + 1
        for gc, r in self.decode.pop_completed(self.clock.g):
            self.finish(r, gc + 1)
            done.append(r)
        return done

    @staticmethod
    def emit_token(r: SimRequest, t: float) -> None:
        r.generated += 1
        if math.isnan(r.first_token_s):
            r.first_token_s = t
        else:
            gap = t - r.last_token_s
            if gap > r.max_gap_s:
                r.max_gap_s = gap
        r.last_token_s = t

    def finish(self, r: SimRequest, g: int) -> None:
        """r produced its last token; g: the step after its last one."""
        if r.lazy:
            self.decode.leave(r, g)
        r.state = FINISHED
        r.finish_s = r.last_token_s
        self.kv.release(r, keep_next_turn=r.successor >= 0)
        self.running.pop(r.idx, None)
        self.prefilling.pop(r.idx, None)
        self.policy.forget(r.view.request_id)

    # ------------------------------------------------------------- stretches
    def stretch_blocked(self) -> bool:
        """Whether the next step must be planned (V1: a waiting request could start)."""
        return self.admission_possible()

    def repeats_as_stretch(self, dispatch_due: bool) -> bool:
        """After a step without finishes: whether the next steps repeat it (the paper's
        engine; V1 asks before planning instead)."""
        return False

    # ------------------------------------------------------------ preemption
    def preempt(self, r: SimRequest, swap: bool = False) -> int:
        """Take r off the GPU, by recompute or by swap; returns the blocks swapped out."""
        if r.lazy:
            self.decode.leave(r, self.clock.g)
        self.running.pop(r.idx, None)
        self.prefilling.pop(r.idx, None)
        self.preemptions += 1
        RequestCounters.on_preempted(r.view, self.clock.now)
        r.skip_from = self.clock.g
        if swap:
            blocks = r.blocks
            self.kv.release(r)
            r.cpu_blocks = blocks
            r.state = SWAPPED
            self.swapped[r.idx] = r
            return blocks
        self.kv.release(r, keep_all=True)
        r.num_computed = 0
        r.decoding = False
        self.add_waiting(r)
        return 0

    # ------------------------------------------------------------- admission
    def fit_waiting(self, r: SimRequest, budget: int, free: int) -> tuple[int, int, int] | None:
        """(tokens, new blocks, blocks hit) if waiting request r can start now, else None."""
        hit, evictable = self.kv.lookup(r)
        computed = r.num_computed + hit * self.kv.block_size
        n = r.num_tokens - computed
        if not self.cfg.chunked_prefill and n > budget:
            return None
        n = min(n, budget)
        need = self.kv.blocks_for(computed + n) - r.blocks - hit
        if need + evictable > free:
            return None
        return n, need, hit

    def start(self, r: SimRequest, n: int, need: int, hit: int, plan: StepPlan) -> None:
        """r leaves the waiting queue for the GPU, with `hit` cached blocks, n tokens to
        compute this step and `need` fresh blocks."""
        if hit:
            self.kv.admit_hit(r, hit)
        if r.cached_tokens < 0:
            r.cached_tokens = hit * self.kv.block_size
        plan.cached_tokens += hit * self.kv.block_size
        self.kv.allocate(r, need, r.num_computed + n)
        r.state = RUNNING
        self.running[r.idx] = r
        plan.work.append((r, n))

    def admit(self, budget: int, plan: StepPlan) -> None:
        """Waiting requests in policy order while budget, seats and blocks allow."""
        if not self.waiting:
            return
        order = self.waiting_order() if self.dynamic else None
        i = 0
        while budget > 0 and len(self.running) < self.max_seqs:
            if order is None:
                r = self.waiting_head()
            else:
                r = order[i] if i < len(order) else None
            if r is None:
                break
            fit = self.fit_waiting(r, budget, self.kv.free)
            if fit is None:
                break
            self.take_waiting(r, from_heap=order is None)
            i += 1
            n, need, hit = fit
            self.start(r, n, need, hit, plan)
            self.prefilling[r.idx] = r
            budget -= n

    def admission_possible(self) -> bool:
        """Could a waiting request be admitted at this step (V1)?"""
        if not self.waiting or len(self.running) >= self.max_seqs:
            return False
        budget = self.budget_tokens - self.decode.n
        if budget <= 0:
            return False
        head = self.waiting_head()
        if head is None:
            return False
        free = self.kv.free - self.decode.allocations(self.clock.g)
        return self.fit_waiting(head, budget, free) is not None


class V1Scheduler(Scheduler):
    """vLLM V1: running requests first, then waiting ones; recompute preemption."""

    def schedule(self) -> StepPlan:
        plan = self._plan_without_preemption()
        return plan if plan is not None else self._plan_with_preemption()

    def _plan_without_preemption(self) -> StepPlan | None:
        """The step when every running request gets its blocks, else None (nothing changed)."""
        kv, g = self.kv, self.clock.g
        alloc = self.decode.allocations(g)
        free = kv.free - alloc
        if free < 0:
            return None
        budget = self.budget_tokens - self.decode.n
        chunks = []
        for r in self.prefilling.values():
            if budget == 0:
                break
            n = min(r.num_tokens - r.num_computed, budget)
            need = kv.blocks_for(r.num_computed + n) - r.blocks
            if need > free:
                return None
            free -= need
            budget -= n
            chunks.append((r, n, need))
        kv.take(alloc)
        plan = StepPlan()
        for r, n, need in chunks:
            kv.allocate(r, need, r.num_computed + n)
            plan.work.append((r, n))
        self.admit(budget, plan)
        return plan

    def _plan_with_preemption(self) -> StepPlan:
        """vLLM V1's loop over running requests, preempting the lowest-ranked ones."""
        kv, g = self.kv, self.clock.g
        decoders = self.unlazy_all()
        budget = self.budget_tokens
        reserved = 0  # the decoders' blocks, taken below through the decode set
        batch: dict[int, tuple[SimRequest, int, int, bool]] = {}
        preempted = 0
        for r in decoders + list(self.prefilling.values()):
            if r.state != RUNNING:
                continue
            if budget == 0:
                break
            n = min(r.num_tokens - r.num_computed, budget)
            need = kv.blocks_for(r.num_computed + n) - r.blocks
            while need > kv.free - reserved:
                victim = max(self.running.values(), key=self.rank)
                if victim.idx in batch:
                    _, vn, vneed, vdec = batch.pop(victim.idx)
                    budget += vn
                    if vdec:
                        reserved -= vneed
                self.preempt(victim)
                preempted += 1
                if victim is r:
                    break
            if r.state != RUNNING:
                continue
            is_decoder = r.idx not in self.prefilling
            if is_decoder:
                reserved += need
            else:
                kv.allocate(r, need, r.num_computed + n)
            batch[r.idx] = (r, n, need, is_decoder)
            budget -= n
        plan = StepPlan(preempted=preempted)
        for r, n, _, is_decoder in batch.values():
            if is_decoder:
                self.decode.enter(r, g)
            else:
                plan.work.append((r, n))
        kv.take(self.decode.allocations(g))
        if not preempted:
            self.admit(budget, plan)
        return plan
