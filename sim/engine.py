"""The engine core: one modelled vLLM server that requests are pushed to.

As vLLM's EngineCore: requests arrive through `add_request` (from the front end,
sim/frontend.py, directly or through a router); an engine core with no work waits for
the next push (a SimPy event). Each step it asks the scheduler for a plan
(sim/scheduler.py, sim/paper_scheduler.py), times the plan with the step-time profile,
logs it, and hands the step's output back to the scheduler (`update_from_output`),
which moves tokens and finishes requests. Between decision points identical decode
steps run as one event (a stretch, sim/decode_set.py), bounded by the front end's next
dispatch time. Step ends are summed one after another in both cases, so fast mode and
step-by-step mode give identical results.

A step runs eagerly: its outputs are applied when it is planned and the core then
sleeps until the step's end; what others may see of it meanwhile is `load()`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from policies.base import Policy
from policies.routing.base import ReplicaLoad
from sim.config import EngineConfig
from sim.decode_set import DecodeSet
from sim.errors import SimError
from sim.kv_cache import KVCacheManager
from sim.paper_scheduler import PaperScheduler
from sim.prefix_keys import KeyTable
from sim.profile import StepTimeProfile
from sim.request import REJECTED, SimRequest
from sim.scheduler import Clock, StepOutput, StepPlan, V1Scheduler
from sim.step_log import COLUMNS as STEP_LOG_COLUMNS
from sim.step_log import StepLog

if TYPE_CHECKING:
    from sim.fleet import Fleet

# The values of a plain step's row, in this order (StepLog.append_row).
STEP_ROW = (
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
    "prefill_ctx_tokens",
    "cached_tokens",
    "blocks_evicted",
)
assert STEP_ROW == STEP_LOG_COLUMNS, "sim/step_log.py's columns changed: update STEP_ROW"

MAX_STRETCH_STEPS = 1 << 14
MIN_STRETCH_STEPS = 16
LIVELOCK_STEPS = 50_000


class EngineCore:
    """One replica: its scheduler, KV cache and step log, stepping while it has work."""

    def __init__(
        self,
        reqs: list[SimRequest],
        policy: Policy,
        profile: StepTimeProfile,
        config: EngineConfig,
        num_gpu_blocks: int,
        keys: KeyTable | None = None,
        successor: np.ndarray | None = None,
        total_tokens: np.ndarray | None = None,
        replica: int = 0,
    ) -> None:
        config.validate()
        self.cfg = config
        self.policy = policy
        self.profile = profile
        self.replica = replica
        self.reqs = reqs
        self.clock = Clock()
        self.steps = StepLog()
        self.kv = KVCacheManager(
            num_gpu_blocks,
            config.block_size,
            config.prefix_caching_enabled(),
            keys,
            successor,
            total_tokens,
        )
        self.decode = DecodeSet(reqs, config.block_size, self.steps)
        sched = PaperScheduler if config.engine_mode == "ltr-paper" else V1Scheduler
        self.scheduler = sched(reqs, policy, config, self.kv, self.decode, self.clock)
        self.finished = 0
        self.rejected = 0
        self.steps_without_token = 0
        self.session_holders = 0  # unfinished requests here whose session has a next turn
        self.pushed_since_step = 0  # requests pushed since the latest logged step
        self.host: Fleet | None = None
        self._wakeup = None
        self._evicted_logged = 0
        # The latest logged step's waiting_requests, running_requests, kv_blocks_used.
        self._last_row = (0, 0, 0)

    @property
    def now(self) -> float:
        return self.clock.now

    @property
    def preemptions(self) -> int:
        return self.scheduler.preemptions

    # ------------------------------------------------------------ requests in
    def add_request(self, r: SimRequest, now: float) -> None:
        """The front end pushes r at `now`; an idle core wakes up for it."""
        if not self.scheduler.has_work() and self.clock.now < now:
            self.clock.now = now
        r.skip_from = self.clock.g
        r.view.waiting_since_s = r.view.arrival_s
        if self._never_fits(r):
            r.state = REJECTED
            self.rejected += 1
            self.host.on_finished(self, r, r.view.arrival_s)
            return
        self.scheduler.add_request(r)
        self.pushed_since_step += 1
        if r.successor >= 0:
            self.session_holders += 1
        if self._wakeup is not None:
            ev, self._wakeup = self._wakeup, None
            ev.succeed()

    def _never_fits(self, r: SimRequest) -> bool:
        total = r.prompt + r.output
        if self.kv.blocks_for(total) > self.kv.num_gpu_blocks:
            return True
        if self.cfg.max_model_len is not None and total > self.cfg.max_model_len:
            return True
        # Without chunked prefill vLLM requires max_model_len <= max_num_batched_tokens.
        return not self.cfg.chunked_prefill and total > self.cfg.max_num_batched_tokens

    def load(self, t: float) -> ReplicaLoad:
        """This replica at time t as a router sees it: after the outputs of steps ended
        by t; during a step, the step as planned plus the requests pushed since."""
        sched, kv = self.scheduler, self.kv
        j = self.steps.n - 1
        if self.clock.now <= t or j < 0:
            return ReplicaLoad(
                self.replica,
                len(sched.waiting) + len(sched.swapped),
                len(sched.running),
                kv.num_gpu_blocks - kv.free,
                kv.num_gpu_blocks,
                t,
            )
        waiting, running, used = self._last_row
        return ReplicaLoad(
            self.replica,
            waiting + len(sched.swapped) + self.pushed_since_step,
            running,
            used,
            kv.num_gpu_blocks,
            t,
        )

    # ------------------------------------------------------------- the step
    def _step(self) -> None:
        sched = self.scheduler
        if self.cfg.fast_forward and sched.stretch_before_plan and self._try_stretch():
            return
        plan = sched.schedule()
        out = self._execute(plan)
        finished = sched.update_from_output(plan, out)
        self._finished(finished)
        if (
            self.cfg.fast_forward
            and not finished  # a finish frees room
            and not sched.stretch_before_plan
            and sched.repeats_as_stretch(self.host.dispatch_bound(self) <= self.clock.now)
        ):
            self._try_stretch()

    def _execute(self, plan: StepPlan) -> StepOutput:
        """Run one planned step: time it and log it; the scheduler applies its output."""
        g, kv = self.clock.g, self.kv
        prefill = prefill_sq = prefill_ctx = 0
        completes_prefill = False
        for r, n in plan.work:
            prefill += n
            prefill_sq += n * n
            prefill_ctx += n * r.num_computed
            completes_prefill = completes_prefill or r.num_computed + n == r.num_tokens
        dec = self.decode
        n_dec = dec.n
        ctx = dec.ctx_a + n_dec * g  # dec.context(g)
        dur = self.profile.step_time(
            prefill, prefill_sq, n_dec, ctx, plan.swapped_blocks, prefill_ctx=prefill_ctx
        )
        start = self.clock.now
        end = start + dur
        sched = self.scheduler
        running, waiting, used = len(sched.running), len(sched.waiting), kv.num_gpu_blocks - kv.free
        self._last_row = (waiting, running, used)
        # The row in STEP_ROW (= step_log.COLUMNS) order.
        self.steps.append_row(
            end,
            (
                start,
                dur,
                prefill,
                prefill_sq,
                n_dec,
                ctx,
                running,
                waiting,
                used,
                plan.preempted,
                plan.swapped_blocks,
                prefill_ctx,
                plan.cached_tokens,
                kv.evicted - self._evicted_logged,
            ),
        )
        self.pushed_since_step = 0
        self._evicted_logged = kv.evicted
        self.clock.now = end
        if n_dec or completes_prefill:
            self.steps_without_token = 0
        else:
            self._check_progress(False)
        return StepOutput(g, start, end, dur)

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

    def _finished(self, done: list[SimRequest]) -> None:
        for r in done:
            self.finished += 1
            if r.successor >= 0:
                self.session_holders -= 1
            self.host.on_finished(self, r, r.finish_s)

    # ------------------------------------------------------- fast-forward
    def _try_stretch(self) -> bool:
        """Run k > 1 decode-only steps in one event when nothing can change sooner.

        The batch is the lazy decoders. While requests wait, the stretch ends at the
        first completion (it may let one in); with nothing waiting it runs through
        completions, the batch shrinking at known steps. It also ends before a step whose
        block allocations would not fit, at the step that sees the next dispatch, and at
        the policy's horizon."""
        sched, dec = self.scheduler, self.decode
        if dec.n == 0 or sched.prefilling:
            return False
        if sched.stretch_blocked():
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
        # Short stretches cost more in numpy than they save: leave them to plain steps.
        if k < MIN_STRETCH_STEPS:
            return False
        t_limit = self.host.dispatch_bound(self)
        first = self.profile.step_time(0, 0, dec.n, dec.context(g), 0)
        if t_limit - now < (MIN_STRETCH_STEPS - 1) * first:
            return False
        # A V1 stretch admits and preempts nothing, so a static-key policy's order can
        # only matter at its end; the paper's engine re-sorts running requests each step.
        if sched.has_horizon and (sched.reranks_running or sched.dynamic):
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
        self.pushed_since_step = 0
        self.clock.now = float(ends[-1])
        self.clock.g = g + k
        # Blocks move in step order: a step's allocations, then the requests it finished.
        first = self.steps.n - k
        evicted = self.steps.cols["blocks_evicted"]
        used = self.steps.cols["kv_blocks_used"]
        later = [(gc, r) for gc, r in st.finished if gc >= g + k]
        taken = 0
        done: list[SimRequest] = []
        for gc, r in [*[f for f in st.finished if f[0] < g + k], (g + k - 1, None)]:
            upto = gc - g + 1
            alloc = st.alloc[taken:upto]
            free0 = kv.free
            evicted[first + taken : first + upto] = kv.take_per_step(alloc)
            used[first + taken : first + upto] = kv.num_gpu_blocks - free0 + np.cumsum(alloc)
            taken = upto
            if r is not None:
                sched.finish(r, gc + 1)
                done.append(r)
        self._evicted_logged = kv.evicted
        last = self.steps.n - 1
        self._last_row = (
            int(self.steps.cols["waiting_requests"][last]),
            int(self.steps.cols["running_requests"][last]),
            int(used[last]),
        )
        dec.restore(later)
        for gc, r in dec.pop_completed(self.clock.g):
            sched.finish(r, gc + 1)
            done.append(r)
        self._finished(done)
        return True

    def _sessions_waiting(self) -> bool:
        """Whether a finish inside a stretch could release a session's next turn."""
        return self.session_holders > 0 and any(
            r.successor >= 0 for r in self.scheduler.running.values()
        )

    # -------------------------------------------------------------- running
    def process(self, env):
        """The server, as one SimPy process: wait for a push when idle, else step. In fast
        mode the steps that start before anything could be dispatched (the bound a stretch
        uses) run in one event: no other event can change what they plan. A lone replica
        with no router runs every step in one event while it has work: what the front end
        pushes to it meanwhile is dispatched here, before the next step (a busy core's
        state does not depend on when, within a step, a request reached it)."""
        host = self.host
        chain = self.cfg.fast_forward
        alone = chain and host.router is None and len(host.engines) == 1
        while True:
            host.dispatch_until(self.clock.now)
            if host.stopped_at(self.clock.now):
                break
            if not self.scheduler.has_work():
                self._wakeup = env.event()
                yield self._wakeup
                continue
            self._step()
            host.after_step()
            if alone or (chain and host.dispatch_bound(self) > self.clock.now):
                continue
            yield env.at(self.clock.now)
