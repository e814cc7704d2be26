"""The discrete-event engine: a vLLM server stepping through a trace under a policy.

One SimPy process is the server. Each event runs one engine step (or, in fast mode,
a stretch of identical decode steps) and advances the clock by its modelled time.

Mechanism, in vLLM V1's terms (mode "vllm-v1", release 0.10+):
- each step the running requests go first: every decoding request computes one
  token, then running requests still in (chunked) prefill take what is left of
  max_num_batched_tokens; then waiting requests are admitted in the policy's order
  while budget, max_num_seqs and free KV blocks allow, stopping at the first that
  does not fit (vLLM's scheduler breaks there too);
- a request holds ceil(computed tokens / block_size) blocks; when a running request
  cannot get a block, the lowest-ranked running request (by the policy) is preempted
  by recompute: its blocks are freed and it waits to prefill prompt and generated
  tokens anew. No waiting request is admitted in a step that preempted.
Mode "ltr-paper" (vllm-ltr on vLLM 0.4.1): every step all requests are sorted
together; the batch fills in that order and stops at the first request that does not
fit; a request that needs blocks swaps out (or recomputes) the lowest-ranked resident
requests below it.

Time bookkeeping is exact and order-stable: step ends are summed one after another in
both modes, so fast mode and step-by-step mode give identical results.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable

import numpy as np
import simpy

from policies.base import Policy, RequestView, tie_key
from sim.config import EngineConfig
from sim.errors import SimError
from sim.profile import StepTimeProfile
from sim.request import FINISHED, REJECTED, RUNNING, SWAPPED, WAITING, SimRequest

MAX_STRETCH_STEPS = 1 << 14
MIN_STRETCH_STEPS = 8
LIVELOCK_STEPS = 50_000


class StepLog:
    """Per-step rows in growable numpy columns (a stretch appends many at once)."""

    COLUMNS = (
        "start_s",
        "duration_s",
        "prefill_tokens",
        "prefill_sq_tokens",
        "decode_requests",
        "decode_context_tokens",
        "running_requests",
        "waiting_requests",
        "kv_blocks_used",
        "preemptions",
        "swapped_blocks",
    )
    FLOAT = {"start_s", "duration_s"}

    def __init__(self, capacity: int = 4096) -> None:
        self.n = 0
        self.cols = {
            c: np.zeros(capacity, np.float64 if c in self.FLOAT else np.int64) for c in self.COLUMNS
        }
        self.end_s = np.zeros(capacity, np.float64)

    def _reserve(self, extra: int) -> None:
        need = self.n + extra
        cap = len(self.end_s)
        if need <= cap:
            return
        cap = max(need, cap * 2)
        for c, a in self.cols.items():
            b = np.zeros(cap, a.dtype)
            b[: self.n] = a[: self.n]
            self.cols[c] = b
        e = np.zeros(cap, np.float64)
        e[: self.n] = self.end_s[: self.n]
        self.end_s = e

    def append(self, **row) -> None:
        self._reserve(1)
        for c in self.COLUMNS:
            self.cols[c][self.n] = row[c]
        self.end_s[self.n] = row["end_s"]
        self.n += 1

    def extend(self, k: int, end_s: np.ndarray, **cols) -> None:
        self._reserve(k)
        s = slice(self.n, self.n + k)
        for c in self.COLUMNS:
            self.cols[c][s] = cols[c]
        self.end_s[s] = end_s
        self.n += k

    def frame_dict(self) -> dict[str, np.ndarray]:
        out = {"step": np.arange(self.n)}
        out.update({c: a[: self.n].copy() for c, a in self.cols.items()})
        return out


class Engine:
    """Runs one trace under one policy on one modelled server."""

    def __init__(
        self,
        views: list[RequestView],
        policy: Policy,
        profile: StepTimeProfile,
        config: EngineConfig,
        num_gpu_blocks: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        config.validate()
        self.cfg = config
        self.policy = policy
        self.profile = profile
        self.bs = config.block_size
        self.B = config.max_num_batched_tokens
        self.max_seqs = config.max_num_seqs
        self.total_blocks = num_gpu_blocks
        self.free = num_gpu_blocks
        self.paper = config.engine_mode == "ltr-paper"
        self.swap = self.paper and config.preemption != "recompute"
        self.dynamic = not policy.static_keys
        self.has_horizon = type(policy).horizon is not Policy.horizon
        self.progress = progress
        self.reqs = [SimRequest(i, v) for i, v in enumerate(views)]
        arr = np.array([v.arrival_s for v in views], dtype=np.float64)
        if len(arr) > 1 and (np.diff(arr) < 0).any():
            raise SimError("trace arrivals must be sorted by arrival_s")
        self.arrivals = arr
        self.next_arrival = 0
        self.now = 0.0
        self.g = 0  # index of the next step
        # Queues. running: admission order (dict keeps insertion order).
        self.running: dict[int, SimRequest] = {}
        self.prefilling: dict[int, SimRequest] = {}  # running, not in lazy decode
        self.waiting_heap: list = []  # static keys: (key, tie, idx, version)
        self.waiting_set: dict[int, SimRequest] = {}
        self.swapped: dict[int, SimRequest] = {}
        # Lazy decode aggregates.
        self.n_dec = 0
        self.ctx_a = 0  # sum over lazy decoders of (c0 - g0); context at step g = ctx_a + n_dec*g
        self.phase = np.zeros(self.bs, dtype=np.int64)
        self.completions: list = []  # (g_complete, idx, version)
        self.steps = StepLog()
        self.finished = 0
        self.rejected = 0
        self.preemptions = 0
        self.stopped_early = False
        self.wall_s = 0.0
        self.steps_without_token = 0

    # ----------------------------------------------------------------- helpers
    def _blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.bs)

    def _rank(self, r: SimRequest):
        return (self.policy.key(self._sync_view(r), self.now), tie_key(r.view))

    def _sync_view(self, r: SimRequest) -> RequestView:
        """Bring the policy's view of r up to the current step (lazy counters)."""
        v = r.view
        g = self.g
        if r.lazy:
            k = g - r.g0
            v.tokens_generated = r.gen0 + k
            v.steps_run = r.steps_run + k
            v.steps_waiting = 0
            v.service_s = r.service_s + (
                self.steps.end_s[g - 1] - self._start_of(r.g0) if k else 0.0
            )
            v.waiting_since_s = self.now
        else:
            v.tokens_generated = r.generated
            v.steps_run = r.steps_run
            v.steps_waiting = g - r.wait_from_g
            v.service_s = r.service_s
        v.preemptions = r.preemptions
        v.running = r.state == RUNNING
        return v

    def _start_of(self, g: int) -> float:
        return float(self.steps.cols["start_s"][g])

    # ------------------------------------------------------------ lazy decode
    def _enter_decode(self, r: SimRequest, g: int) -> None:
        r.decoding = True
        r.lazy = True
        r.g0, r.c0, r.gen0 = g, r.num_computed, r.generated
        self.n_dec += 1
        self.ctx_a += r.c0 - g
        self.phase[(g - r.c0) % self.bs] += 1
        r.version += 1
        g_done = g + (r.output - r.generated) - 1
        heapq.heappush(self.completions, (g_done, r.idx, r.version))

    def _materialize(self, r: SimRequest, g: int | None = None) -> None:
        """Fold the lazy decode steps g0..g-1 (g: now) into r's counters; stay lazy."""
        g = self.g if g is None else g
        k = g - r.g0
        if k <= 0:
            return
        ends = self.steps.end_s[r.g0 : g]
        if math.isnan(r.first_token_s):  # its last prefill token ran as a decode step
            r.first_token_s = float(ends[0])
            gap = float(np.max(np.diff(ends))) if k > 1 else 0.0
        else:
            gap = ends[0] - r.last_token_s
            if k > 1:
                gap = max(gap, float(np.max(np.diff(ends))))
        if gap > r.max_gap_s:
            r.max_gap_s = float(gap)
        r.last_token_s = float(ends[-1])
        r.view.waiting_since_s = r.last_token_s
        r.service_s += float(ends[-1]) - self._start_of(r.g0)
        r.num_computed = r.c0 + k
        r.generated = r.gen0 + k
        r.steps_run += k
        r.wait_from_g = g
        r.blocks = self._blocks_for(r.num_computed)
        # Rebase; (c0 - g0), the phase and ctx_a are unchanged by it.
        r.g0, r.c0, r.gen0 = g, r.num_computed, r.generated

    def _leave_decode(self, r: SimRequest, g: int | None = None) -> None:
        self._materialize(r, g)
        r.lazy = False
        self.n_dec -= 1
        self.ctx_a -= r.c0 - r.g0
        self.phase[(r.g0 - r.c0) % self.bs] -= 1
        r.version += 1

    def _unlazy_all(self) -> list[SimRequest]:
        out = [r for r in self.running.values() if r.lazy]
        for r in out:
            self._leave_decode(r)
        return out

    # ---------------------------------------------------------------- queues
    def _push_waiting(self, r: SimRequest) -> None:
        r.state = WAITING
        self.waiting_set[r.idx] = r
        if not self.dynamic and not self.paper:
            r.version += 1
            key = self.policy.key(self._sync_view(r), self.now)
            heapq.heappush(self.waiting_heap, (key, tie_key(r.view), r.idx, r.version))

    def _waiting_order(self) -> list[SimRequest]:
        """Waiting requests in policy order (only for dynamic policies)."""
        return sorted(self.waiting_set.values(), key=self._rank)

    def _waiting_head(self) -> SimRequest | None:
        if not self.waiting_set:
            return None
        if self.dynamic:
            return min(self.waiting_set.values(), key=self._rank)
        h = self.waiting_heap
        while h:
            _, _, idx, ver = h[0]
            r = self.reqs[idx]
            if r.state == WAITING and r.version == ver:
                return r
            heapq.heappop(h)
        return None

    def _pop_waiting(self, r: SimRequest) -> None:
        del self.waiting_set[r.idx]
        if not self.dynamic and not self.paper:
            heapq.heappop(self.waiting_heap)

    def _admit_arrivals(self) -> None:
        while self.next_arrival < len(self.reqs) and self.arrivals[self.next_arrival] <= self.now:
            r = self.reqs[self.next_arrival]
            self.next_arrival += 1
            r.wait_from_g = self.g
            r.view.waiting_since_s = r.view.arrival_s
            if self._never_fits(r):
                r.state = REJECTED
                self.rejected += 1
                continue
            self._push_waiting(r)

    def _never_fits(self, r: SimRequest) -> bool:
        total = r.prompt + r.output
        if self._blocks_for(total) > self.total_blocks:
            return True
        if self.cfg.max_model_len is not None and total > self.cfg.max_model_len:
            return True
        # Without chunked prefill vLLM requires max_model_len <= max_num_batched_tokens.
        return not self.cfg.chunked_prefill and total > self.B

    # ----------------------------------------------------------- preemption
    def _preempt(self, r: SimRequest) -> int:
        """Take r off the GPU (recompute, or swap in paper mode). Returns blocks swapped."""
        if r.lazy:
            self._leave_decode(r)
        self.running.pop(r.idx, None)
        self.prefilling.pop(r.idx, None)
        r.preemptions += 1
        self.preemptions += 1
        r.wait_from_g = self.g
        r.view.waiting_since_s = self.now
        swapped = 0
        if self.swap:
            r.cpu_blocks = r.blocks
            swapped = r.blocks
            r.state = SWAPPED
            self.swapped[r.idx] = r
        else:
            r.num_computed = 0
            r.decoding = False
            self._push_waiting(r)
        self.free += r.blocks
        r.blocks = 0
        return swapped

    # ------------------------------------------------------------- the step
    def _step(self) -> None:
        if self.paper:
            self._explicit_step_paper()
            return
        if self.cfg.fast_forward and self._try_stretch():
            return
        plan = self._plan_fast_v1()
        if plan is None:
            self._explicit_step_v1()
        else:
            self._apply(*plan)

    def _plan_fast_v1(self):
        """The step as planned without preemption, or None when one is needed."""
        g = self.g
        alloc = int(self.phase[g % self.bs])
        free = self.free - alloc
        if free < 0:
            return None
        budget = self.B - self.n_dec
        batch = []  # (r, tokens, new_blocks)
        for r in self.prefilling.values():
            if budget == 0:
                break
            n = min(r.num_tokens - r.num_computed, budget)
            need = self._blocks_for(r.num_computed + n) - r.blocks
            if need > free:
                return None
            free -= need
            budget -= n
            batch.append((r, n, need))
        admitted = self._admit_from_waiting(budget, free, len(self.running))
        return batch, admitted, alloc, 0, 0

    def _admit_from_waiting(self, budget: int, free: int, n_running: int):
        admitted = []
        order = None
        i = 0
        while budget > 0 and n_running + len(admitted) < self.max_seqs:
            if self.dynamic:
                if order is None:
                    order = self._waiting_order()
                if i >= len(order):
                    break
                r = order[i]
            else:
                r = self._waiting_head()
                if r is None:
                    break
            n = r.num_tokens - r.num_computed
            if not self.cfg.chunked_prefill and n > budget:
                break
            n = min(n, budget)
            need = self._blocks_for(r.num_computed + n) - r.blocks
            if need > free:
                break
            if order is None:
                self._pop_waiting(r)
            else:
                del self.waiting_set[r.idx]
                i += 1
            r.state = RUNNING
            self.running[r.idx] = r
            self.prefilling[r.idx] = r
            free -= need
            budget -= n
            admitted.append((r, n, need))
        return admitted

    def _explicit_step_v1(self) -> None:
        """vLLM V1's loop over running requests, with recompute preemption."""
        decoders = self._unlazy_all()
        budget = self.B
        batch: dict[int, tuple[SimRequest, int, int]] = {}
        preempted = 0
        order = decoders + list(self.prefilling.values())
        for r in order:
            if r.state != RUNNING:
                continue
            if budget == 0:
                break
            n = min(r.num_tokens - r.num_computed, budget)
            need = self._blocks_for(r.num_computed + n) - r.blocks
            while need > self.free:
                victim = max(self.running.values(), key=self._rank)
                if victim.idx in batch:
                    _, vn, vneed = batch.pop(victim.idx)
                    budget += vn
                    victim.blocks -= vneed
                    self.free += vneed
                self._preempt(victim)
                preempted += 1
                if victim is r:
                    break
            if r.state != RUNNING:
                continue
            self.free -= need
            r.blocks += need
            batch[r.idx] = (r, n, need)
            budget -= n
        decodes = [(r, n) for r, n, _ in batch.values() if r.idx not in self.prefilling]
        others = [b for b in batch.values() if b[0].idx in self.prefilling]
        admitted = (
            [] if preempted else self._admit_from_waiting(budget, self.free, len(self.running))
        )
        # Decoders rejoin the lazy set and run this step as lazy decoders do: their block
        # for this step comes back through the phase count.
        for r, _ in decodes:
            r.blocks -= batch[r.idx][2]
            self.free += batch[r.idx][2]
            self._enter_decode(r, self.g)
        alloc = int(self.phase[self.g % self.bs])
        self.free -= alloc
        for r, _n, need in admitted:
            r.blocks += need
            self.free -= need
        self._apply(others, admitted, alloc, preempted, 0, prealloc=True)

    def _explicit_step_paper(self) -> None:
        """vllm-ltr: sort everything together, fill in order, stop at the first misfit."""
        self._unlazy_all()
        self.prefilling.clear()
        cand = list(self.running.values()) + list(self.swapped.values())
        cand += list(self.waiting_set.values())
        order = sorted(cand, key=self._rank)
        pos = {r.idx: i for i, r in enumerate(order)}
        budget, seqs = self.B, 0
        chosen: list[tuple[SimRequest, int, int]] = []
        chosen_ids: set[int] = set()
        preempted = swapped_blocks = 0
        for r in order:
            if budget == 0 or seqs == self.max_seqs:
                break
            n = r.num_tokens - r.num_computed
            if n > 1 and not self.cfg.chunked_prefill and n > budget:
                break
            n = min(n, budget)
            swap_in = r.cpu_blocks if r.state == SWAPPED else 0
            held = swap_in or r.blocks
            new = self._blocks_for(r.num_computed + n) - held
            while swap_in + new > self.free:
                holders = [
                    h
                    for h in self.running.values()
                    if h.idx not in chosen_ids and pos[h.idx] > pos[r.idx] and h.blocks
                ]
                if not holders:
                    break
                victim = max(holders, key=lambda h: pos[h.idx])
                swapped_blocks += self._preempt(victim)
                preempted += 1
            if swap_in + new > self.free:
                break
            if r.state == SWAPPED:
                swapped_blocks += swap_in
                del self.swapped[r.idx]
                self.free -= swap_in
                r.blocks, r.cpu_blocks = swap_in, 0
                r.state = RUNNING
                self.running[r.idx] = r
            elif r.state == WAITING:
                del self.waiting_set[r.idx]
                r.state = RUNNING
                self.running[r.idx] = r
            need = new
            self.free -= need
            r.blocks += need
            chosen.append((r, n, need))
            chosen_ids.add(r.idx)
            budget -= n
            seqs += 1
        decodes = [c for c in chosen if c[0].decoding]
        others = [c for c in chosen if not c[0].decoding]
        for r, _n, need in decodes:
            r.blocks -= need
            self.free += need
            self._enter_decode(r, self.g)
        alloc = int(self.phase[self.g % self.bs])
        self.free -= alloc
        # Requests holding blocks but not chosen this step sit idle on the GPU.
        for r in self.running.values():
            if r.idx not in chosen_ids:
                self.prefilling[r.idx] = r
        for r, _, _ in others:
            self.prefilling[r.idx] = r
        steady = (
            not others and not preempted and not swapped_blocks and len(chosen) == len(self.running)
        )
        if steady and self.has_horizon:
            # The order this step used must still hold after it, or the next step differs.
            h_steps, h_s = self._horizon()
            until_s = self.now + h_s
        finished_before = self.finished
        self._apply(others, [], alloc, preempted, swapped_blocks, prealloc=True)
        steady = steady and self.finished == finished_before  # a finish frees room
        if steady and self.has_horizon:
            steady = h_steps > 1 and self.now < until_s
        if steady and self.cfg.fast_forward and self._paper_still_steady():
            self._try_stretch(paper=True)

    def _paper_still_steady(self) -> bool:
        # The fill stopped for a reason that decode steps cannot undo (order exhausted,
        # budget or seats full, or blocks short with nothing below to swap out), so the
        # same batch repeats while nothing arrives and nothing idles on the GPU.
        return (
            not self.prefilling
            and all(r.lazy for r in self.running.values())
            and (self.next_arrival >= len(self.reqs) or self.arrivals[self.next_arrival] > self.now)
        )

    def _apply(self, batch, admitted, alloc, preempted, swapped_blocks, prealloc=False) -> None:
        """Run one step: time it, log it, move tokens, finish what completes.

        prealloc: the caller already took the batch's new blocks from the pool."""
        g = self.g
        work = list(batch) + list(admitted)
        if not prealloc:
            self.free -= alloc
            for r, _, need in work:
                self.free -= need
                r.blocks += need
        prefill = sum(n for _, n, _ in work)
        prefill_sq = sum(n * n for _, n, _ in work)
        n_dec = self.n_dec
        ctx = self.ctx_a + n_dec * g
        dur = self.profile.step_time(prefill, prefill_sq, n_dec, ctx, swapped_blocks)
        start = self.now
        end = start + dur
        self.steps.append(
            start_s=start,
            duration_s=dur,
            end_s=end,
            prefill_tokens=prefill,
            prefill_sq_tokens=prefill_sq,
            decode_requests=n_dec,
            decode_context_tokens=ctx,
            running_requests=len(self.running),
            waiting_requests=len(self.waiting_set),
            kv_blocks_used=self.total_blocks - self.free,
            preemptions=preempted,
            swapped_blocks=swapped_blocks,
        )
        self.now = end
        self._check_progress(n_dec or any(r.num_computed + n == r.num_tokens for r, n, _ in work))
        for r, n, _ in work:
            if math.isnan(r.first_scheduled_s):
                r.first_scheduled_s = start
            r.num_computed += n
            r.steps_run += 1
            r.service_s += dur
            r.wait_from_g = g + 1
            r.view.waiting_since_s = end
            if r.num_computed == r.num_tokens:
                self._emit_token(r, end)
                if r.generated >= r.output:
                    self._finish(r)
                else:
                    self.prefilling.pop(r.idx, None)
                    self._enter_decode(r, g + 1)
        self.g = g + 1
        self._pop_completions()

    def _check_progress(self, token_made: bool) -> None:
        """Stop a run that produces no token for LIVELOCK_STEPS steps: some settings make
        no progress at all (e.g. recompute preemption with a starvation quantum shorter
        than a chunked prefill: each promoted request discards the last one's work)."""
        if token_made:
            self.steps_without_token = 0
            return
        self.steps_without_token += 1
        if self.steps_without_token >= LIVELOCK_STEPS:
            raise SimError(
                f"no progress: {LIVELOCK_STEPS} engine steps without a token at t="
                f"{self.now:.1f} s (policy {self.policy.describe()}, "
                f"{self.cfg.engine_mode}, preemption {self.cfg.preemption}); this setting "
                "livelocks, e.g. recompute preemption undoing chunked prefills"
            )

    def _emit_token(self, r: SimRequest, t: float) -> None:
        r.generated += 1
        if math.isnan(r.first_token_s):
            r.first_token_s = t
        else:
            gap = t - r.last_token_s
            if gap > r.max_gap_s:
                r.max_gap_s = gap
        r.last_token_s = t

    def _finish(self, r: SimRequest, g: int | None = None) -> None:
        """r produced its last token; g: the step after its last one (default: now)."""
        if r.lazy:
            self._leave_decode(r, g)
        r.state = FINISHED
        r.finish_s = r.last_token_s
        self.free += r.blocks
        r.blocks = 0
        self.running.pop(r.idx, None)
        self.prefilling.pop(r.idx, None)
        self.finished += 1

    def _pop_completions(self) -> None:
        h = self.completions
        while h and h[0][0] < self.g:
            gc, idx, ver = heapq.heappop(h)
            r = self.reqs[idx]
            if r.version == ver and r.lazy:
                self._finish(r, gc + 1)

    # ------------------------------------------------------- fast-forward
    def _next_completion_step(self) -> int | None:
        h = self.completions
        while h:
            g_done, idx, ver = h[0]
            r = self.reqs[idx]
            if r.version == ver and r.lazy:
                return g_done
            heapq.heappop(h)
        return None

    def _cum_alloc_limit(self) -> int:
        """Largest k such that the decoders' block allocations over steps g..g+k-1 fit."""
        total = int(self.phase.sum())
        if total == 0:
            return MAX_STRETCH_STEPS
        rot = np.roll(self.phase, -(self.g % self.bs))
        pre = np.concatenate(([0], np.cumsum(rot)))
        q, rem = divmod(self.free, total)
        i = int(np.searchsorted(pre, rem, side="right")) - 1
        return min(MAX_STRETCH_STEPS, q * self.bs + i)

    def _try_stretch(self, paper: bool = False) -> bool:
        """Run k > 1 decode-only steps in one event when nothing can change sooner.

        The batch is the lazy decoders. While requests wait, the stretch ends at the
        first completion (it may let one in); with nothing waiting it runs through
        completions, the batch shrinking at known steps. It also ends before a step whose
        block allocations would not fit, at the step that sees the next arrival, and at
        the policy's horizon."""
        if self.n_dec == 0 or self.prefilling:
            return False
        if not paper and self._admission_possible():
            return False
        g, now = self.g, self.now
        through = not self.waiting_set and not self.swapped and self.cfg.stop_after is None
        g_done = self._next_completion_step()
        k = MAX_STRETCH_STEPS
        if g_done is not None and not through:
            k = g_done - g + 1
        t_limit = math.inf
        if self.next_arrival < len(self.reqs):
            t_limit = float(self.arrivals[self.next_arrival])
        # Short stretches cost more in numpy than they save: leave them to plain steps.
        first = self.profile.step_time(0, 0, self.n_dec, self.ctx_a + self.n_dec * g, 0)
        if k < MIN_STRETCH_STEPS or t_limit - now < (MIN_STRETCH_STEPS - 1) * first:
            return False
        # A V1 stretch admits and preempts nothing, so a static-key policy's order can
        # only matter at its end; the paper's engine re-sorts running requests each step.
        if self.has_horizon and (paper or self.dynamic):
            h_steps, h_s = self._horizon()
            if h_steps < math.inf:
                k = min(k, int(h_steps))
            t_limit = min(t_limit, now + h_s)
        if t_limit < math.inf:  # room for the steps that fit before t_limit, and some
            k = min(k, int((t_limit - now) / first) * 2 + MIN_STRETCH_STEPS)
        if k <= 1:
            return False
        # Completions inside the window, in step order: (relative step, request).
        fin = self._completions_before(g + k)
        s_rel = np.array([gc - g for gc, _ in fin], dtype=np.int64)
        j = np.arange(k, dtype=np.int64)
        gone = np.searchsorted(s_rel, j, side="left")  # completed before step j
        n = self.n_dec - gone
        d_a = np.array([r.c0 - r.g0 for _, r in fin], dtype=np.int64)
        a = self.ctx_a - np.concatenate(([0], np.cumsum(d_a)))[gone]
        ctx = a + n * (g + j)
        alloc = np.resize(np.roll(self.phase, -(g % self.bs)), k)
        freed_after = np.zeros(k + 1, dtype=np.int64)  # blocks freed at the end of step j
        for (gc, r), sr in zip(fin, s_rel, strict=True):
            ph = (r.g0 - r.c0) % self.bs
            j1 = sr + 1 + (ph - (g + sr + 1)) % self.bs
            alloc[j1::self.bs] -= 1
            freed_after[sr] += self._blocks_for(r.c0 + gc + 1 - r.g0)
        free_before = (self.free - np.concatenate(([0], np.cumsum(alloc)[:-1]))
                       + np.concatenate(([0], np.cumsum(freed_after[:k - 1]))))
        short = np.flatnonzero((alloc > free_before) | (n == 0))  # no room, or no batch left
        if len(short):
            k = int(short[0])
        if k <= 1:
            self._restore_completions(fin)
            return False
        dur = self.profile.step_time(0, 0, n[:k], ctx[:k], 0)
        ends = np.add.accumulate(np.concatenate(([now], dur)))[1:]
        if t_limit < math.inf:
            k = min(k, int(np.searchsorted(ends, t_limit, side="left")) + 1)
            if k <= 1:
                self._restore_completions(fin)
                return False
        ends, dur = ends[:k], dur[:k]
        self.steps.extend(
            k, ends, start_s=np.concatenate(([now], ends[:-1])), duration_s=dur,
            prefill_tokens=0, prefill_sq_tokens=0, decode_requests=n[:k],
            decode_context_tokens=ctx[:k], running_requests=len(self.running) - gone[:k],
            waiting_requests=len(self.waiting_set),
            kv_blocks_used=self.total_blocks - free_before[:k] + alloc[:k],
            preemptions=0, swapped_blocks=0,
        )
        self.free -= int(alloc[:k].sum())
        self.now = float(ends[-1])
        self.g = g + k
        later = [(gc, r) for gc, r in fin if gc >= g + k]
        for gc, r in fin:
            if gc < g + k:
                self._finish(r, gc + 1)
        self._restore_completions(later)
        self._pop_completions()
        return True

    def _completions_before(self, g_end: int) -> list[tuple[int, SimRequest]]:
        """Pop the valid completions at steps < g_end, in step order."""
        out = []
        h = self.completions
        while h and h[0][0] < g_end:
            gc, idx, ver = heapq.heappop(h)
            r = self.reqs[idx]
            if r.version == ver and r.lazy:
                out.append((gc, r))
        return out

    def _restore_completions(self, fin: list[tuple[int, SimRequest]]) -> None:
        for gc, r in fin:
            heapq.heappush(self.completions, (gc, r.idx, r.version))

    def _horizon(self) -> tuple[float, float]:
        waiting = [self._sync_view(r) for r in self.waiting_set.values()]
        waiting += [self._sync_view(r) for r in self.swapped.values()]
        running = [self._sync_view(r) for r in self.running.values()]
        return self.policy.horizon(waiting, running, self.now)

    def _admission_possible(self) -> bool:
        """Could a waiting request be admitted at step g (V1 mode)?"""
        if not self.waiting_set or len(self.running) >= self.max_seqs:
            return False
        budget = self.B - self.n_dec
        if budget <= 0:
            return False
        head = self._waiting_head()
        if head is None:
            return False
        n = head.num_tokens - head.num_computed
        if not self.cfg.chunked_prefill and n > budget:
            return False
        need = self._blocks_for(head.num_computed + min(n, budget))
        return need <= self.free - int(self.phase[self.g % self.bs])

    # -------------------------------------------------------------- running
    def _has_work(self) -> bool:
        return bool(self.running or self.waiting_set or self.swapped)

    def process(self, env: simpy.Environment):
        """The server, as one SimPy process: idle until an arrival, else step."""
        t0 = time.perf_counter()
        n = len(self.reqs)
        last_report = 0
        while True:
            self._admit_arrivals()
            if self.cfg.stop_after is not None and self.finished >= self.cfg.stop_after:
                self.stopped_early = self.finished < n - self.rejected
                break
            if not self._has_work():
                if self.next_arrival >= n:
                    break
                self.now = float(self.arrivals[self.next_arrival])
                yield env.timeout(max(0.0, self.now - env.now))
                continue
            self._step()
            if self.progress is not None and self.finished - last_report >= 256:
                last_report = self.finished
                self.progress(self.finished + self.rejected, n)
            yield env.timeout(max(0.0, self.now - env.now))
        self.wall_s = time.perf_counter() - t0

    def run(self) -> Engine:
        env = simpy.Environment()
        self.policy.prepare([r.view for r in self.reqs])
        env.process(self.process(env))
        env.run()
        if self.progress is not None:
            self.progress(self.finished + self.rejected, len(self.reqs))
        return self
