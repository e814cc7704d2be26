"""The vLLM V1 scheduler plug-in: vLLM's own scheduler, ordered by a policy from policies/.

Load it with `scheduler_cls="live.scheduler.PolicyScheduler"` (engine args) or
`vllm serve ... --scheduler-cls live.scheduler.PolicyScheduler`; it picks vLLM's
AsyncScheduler or plain Scheduler as its base by what the engine config asks
(`async_scheduling`; vLLM's CPU platform turns it off). Configuration: live/config.py.

Seams, as read in vLLM 0.32 (vllm/v1/core/sched/scheduler.py):
- before each schedule() every live request gets the policy's key; `self.waiting` is a
  PolicyQueue sorted by it, so vLLM's admission loop takes waiting requests in policy
  order and stops at the first that does not fit, as it does for FCFS;
- the preemption victim: in `priority` mode vLLM preempts max(running, key=(priority,
  arrival_time)), wherever the victim sits in the running list. The plug-in runs vLLM in
  that mode and, for the length of each schedule() call only, sets every running
  request's priority to its rank under the policy, so the victim is the lowest-ranked
  running request, as in the simulator; the user's priorities are put back before
  schedule() returns (vLLM's LMCache connector reads them later). The running list keeps
  vLLM's order (admission), so running requests take the token budget as they do in vLLM
  and in the simulator. A request's own priority stays readable by policies as the
  feature score_priority = -priority;
- vLLM's `--scheduling-policy priority` is honoured: the request's priority comes first
  in every key (vLLM's order is (priority, arrival_time)) and the policy orders requests
  of equal priority, so with `fcfs` the plug-in schedules and preempts as vLLM's
  priority scheduler does. vLLM's `kv_holding_waiting` queue (waiting requests that hold
  KV blocks, drained first) keeps vLLM's own order;
- counters: update_from_output() moves each request's RequestView with
  policies.base.RequestCounters; one JSON line per step goes to the step log;
- scores: with a predictor configured (live/inserver.py), the requests that arrived
  without a score are scored in one batch per step: by default in a thread started
  once the step is scheduled, so it runs while the model executes the step, its scores
  applied at the next schedule(); in sync mode at the start of schedule(), on the
  step's critical path. The step log's predictor_s is the time schedule() spent on it.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import vllm
from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.request_queue import SchedulingPolicy
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.request import RequestStatus

from live.compat import support_status
from live.config import PluginConfig
from live.errors import LiveError
from live.inserver import InServerScorer, load_scorer
from live.policy_run import PolicyRun, log
from live.queue import PolicyQueue
from live.steplog import StepRecord
from live.xargs import RunTag, decode
from policies import make_policy

DEFAULT_RUN = "default"


class PolicySchedulingMixin:
    """The plug-in's behaviour, over either of vLLM's scheduler classes."""

    # Until __init__ runs (an instance made with object.__new__, as some of vLLM's own
    # tests do) the hooks pass straight through to vLLM's scheduler.
    _ltr_run: PolicyRun | None = None
    _ltr_scorer: InServerScorer | None = None
    _ltr_pending: Any = ()
    _ltr_spill_s = 0.0
    _ltr_pending_ours = 0.0
    _ltr_priority_mode = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ltr_support = support_status(vllm.__version__)
        self._ltr_config = PluginConfig.from_engine(
            getattr(self.vllm_config, "additional_config", None)
        )
        make_policy(self._ltr_config.policy)  # a bad spec fails the engine start, clearly
        self._ltr_scorer: InServerScorer | None = None
        if self._ltr_config.predictor:
            mc = self.vllm_config.model_config
            try:  # a bad predictor directory stops the engine start, with one line
                self._ltr_scorer = load_scorer(
                    self._ltr_config.predictor, self._ltr_config.predictor_device,
                    None if getattr(mc, "skip_tokenizer_init", False) else mc.tokenizer,
                    bool(getattr(mc, "trust_remote_code", False)),
                    self._ltr_config.predictor_mode,
                )
            except LiveError as e:
                log.error("%s", e)
                raise
        self._ltr_run: PolicyRun | None = None
        # Steps scheduled and not yet updated (more than one with async scheduling).
        self._ltr_pending: deque[tuple[Any, StepRecord, float, float]] = deque()
        self._ltr_spill_s = 0.0  # our time outside any step (add_request, log writes)
        self._ltr_pending_ours = 0.0  # our time after the last schedule()
        # The user's mode orders our keys; vLLM's victim rule is priority mode's, over
        # the ranks schedule() lends the running requests (see _ltr_lend_ranks).
        self._ltr_priority_mode = self.policy == SchedulingPolicy.PRIORITY
        self.policy = SchedulingPolicy.PRIORITY
        self.waiting = PolicyQueue(self.waiting)

    # ------------------------------------------------------------------ engine info
    def _ltr_engine_info(self) -> dict[str, Any]:
        sc, cc = self.scheduler_config, self.cache_config
        return {
            "vllm_version": vllm.__version__,
            "support": self._ltr_support,
            "scheduler": type(self).__name__,
            "num_gpu_blocks": cc.num_gpu_blocks,
            "block_size": self.block_size,
            "max_num_seqs": sc.max_num_seqs,
            "max_num_batched_tokens": sc.max_num_batched_tokens,
            "chunked_prefill": bool(sc.enable_chunked_prefill),
            "max_model_len": self.max_model_len,
            "prefix_caching": bool(cc.enable_prefix_caching),
            "async_scheduling": bool(getattr(sc, "async_scheduling", False)),
            "scheduling_policy": "priority" if self._ltr_priority_mode else "fcfs",
        }

    def _ltr_run_for(self, tag: RunTag) -> PolicyRun:
        run_id = tag.run or DEFAULT_RUN
        old = self._ltr_run
        if old is not None and old.run_id == run_id:
            return old
        run = PolicyRun.start(run_id, self._ltr_config.for_run(tag), tag.t0,
                              self._ltr_engine_info())
        run.tracker.priority_first = self._ltr_priority_mode
        if self._ltr_scorer is not None:
            run.tracker.score_column = self._ltr_scorer.column
        if old is not None:  # requests left from the last run stay ranked
            run.tracker.adopt(e for e in old.tracker.entries.values()
                              if not e.request.is_finished())
            old.close()
        self._ltr_run = run
        return run

    # ------------------------------------------------------------------ vLLM hooks
    def add_request(self, request: Any) -> None:
        t = time.perf_counter()
        if request.request_id not in self.requests:
            try:
                sp = request.sampling_params
                tag, run_tag = decode(getattr(sp, "extra_args", None) if sp else None)
                view = self._ltr_run_for(run_tag).add(request, tag, time.monotonic())
                if self._ltr_scorer is not None:
                    self._ltr_scorer.offer(request, view)
            except Exception as e:  # noqa: BLE001 - never take the engine down
                self._ltr_fail(e)
        self._ltr_spill_s += time.perf_counter() - t
        super().add_request(request)

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        run = self._ltr_run
        if run is None:
            return super().schedule(*args, **kwargs)
        start = time.monotonic()  # the step starts here: scoring is part of it
        scored, predictor_s = 0, 0.0
        if self._ltr_scorer is not None:
            try:
                scored, predictor_s = self._ltr_scorer.score_pending()
            except Exception as e:  # noqa: BLE001 - never take the engine down
                self._ltr_fail(e)
        p0 = time.perf_counter()
        lent: list[tuple[Any, int]] = []
        try:
            keys, full = run.rank_keys(start)
            order = self._ltr_order(keys)
            lent = self._ltr_lend_ranks(order)
            # newly scored requests leave their unscored place
            self.waiting.reorder(order, full or scored > 0)
        except Exception as e:  # noqa: BLE001
            self._ltr_fail(e)
        ours = time.perf_counter() - p0
        try:
            out = super().schedule(*args, **kwargs)
        finally:
            for r, priority in lent:  # the user's priorities back, preempted ones too
                r.priority = priority
        end = time.monotonic()
        p1 = time.perf_counter()
        if self._ltr_scorer is not None:
            try:
                self._ltr_scorer.start_scoring()  # overlap mode: while the model runs
            except Exception as e:  # noqa: BLE001
                self._ltr_fail(e)
        try:
            rec = self._ltr_batch(run, out, start, end)
            rec.plugin_s = ours
            rec.predictor_s, rec.scored_requests = predictor_s, scored
            if scored:
                rec.predictor_batch_s = self._ltr_scorer.batch_s
            self._ltr_pending.append((out, rec, start, end))
        except Exception as e:  # noqa: BLE001
            self._ltr_fail(e)
        self._ltr_pending_ours = time.perf_counter() - p1
        return out

    def update_from_output(self, scheduler_output: Any, model_runner_output: Any) -> Any:
        u0 = time.monotonic()
        res = super().update_from_output(scheduler_output, model_runner_output)
        u1 = time.monotonic()
        p0 = time.perf_counter()
        try:
            self._ltr_step_done(scheduler_output, u0, u1, p0)
        except Exception as e:  # noqa: BLE001
            self._ltr_fail(e)
        return res

    def finish_requests(self, request_ids: Any, finished_status: Any) -> Any:
        done = super().finish_requests(request_ids, finished_status)
        run = self._ltr_run
        if run is not None:
            for request in done or ():
                run.tracker.drop(request.request_id)
        return done

    def shutdown(self) -> None:
        if self._ltr_scorer is not None:
            self._ltr_scorer.close()
        if self._ltr_run is not None:
            self._ltr_run.close()
        super().shutdown()

    # ------------------------------------------------------------------ our work
    def _ltr_lend_ranks(self, order: Any) -> list[tuple[Any, int]]:
        """Set each running request's priority to its rank (vLLM's victim is the
        running request of greatest (priority, arrival_time)); returns the (request, its
        own priority) pairs that schedule() restores as soon as vLLM has planned.

        In vLLM's priority mode its victim among equals is the first of them in the
        running list (max() keeps the first greatest), so there the last tie-breaker
        (request id) gives way to the running list's order, reversed."""
        running = list(self.running)
        lent = [(r, r.priority) for r in running]
        if self._ltr_priority_mode:

            def rank_key(i: int) -> tuple:
                prio, unranked, k = order(running[i])
                return (prio, unranked, k[:-1], -i)

            ranked = [running[i] for i in sorted(range(len(running)), key=rank_key)]
        else:
            ranked = sorted(running, key=order)
        for rank, r in enumerate(ranked):
            r.priority = rank
        return lent

    def _ltr_order(self, keys: dict[str, tuple]) -> Any:
        """Sort key over vLLM requests: ranked ones by their key, then the unranked (a
        score on the way) in arrival order; in priority mode, all of it within each
        priority. Running requests are ranked by it too (see _ltr_lend_ranks): the
        victim is the lowest-ranked one, unranked first."""
        prio = self._ltr_priority_mode

        def order(r: Any) -> tuple:
            k = keys.get(r.request_id)
            if k is not None:
                return (k[0] if prio else 0, 0, k)  # k[0]: the priority it was keyed with
            return (r.priority if prio else 0, 1, (r.arrival_time, r.request_id))

        return order

    def _ltr_batch(self, run: PolicyRun, out: Any, start: float, end: float) -> StepRecord:
        """Batch composition of the step vLLM just scheduled (computed tokens are
        already advanced by it: what was cached before is num_computed - scheduled)."""
        prefill = prefill_sq = prefill_ctx = decodes = context = cached = 0
        for vid, n in out.num_scheduled_tokens.items():
            req = self.requests.get(vid)
            if req is None:
                continue
            cached += run.tracker.note_scheduled(vid)  # its prefix-cache hit, first time
            before = req.num_computed_tokens - n
            if n == 1 and before >= req.num_prompt_tokens:
                decodes += 1
                context += before
            else:
                prefill += n
                prefill_sq += n * n
                prefill_ctx += n * before
        pool = self.kv_cache_manager.block_pool
        rec = StepRecord(
            step=run.steps,
            start_s=run.now_s(start),
            schedule_s=end - start,
            prefill_tokens=prefill,
            prefill_sq_tokens=prefill_sq,
            prefill_ctx_tokens=prefill_ctx,
            cached_tokens=cached,
            decode_requests=decodes,
            decode_context_tokens=context,
            running_requests=len(self.running),
            waiting_requests=len(self.waiting) + len(getattr(self, "kv_holding_waiting", ())),
            kv_blocks_used=pool.num_gpu_blocks - 1 - pool.get_num_free_blocks(),  # null block
            preemptions=len(out.preempted_req_ids or ()),
            scheduled_requests=len(out.num_scheduled_tokens),
        )
        run.steps += 1
        return rec

    def _ltr_step_done(self, out: Any, u0: float, u1: float, p0: float) -> None:
        while self._ltr_pending and self._ltr_pending[0][0] is not out:
            self._ltr_pending.popleft()  # a step vLLM never reported back
        run = self._ltr_run
        if not self._ltr_pending or run is None:
            return
        _, rec, start, end = self._ltr_pending.popleft()
        rec.execute_s = u0 - end
        rec.update_s = u1 - u0
        rec.end_s = run.now_s(u1)
        if out.num_scheduled_tokens:
            running = {r.request_id for r in self.running if r.status == RequestStatus.RUNNING}
            rec.finished_requests = run.tracker.after_step(
                out.num_scheduled_tokens, out.preempted_req_ids or (),
                run.now_s(start), run.now_s(u1), running,
            )
        rec.busy_after = bool(self.has_requests())
        rec.plugin_s += self._ltr_pending_ours + self._ltr_spill_s + time.perf_counter() - p0
        self._ltr_spill_s = 0.0
        p1 = time.perf_counter()
        run.log_step(rec)
        self._ltr_spill_s += time.perf_counter() - p1

    def _ltr_fail(self, e: Exception) -> None:
        if self._ltr_run is not None:
            self._ltr_run.fail(f"{type(e).__name__}: {e}")
        else:
            log.warning("ltrsched plug-in: %s: %s", type(e).__name__, e)


class PolicySyncScheduler(PolicySchedulingMixin, Scheduler):
    """The plug-in over vLLM's synchronous Scheduler (CPU, or --no-async-scheduling)."""


class PolicyAsyncScheduler(PolicySchedulingMixin, AsyncScheduler):
    """The plug-in over vLLM's AsyncScheduler (the GPU default)."""


class PolicyScheduler:
    """The dotted path to give vLLM: builds the sync or async plug-in, as the engine's
    `scheduler_config.async_scheduling` asks (a sync scheduler under an async engine, or
    the reverse, would break vLLM's bookkeeping of in-flight tokens)."""

    def __new__(cls, vllm_config: Any, *args: Any, **kwargs: Any) -> Scheduler:  # type: ignore[misc]
        is_async = bool(getattr(vllm_config.scheduler_config, "async_scheduling", False))
        impl = PolicyAsyncScheduler if is_async else PolicySyncScheduler
        return impl(vllm_config, *args, **kwargs)
