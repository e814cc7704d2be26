"""The engine loop: a vLLM server stepping through a trace under a policy.

One SimPy process is the server, as vLLM's EngineCore: each step it asks the scheduler
for a plan (sim/scheduler.py, sim/paper_scheduler.py), times the plan with the step-time
profile, logs it and moves tokens, finishing the requests that complete. Between
decision points identical decode steps run as one event (a stretch, sim/decode_set.py).
Step ends are summed one after another in both cases, so fast mode and step-by-step mode
give identical results.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import simpy

from policies.base import Policy, RequestCounters, RequestView
from sim.arrivals import ArrivalQueue
from sim.config import EngineConfig
from sim.decode_set import DecodeSet
from sim.errors import SimError
from sim.kv_cache import KVCacheManager
from sim.paper_scheduler import PaperScheduler
from sim.prefix_keys import KeyTable
from sim.profile import StepTimeProfile
from sim.request import FINISHED, REJECTED, SimRequest
from sim.scheduler import Clock, StepPlan, V1Scheduler
from sim.step_log import StepLog

MAX_STRETCH_STEPS = 1 << 14
MIN_STRETCH_STEPS = 8
LIVELOCK_STEPS = 50_000


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
        keys: KeyTable | None = None,
        successor: np.ndarray | None = None,
        think_s: np.ndarray | None = None,
    ) -> None:
        config.validate()
        self.cfg = config
        self.policy = policy
        self.profile = profile
        self.progress = progress
        self.reqs = [SimRequest(i, v) for i, v in enumerate(views)]
        n = len(views)
        arr = np.array([v.arrival_s for v in views], dtype=np.float64)
        if n > 1 and (np.diff(arr) < 0).any():
            raise SimError("trace arrivals must be sorted by arrival_s")
        succ = successor if successor is not None else np.full(n, -1, np.int64)
        held = np.zeros(n, bool)
        held[succ[succ >= 0]] = True
        for r in self.reqs:
            r.successor = int(succ[r.idx])
            if think_s is not None:
                r.think_s = float(think_s[r.idx])
        self.has_sessions = bool(held.any())
        self.arrivals = ArrivalQueue(arr, held, getattr(profile, "request_overhead_s", 0.0))
        self.clock = Clock()
        self.steps = StepLog()
        totals = np.array([v.prompt_tokens + v.output_tokens for v in views], np.int64)
        self.kv = KVCacheManager(
            num_gpu_blocks,
            config.block_size,
            config.prefix_caching_enabled(),
            keys,
            succ,
            totals,
        )
        self.decode = DecodeSet(self.reqs, config.block_size, self.steps)
        sched = PaperScheduler if config.engine_mode == "ltr-paper" else V1Scheduler
        self.scheduler = sched(self.reqs, policy, config, self.kv, self.decode, self.clock)
        self.paper = isinstance(self.scheduler, PaperScheduler)
        self.finished = 0
        self.rejected = 0
        self.stopped_early = False
        self.wall_s = 0.0
        self.steps_without_token = 0

    @property
    def now(self) -> float:
        return self.clock.now

    @property
    def preemptions(self) -> int:
        return self.scheduler.preemptions

    # -------------------------------------------------------------- arrivals
    def _admit_arrivals(self) -> None:
        for idx in self.arrivals.due(self.clock.now):
            r = self.reqs[idx]
            r.skip_from = self.clock.g
            r.view.waiting_since_s = r.view.arrival_s
            if self._never_fits(r):
                r.state = REJECTED
                self.rejected += 1
                self._release_next_turn(r, r.view.arrival_s)
                continue
            self.scheduler.add_waiting(r)

    def _never_fits(self, r: SimRequest) -> bool:
        total = r.prompt + r.output
        if self.kv.blocks_for(total) > self.kv.num_gpu_blocks:
            return True
        if self.cfg.max_model_len is not None and total > self.cfg.max_model_len:
            return True
        # Without chunked prefill vLLM requires max_model_len <= max_num_batched_tokens.
        return not self.cfg.chunked_prefill and total > self.cfg.max_num_batched_tokens

    def _release_next_turn(self, r: SimRequest, done_s: float) -> None:
        """r's session sends its next turn think_s after r's answer (or refusal)."""
        if r.successor < 0:
            return
        nxt = self.reqs[r.successor]
        sent = self.arrivals.release(nxt.idx, done_s + nxt.think_s)
        nxt.view.arrival_s = sent
        nxt.view.waiting_since_s = sent

    # ------------------------------------------------------------- the step
    def _step(self) -> None:
        sched = self.scheduler
        if self.paper:
            plan = sched.schedule()
            finished_before = self.finished
            self._execute(plan)
            if (
                sched.steady
                and self.finished == finished_before  # a finish frees room
                and self.cfg.fast_forward
                and sched.still_steady(self.arrivals.arrival_due(self.clock.now))
            ):
                self._try_stretch(paper=True)
            return
        if self.cfg.fast_forward and self._try_stretch():
            return
        self._execute(sched.schedule())

    def _execute(self, plan: StepPlan) -> None:
        """Run one planned step: time it, log it, move tokens, finish what completes."""
        g, kv = self.clock.g, self.kv
        work = plan.work
        prefill = prefill_sq = prefill_ctx = 0
        completes_prefill = False
        for r, n in work:
            prefill += n
            prefill_sq += n * n
            prefill_ctx += n * r.num_computed
            completes_prefill = completes_prefill or r.num_computed + n == r.num_tokens
        n_dec = self.decode.n
        ctx = self.decode.context(g)
        dur = self.profile.step_time(
            prefill, prefill_sq, n_dec, ctx, plan.swapped_blocks, prefill_ctx=prefill_ctx
        )
        start = self.clock.now
        end = start + dur
        self.steps.append(
            end,
            start_s=start,
            duration_s=dur,
            prefill_tokens=prefill,
            prefill_sq_tokens=prefill_sq,
            prefill_ctx_tokens=prefill_ctx,
            decode_requests=n_dec,
            decode_context_tokens=ctx,
            running_requests=len(self.scheduler.running),
            waiting_requests=len(self.scheduler.waiting),
            kv_blocks_used=kv.num_gpu_blocks - kv.free,
            preemptions=plan.preempted,
            swapped_blocks=plan.swapped_blocks,
            cached_tokens=plan.cached_tokens,
            blocks_evicted=kv.evicted - self._evicted_logged,
        )
        self._evicted_logged = kv.evicted
        self.clock.now = end
        self._check_progress(n_dec or completes_prefill)
        for r, n in work:
            if math.isnan(r.first_scheduled_s):
                r.first_scheduled_s = start
            r.num_computed += n
            RequestCounters.on_scheduled(r.view, 1, end, dur)
            r.skip_from = g + 1
            if r.num_computed == r.num_tokens:
                self._emit_token(r, end)
                if r.generated >= r.output:
                    self._finish(r, g + 1)
                else:
                    self.scheduler.prefilling.pop(r.idx, None)
                    self.decode.enter(r, g + 1)
        self.clock.g = g + 1
        for gc, r in self.decode.pop_completed(self.clock.g):
            self._finish(r, gc + 1)

    _evicted_logged = 0

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
                f"{self.clock.now:.1f} s (policy {self.policy.describe()}, "
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

    def _finish(self, r: SimRequest, g: int) -> None:
        """r produced its last token; g: the step after its last one."""
        if r.lazy:
            self.decode.leave(r, g)
        r.state = FINISHED
        r.finish_s = r.last_token_s
        self.kv.release(r, keep_next_turn=r.successor >= 0)
        self.scheduler.running.pop(r.idx, None)
        self.scheduler.prefilling.pop(r.idx, None)
        self.policy.forget(r.view.request_id)
        self.finished += 1
        self._release_next_turn(r, r.finish_s)

    # ------------------------------------------------------- fast-forward
    def _try_stretch(self, paper: bool = False) -> bool:
        """Run k > 1 decode-only steps in one event when nothing can change sooner.

        The batch is the lazy decoders. While requests wait, the stretch ends at the
        first completion (it may let one in); with nothing waiting it runs through
        completions, the batch shrinking at known steps. It also ends before a step whose
        block allocations would not fit, at the step that sees the next arrival, and at
        the policy's horizon."""
        sched, dec = self.scheduler, self.decode
        if dec.n == 0 or sched.prefilling:
            return False
        if not paper and sched.admission_possible():
            return False
        g, now = self.clock.g, self.clock.now
        through = (
            not sched.waiting
            and not sched.swapped
            and self.cfg.stop_after is None
            and not self._sessions_waiting()
        )
        g_done = dec.next_completion()
        k = MAX_STRETCH_STEPS
        if g_done is not None and not through:
            k = g_done - g + 1
        t_limit = self.arrivals.next_time()
        # Short stretches cost more in numpy than they save: leave them to plain steps.
        first = self.profile.step_time(0, 0, dec.n, dec.context(g), 0)
        if k < MIN_STRETCH_STEPS or t_limit - now < (MIN_STRETCH_STEPS - 1) * first:
            return False
        # A V1 stretch admits and preempts nothing, so a static-key policy's order can
        # only matter at its end; the paper's engine re-sorts running requests each step.
        if sched.has_horizon and (paper or sched.dynamic):
            h_steps, h_s = sched.horizon()
            if h_steps < math.inf:
                k = min(k, int(h_steps))
            t_limit = min(t_limit, now + h_s)
        if t_limit < math.inf:  # room for the steps that fit before t_limit, and some
            k = min(k, int((t_limit - now) / first) * 2 + MIN_STRETCH_STEPS)
        if k <= 1:
            return False
        st = dec.stretch(g, k, self.kv.free, self.kv.freed_on_release)
        k = st.k
        if k <= 1:
            dec.restore(st.finished)
            return False
        dur = self.profile.step_time(0, 0, st.n[:k], st.ctx[:k], 0)
        ends = np.add.accumulate(np.concatenate(([now], dur)))[1:]
        if t_limit < math.inf:
            k = min(k, int(np.searchsorted(ends, t_limit, side="left")) + 1)
            if k <= 1:
                dec.restore(st.finished)
                return False
        ends, dur = ends[:k], dur[:k]
        kv = self.kv
        self.steps.extend(
            k,
            ends,
            start_s=np.concatenate(([now], ends[:-1])),
            duration_s=dur,
            decode_requests=st.n[:k],
            decode_context_tokens=st.ctx[:k],
            running_requests=len(sched.running) - st.gone[:k],
            waiting_requests=len(sched.waiting),
        )
        self.clock.now = float(ends[-1])
        self.clock.g = g + k
        # Blocks move in step order: a step's allocations, then the requests it finished.
        first = self.steps.n - k
        evicted = self.steps.cols["blocks_evicted"]
        used = self.steps.cols["kv_blocks_used"]
        later = [(gc, r) for gc, r in st.finished if gc >= g + k]
        taken = 0
        for gc, r in [*[f for f in st.finished if f[0] < g + k], (g + k - 1, None)]:
            upto = gc - g + 1
            alloc = st.alloc[taken:upto]
            free0 = kv.free
            evicted[first + taken : first + upto] = kv.take_per_step(alloc)
            used[first + taken : first + upto] = kv.num_gpu_blocks - free0 + np.cumsum(alloc)
            taken = upto
            if r is not None:
                self._finish(r, gc + 1)
        self._evicted_logged = kv.evicted
        dec.restore(later)
        for gc, r in dec.pop_completed(self.clock.g):
            self._finish(r, gc + 1)
        return True

    def _sessions_waiting(self) -> bool:
        """Whether a finish inside a stretch could release a session's next turn."""
        return self.has_sessions and any(r.successor >= 0 for r in self.scheduler.running.values())

    # -------------------------------------------------------------- running
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
            if not self.scheduler.has_work():
                t = self.arrivals.next_time()
                if t == math.inf:
                    break
                self.clock.now = t
                yield env.timeout(max(0.0, t - env.now))
                continue
            self._step()
            if self.progress is not None and self.finished - last_report >= 256:
                last_report = self.finished
                self.progress(self.finished + self.rejected, n)
            yield env.timeout(max(0.0, self.clock.now - env.now))
        self.wall_s = time.perf_counter() - t0

    def run(self) -> Engine:
        env = simpy.Environment()
        self.policy.prepare([r.view for r in self.reqs])
        env.process(self.process(env))
        env.run()
        if self.progress is not None:
            self.progress(self.finished + self.rejected, len(self.reqs))
        return self
