"""A live fleet: N real vLLM engines (in-process AsyncLLMs) behind a router.

The replay driver (live/replay.py) sends each request to the fleet backend, which asks
the router (policies/routing) for a replica, the same object that routes the simulated
fleet (sim/fleet.py), and sends it there. What the router sees of each engine:
- load: vLLM's SchedulerStats (waiting, running, KV cache usage), which every engine core
  computes after each step and AsyncLLM hands to its stat loggers: the counts vLLM's own
  data-parallel balancer reads; plus the requests sent to it since that snapshot came
  back (as vLLM's DP client counts its own sends between refreshes). With
  router_refresh_s > 0 the router sees the loads frozen at the latest refresh tick;
- prefix cache: each engine's KV events (live/kv_events.py), the blocks it holds.
Every decision is logged (routes.parquet: what the router saw of every replica, and its
choice), so a test can check each choice against what it was given.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from live.engine import EngineBackend, EngineOptions, LiveEngine
from live.errors import LiveError
from live.kv_events import KVBlockIndex, KVEventSubscriber
from live.records import RequestRecord
from live.replay import Backend
from live.run import RunSpec, read_run_log, run_trace
from live.steplog import StepLog
from live.xargs import PREFIX
from policies.base import RequestView
from policies.routing import ReplicaLoad, Router, RouteRequest, make_router
from policies.views import in_policy_order, views_from_trace
from traces.io import atomic_write
from traces.results import summarize_run

LOAD_SOURCE = (
    "vLLM SchedulerStats per engine step (num_waiting_reqs, num_running_reqs, "
    "kv_cache_usage) via an AsyncLLM stat logger, plus requests sent since"
)
PREFIX_SOURCE = "vLLM KV events (BlockStored/BlockRemoved over ZMQ), exact"


@dataclass(frozen=True)
class Snapshot:
    """One engine's scheduler state after a step, as its stats reached the driver."""

    t_s: float  # trace clock, when the driver received it
    waiting: int
    running: int
    kv_blocks_used: int


@dataclass
class LoadBoard:
    """Every replica's load as the router may see it, from stats snapshots and sends."""

    num_gpu_blocks: list[int]
    router_refresh_s: float = 0.0
    snapshots: list[list[Snapshot]] = field(default_factory=list)
    snapshot_s: list[list[float]] = field(default_factory=list)  # their t_s, for bisect
    sent_s: list[list[float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.router_refresh_s >= 0 or math.isinf(self.router_refresh_s):
            raise LiveError("--router-refresh-s: must be a finite number >= 0")
        n = len(self.num_gpu_blocks)
        self.snapshots = [[Snapshot(-math.inf, 0, 0, 0)] for _ in range(n)]
        self.snapshot_s = [[-math.inf] for _ in range(n)]
        self.sent_s = [[] for _ in range(n)]

    def reset(self) -> None:
        self.__post_init__()

    def record(
        self, replica: int, t_s: float, waiting: int, running: int, kv_cache_usage: float
    ) -> None:
        """A stats snapshot; kv_cache_usage is vLLM's 1 - free / (num_gpu_blocks - 1)."""
        usable = self.num_gpu_blocks[replica] - 1  # vLLM's null block
        used = int(round(kv_cache_usage * usable))
        snaps = self.snapshots[replica]
        t_s = max(t_s, snaps[-1].t_s)  # keep them sorted
        snaps.append(Snapshot(t_s, int(waiting), int(running), used))
        self.snapshot_s[replica].append(t_s)

    def sent(self, replica: int, t_s: float) -> None:
        sent = self.sent_s[replica]
        sent.append(max(t_s, sent[-1]) if sent else t_s)

    def load(self, replica: int, t_s: float) -> ReplicaLoad:
        """The replica exactly as known at t_s: its latest snapshot, plus the requests
        sent to it after that snapshot came back counted as waiting."""
        k = bisect.bisect_right(self.snapshot_s[replica], t_s) - 1
        snap = self.snapshots[replica][max(k, 0)]
        sent = self.sent_s[replica]
        unseen = bisect.bisect_right(sent, t_s) - bisect.bisect_right(sent, snap.t_s)
        return ReplicaLoad(
            replica,
            snap.waiting + unseen,
            snap.running,
            snap.kv_blocks_used,
            self.num_gpu_blocks[replica],
            t_s,
        )

    def loads(self, now_s: float) -> list[ReplicaLoad]:
        """What the router sees at now_s: exact, or as of the latest refresh tick."""
        if self.router_refresh_s > 0:
            now_s = math.floor(now_s / self.router_refresh_s) * self.router_refresh_s
        return [self.load(i, now_s) for i in range(len(self.num_gpu_blocks))]


def stat_logger_factory(board: LoadBoard, replica: int, clock: Callable[[], float]) -> Any:
    """A vLLM stat logger factory that feeds `replica`'s SchedulerStats to the board."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class ReplicaStatLogger(StatLoggerBase):
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            pass

        def record(
            self,
            scheduler_stats: Any,
            iteration_stats: Any,
            mm_cache_stats: Any = None,
            engine_idx: int = 0,
        ) -> None:
            if scheduler_stats is not None:
                board.record(
                    replica,
                    clock(),
                    scheduler_stats.num_waiting_reqs,
                    scheduler_stats.num_running_reqs,
                    scheduler_stats.kv_cache_usage,
                )

        def log_engine_initialized(self) -> None:
            pass

    return ReplicaStatLogger


@dataclass
class FleetProbe:
    """PrefixProbe over the replicas' KV event indexes, for the request being routed."""

    indexes: Sequence[KVBlockIndex]
    prompts: dict[int, Sequence[int]] = field(default_factory=dict)

    def cached_prefix_tokens(self, replica: int, request_id: int) -> int:
        prompt = self.prompts.get(request_id)
        return 0 if prompt is None else self.indexes[replica].cached_prefix_tokens(prompt)


class FleetBackend:
    """Routes each request to one of several engines and sends it there (a replay
    Backend), logging what the router saw and chose."""

    def __init__(
        self,
        backends: Sequence[Backend],
        router: Router,
        board: LoadBoard,
        indexes: Sequence[KVBlockIndex],
        step_logs: Sequence[Path],
        on_begin: Callable[[float], None] | None = None,
        subscribers: Sequence[KVEventSubscriber] = (),
    ) -> None:
        self.backends = list(backends)
        self.router = router
        self.board = board
        self.probe = FleetProbe(indexes)
        self.step_logs = list(step_logs)
        self.views: list[RequestView] = []
        self.session_id: list[int] = []
        self.turn: list[int] = []
        self.replica_of: dict[int, int] = {}
        self.decisions: list[dict[str, Any]] = []
        self.on_begin = on_begin  # the stats loggers' clock starts at the run's t0
        self.subscribers = list(subscribers)  # the KV event streams, for their counts
        self._batches_before = [0] * len(self.subscribers)
        self._lost_before = [0] * len(self.subscribers)

    def prepare(self, trace: pd.DataFrame) -> None:
        """The trace's views (row = policy id) and sessions, and the router's prepare."""
        df = in_policy_order(trace)
        self.views = views_from_trace(df)
        n = len(df)
        self.session_id = (
            df["session_id"].astype(np.int64).tolist() if "session_id" in df.columns else [-1] * n
        )
        self.turn = df["turn"].astype(np.int64).tolist() if "turn" in df.columns else [0] * n
        self.router.prepare(self.views, len(self.backends))

    def begin(self, run_id: str, t0: float) -> None:
        for b in self.backends:
            b.begin(run_id, t0)
        self._batches_before = [s.batches for s in self.subscribers]
        self._lost_before = [s.lost_batches for s in self.subscribers]
        if self.on_begin is not None:
            self.on_begin(t0)
        self.replica_of.clear()
        self.decisions.clear()

    async def send(
        self,
        rec: RequestRecord,
        prompt_ids: list[int],
        xargs: dict[str, Any],
        clock: Callable[[], float],
    ) -> None:
        now = clock()
        pid = rec.policy_id
        view = replace(self.views[pid], arrival_s=rec.arrival_s, waiting_since_s=rec.arrival_s)
        loads = self.board.loads(now)
        self.probe.prompts = {pid: prompt_ids}
        hits = [self.probe.cached_prefix_tokens(i, pid) for i in range(len(loads))]
        replica = self.router.route(
            RouteRequest(view, self.session_id[pid], self.turn[pid]), loads, self.probe, now
        )
        if not 0 <= replica < len(self.backends):
            raise LiveError(
                f"router {self.router.describe()} sent request {rec.request_id} "
                f"to replica {replica}; there are {len(self.backends)}"
            )
        self.board.sent(replica, now)
        self.replica_of[rec.request_id] = replica
        k = len(self.decisions) // len(loads)  # the k-th dispatch
        for load, hit in zip(loads, hits, strict=True):
            self.decisions.append(
                {
                    "dispatch": k,
                    "request_id": rec.request_id,
                    "now_s": now,
                    "replica": load.replica,
                    "chosen": load.replica == replica,
                    "waiting": load.waiting,
                    "running": load.running,
                    "kv_blocks_used": load.kv_blocks_used,
                    "as_of_s": load.as_of_s,
                    "cached_prefix_tokens": hit,
                }
            )
        xargs = {**xargs, PREFIX + "step_log": str(self.step_logs[replica].resolve())}
        try:
            await self.backends[replica].send(rec, prompt_ids, xargs, clock)
        finally:
            self.router.on_finish(pid, replica, clock())

    def fleet_tables(
        self, req: pd.DataFrame, run_id: str
    ) -> tuple[pd.DataFrame, StepLog, dict[str, Any]]:
        """requests with `replica`, every replica's steps with `replica`, the fleet's
        figures; writes routes.parquet beside the step logs."""
        req = req.copy()
        req["replica"] = req["request_id"].map(self.replica_of).fillna(-1).astype("int64")
        logs = [read_run_log(p, run_id) for p in self.step_logs]
        frames = []
        for i, log in enumerate(logs):
            frames.append(log.steps.assign(replica=np.int64(i)))
        steps = (
            pd.concat(frames, ignore_index=True)
            .sort_values(["start_s", "replica"], kind="stable")
            .reset_index(drop=True)
        )
        header = next((log.header for log in logs if log.header), {})
        merged = StepLog(header, steps, [e for log in logs for e in log.errors])
        routes = pd.DataFrame(self.decisions, columns=ROUTE_COLUMNS)
        out = self.step_logs[0].parent
        atomic_write(out / "routes.parquet", lambda p: routes.to_parquet(p, index=False))
        per = []
        for i, log in enumerate(logs):
            mine = req[req["replica"] == i]
            s = summarize_run(mine, int(mine["preemptions"].sum()))
            known = mine[mine["cached_tokens"] >= 0]
            prompt = int(known["prompt_tokens"].sum())
            cached = int(known["cached_tokens"].sum())
            s.update(
                replica=i,
                num_gpu_blocks=self.board.num_gpu_blocks[i],
                steps=int(len(log.steps)),
                prefix_cached_tokens=cached,
                prefix_hit_rate=cached / prompt if prompt else 0.0,
                busy_s=float(log.steps["duration_s"].sum()) if len(log.steps) else 0.0,
                step_log=self.step_logs[i].name,
            )
            per.append(s)
        counts = np.array([p["requests"] for p in per], np.float64)
        return (
            req,
            merged,
            {
                "replicas": len(self.backends),
                "router": self.router.describe(),
                "router_refresh_s": self.board.router_refresh_s,
                "replica_request_share_max": float(counts.max() / counts.sum())
                if counts.sum()
                else 0.0,
                "load_source": LOAD_SOURCE,
                "prefix_source": PREFIX_SOURCE,
                "kv_event_batches": [
                    s.batches - b
                    for s, b in zip(self.subscribers, self._batches_before, strict=True)
                ],
                "kv_event_batches_lost": [
                    s.lost_batches - b
                    for s, b in zip(self.subscribers, self._lost_before, strict=True)
                ],
                "per_replica": per,
            },
        )


ROUTE_COLUMNS = (
    "dispatch",
    "request_id",
    "now_s",
    "replica",
    "chosen",
    "waiting",
    "running",
    "kv_blocks_used",
    "as_of_s",
    "cached_prefix_tokens",
)


def step_log_name(replica: int) -> str:
    return f"steps.replica{replica}.jsonl"


class LiveFleet:
    """N LiveEngines started with a stats logger and KV events each; `replay` runs one
    trace under one policy (every engine's) and one router."""

    def __init__(
        self,
        engines: list[LiveEngine],
        board: LoadBoard,
        subscribers: list[KVEventSubscriber],
        events_dir: tempfile.TemporaryDirectory,
        clock_origin: list[float],
    ) -> None:
        self.engines = engines
        self.board = board
        self.subscribers = subscribers
        self._events_dir = events_dir
        self._clock_origin = clock_origin  # [t0] of the run in progress, for the loggers
        self.info = dict(engines[0].info, replicas=len(engines))

    @classmethod
    async def start(
        cls, options: EngineOptions, replicas: int, router_refresh_s: float = 0.0
    ) -> LiveFleet:
        """Start `replicas` engines one after another (inside a running event loop)."""
        from vllm.config import KVEventsConfig

        if replicas < 1:
            raise LiveError(f"--replicas: must be >= 1, got {replicas}")
        events_dir = tempfile.TemporaryDirectory(prefix="ltrsched-kv-")
        origin = [time.monotonic()]
        board = LoadBoard([0] * replicas, router_refresh_s)
        engines: list[LiveEngine] = []
        subscribers: list[KVEventSubscriber] = []
        try:
            for i in range(replicas):
                endpoint = f"ipc://{events_dir.name}/kv{i}"
                factory = stat_logger_factory(board, i, lambda: time.monotonic() - origin[0])
                engine = LiveEngine.start(
                    options,
                    stat_loggers=[factory],
                    kv_events_config=KVEventsConfig(
                        enable_kv_cache_events=True, publisher="zmq", endpoint=endpoint
                    ),
                )
                engines.append(engine)
                index = KVBlockIndex(int(engine.info["block_size"]))
                sub = KVEventSubscriber(endpoint, index)
                sub.start()
                subscribers.append(sub)
        except BaseException:
            for sub in subscribers:
                await sub.close()
            for engine in engines:
                await engine.aclose()
            events_dir.cleanup()
            raise
        board.num_gpu_blocks = [int(e.info["num_gpu_blocks"]) for e in engines]
        board.reset()
        return cls(engines, board, subscribers, events_dir, origin)

    async def replay(
        self, trace: pd.DataFrame, spec: RunSpec, router: str | Router
    ) -> dict[str, Any]:
        """Replay a trace across the engines; write the run to spec.out (with a
        `replica` column, per-replica step logs and routes.parquet); return its summary."""
        out = Path(spec.out)
        out.mkdir(parents=True, exist_ok=True)
        router = make_router(router) if isinstance(router, str) else router
        logs = [out / step_log_name(i) for i in range(len(self.engines))]
        for p in logs:
            p.unlink(missing_ok=True)
        for engine, sub in zip(self.engines, self.subscribers, strict=True):
            if engine.info["prefix_caching"]:  # each run starts cold, as a simulation does
                await engine.llm.reset_prefix_cache()
            sub.index.clear()  # vLLM's AllBlocksCleared follows with its next step
        self.board.reset()
        backend = FleetBackend(
            [EngineBackend(e.llm) for e in self.engines],
            router,
            self.board,
            [s.index for s in self.subscribers],
            logs,
            on_begin=lambda t0: self._clock_origin.__setitem__(0, t0),
            subscribers=self.subscribers,
        )
        backend.prepare(trace)
        spec = replace(spec, step_log=None)
        options = self.engines[0].options
        tok = Path(options.model) / "tokenizer.json"
        tokenizer = tok if tok.is_file() and not options.dummy_weights else None
        provenance = {
            **self.info,
            "mode": "in-process fleet",
        }
        summary = await run_trace(
            backend,
            trace,
            spec,
            provenance,
            int(self.info["vocab_size"]),
            tokenizer,
            self.info["max_model_len"],
        )
        return summary

    async def warm_up(self, requests: int = 4) -> None:
        """A few requests on each engine before the first measured run."""
        df = pd.DataFrame(
            {
                "request_id": range(requests * len(self.engines)),
                "arrival_s": 0.0,
                "prompt_tokens": 32,
                "output_tokens": 8,
            }
        )
        with tempfile.TemporaryDirectory() as tmp:
            await self.replay(
                df, RunSpec(policy="fcfs", out=Path(tmp), stall_timeout_s=60), "round-robin"
            )

    async def aclose(self) -> None:
        for sub in self.subscribers:
            await sub.close()
        for engine in self.engines:
            await engine.aclose()
        self._events_dir.cleanup()


async def replay_on_new_fleet(
    options: EngineOptions,
    replicas: int,
    trace: pd.DataFrame,
    runs: Sequence[tuple[RunSpec, str]],
    router_refresh_s: float = 0.0,
    warmup: int = 4,
) -> list[dict[str, Any]]:
    """Start a fleet, warm it up, replay the trace once per (spec, router), stop it."""
    for _, router in runs:
        make_router(router)  # a bad spec fails before any engine starts
    fleet = await LiveFleet.start(options, replicas, router_refresh_s)
    try:
        if warmup > 0:
            await fleet.warm_up(warmup)
        return [await fleet.replay(trace, spec, router) for spec, router in runs]
    finally:
        await fleet.aclose()
        await asyncio.sleep(0)
