"""vLLM in this process (AsyncLLM, its engine core in a child process) with the plug-in,
started once and replaying one run after another."""

from __future__ import annotations

import asyncio
import gc
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from live.compat import installed_vllm_version, support_status
from live.config import CPU_MEMORY_UTILIZATION, PLUGIN_PATH
from live.device import describe_device, is_cpu_platform
from live.errors import LiveError
from live.models import has_tokenizer, has_weights, read_model_config
from live.records import FINISHED, RequestRecord, check_length
from live.replay import Rejected
from live.run import RunSpec, run_trace

SHUTDOWN_GRACE_S = 60.0


def quiet_vllm() -> None:
    """The replay driver's vLLM prints errors only: its start-up warnings (about 25 lines
    on the CPU build: Triton, LD_PRELOAD, NUMA, the custom scheduler) say nothing about a
    replay. Set in the environment before vLLM is imported, so the engine core and its
    worker inherit it; VLLM_LOGGING_LEVEL=INFO (or WARNING) given by the user wins.
    `ltrsched serve` does not call this: a server's log is its user's."""
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")  # torch's C++ warnings (NUMA)
    if os.environ["VLLM_LOGGING_LEVEL"].upper() == "ERROR":
        # vLLM's own deprecation notices, in this process and the ones it starts.
        os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"vllm\.")


@dataclass(frozen=True)
class EngineOptions:
    """The vLLM engine arguments a replay controls, in vLLM's names."""

    model: str
    dummy_weights: bool = False
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    gpu_memory_utilization: float | None = None  # default: vLLM's, 0.3 on CPU
    enforce_eager: bool = False
    num_gpu_blocks: int | None = None  # vLLM's num_gpu_blocks_override
    block_size: int | None = None  # tokens per KV block [vLLM's: 16 on GPU, 128 on CPU]
    max_model_len: int | None = None
    prefix_caching: bool = True  # vLLM V1's default, and the simulator's in vllm-v1 mode
    dtype: str = "auto"
    seed: int = 0
    predictor: str | None = None  # in-server scoring (live/inserver.py)
    predictor_device: str = "auto"
    predictor_mode: str = "overlap"

    def engine_args(self) -> dict[str, Any]:
        cfg = read_model_config(self.model)
        if not self.dummy_weights and not has_weights(self.model):
            raise LiveError(f"--model {self.model}: no weights in it; pass --dummy-weights "
                            "to run it with random weights")
        util = self.gpu_memory_utilization
        if util is None and is_cpu_platform():
            util = CPU_MEMORY_UTILIZATION
        args: dict[str, Any] = {
            "model": self.model,
            "scheduler_cls": PLUGIN_PATH,
            "enable_prefix_caching": self.prefix_caching,
            "enforce_eager": self.enforce_eager,
            "dtype": self.dtype,
            "seed": self.seed,
            "disable_log_stats": False,  # RequestOutput.metrics: scheduled/first/last token
        }
        if self.dummy_weights:
            args["load_format"] = "dummy"
        if self.predictor:
            if not has_tokenizer(self.model):
                raise LiveError(f"--model {self.model}: no tokenizer in it, so the "
                                "--predictor cannot read prompts")
            args["additional_config"] = {"ltrsched": {
                "predictor": str(Path(self.predictor).resolve()),
                "predictor_device": self.predictor_device,
                "predictor_mode": self.predictor_mode}}
        elif self.dummy_weights or not has_tokenizer(self.model):
            args["skip_tokenizer_init"] = True
        for key, value in (
            ("max_num_seqs", self.max_num_seqs),
            ("max_num_batched_tokens", self.max_num_batched_tokens),
            ("gpu_memory_utilization", util),
            ("num_gpu_blocks_override", self.num_gpu_blocks),
            ("block_size", self.block_size),
            ("max_model_len", self.max_model_len),
        ):
            if value is not None:
                args[key] = value
        if "vocab_size" not in cfg:
            raise LiveError(f"--model {self.model}: config.json has no vocab_size")
        return args


class EngineBackend:
    """Sends requests to an in-process AsyncLLM and reads their token stream."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.run_id = ""
        self.t0 = 0.0

    def begin(self, run_id: str, t0: float) -> None:
        self.run_id, self.t0 = run_id, t0

    async def send(self, rec: RequestRecord, prompt_ids: list[int], xargs: dict[str, Any],
                   clock: Callable[[], float]) -> None:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        sp = SamplingParams(max_tokens=rec.output_tokens, ignore_eos=True, detokenize=False,
                            output_kind=RequestOutputKind.DELTA, extra_args=xargs)
        final = None
        try:
            stream = self.llm.generate({"prompt_token_ids": prompt_ids}, sp,
                                       request_id=f"{self.run_id}-{rec.request_id}")
            async for out in stream:
                ids = out.outputs[0].token_ids
                rec.on_tokens(len(ids), clock(), ids)
                if out.finished:
                    final = out
        except ValueError as e:  # vLLM's input validation: too long for the model
            raise Rejected(str(e).splitlines()[0]) from None
        if final is None:
            raise RuntimeError("the stream ended without a finished output")
        self._engine_times(rec, getattr(final, "metrics", None))
        cached = getattr(final, "num_cached_tokens", None)  # set at its first scheduling
        rec.cached_tokens = int(cached) if cached is not None and cached >= 0 else -1
        check_length(rec)
        rec.status = FINISHED

    def _engine_times(self, rec: RequestRecord, m: Any) -> None:
        """Queued, scheduled, first-token and finish times as the engine core stamped
        them (on its monotonic clock, which is the driver's too); receive times without
        them. queued_s and first_scheduled_s place a request among the steps of the step
        log: it was waiting in every step that started after queued_s."""
        rec.finish_s = rec.last_token_s
        if m is None:
            return

        def at(name: str) -> float:
            ts = getattr(m, name, 0.0) or 0.0
            return ts - self.t0 if ts > 0 else math.nan

        rec.queued_s = at("queued_ts")
        rec.first_scheduled_s = at("scheduled_ts")
        if not math.isnan(first := at("first_token_ts")):
            rec.first_token_s = first
        if not math.isnan(last := at("last_token_ts")):
            rec.finish_s = last
        rec.preemptions = int(getattr(m, "num_preemptions", 0) or 0)


class LiveEngine:
    """An AsyncLLM with the ltrsched plug-in; `replay` runs one trace under one policy."""

    def __init__(self, llm: Any, options: EngineOptions, info: dict[str, Any]) -> None:
        self.llm = llm
        self.options = options
        self.info = info

    @classmethod
    def start(cls, options: EngineOptions, stat_loggers: list[Any] | None = None,
              kv_events_config: Any = None) -> LiveEngine:
        """Start vLLM (call inside a running event loop). Errors become LiveError.
        A fleet (live/fleet.py) passes stat loggers and a KV events config of its own."""
        quiet_vllm()
        os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")  # stdout: --json
        version = installed_vllm_version()
        support = support_status(version)
        args = options.engine_args()
        if kv_events_config is not None:
            args["kv_events_config"] = kv_events_config
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        try:
            llm = AsyncLLM.from_engine_args(AsyncEngineArgs(**args), stat_loggers=stat_loggers)
        except Exception as e:  # noqa: BLE001 - vLLM's start-up errors are many types
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise LiveError(f"vLLM did not start: {first} (its log above says more)") from None
        cache, sched = llm.vllm_config.cache_config, llm.vllm_config.scheduler_config
        info = {
            "mode": "in-process",
            "model": options.model,
            "dummy_weights": options.dummy_weights,
            "vllm_version": version,
            "plugin_support": support,
            "device": describe_device(),
            "num_gpu_blocks": cache.num_gpu_blocks,
            "block_size": cache.block_size,
            "max_num_seqs": sched.max_num_seqs,
            "max_num_batched_tokens": sched.max_num_batched_tokens,
            "chunked_prefill": bool(sched.enable_chunked_prefill),
            "max_model_len": llm.vllm_config.model_config.max_model_len,
            "prefix_caching": bool(cache.enable_prefix_caching),
            "async_scheduling": bool(sched.async_scheduling),
            "enforce_eager": options.enforce_eager,
            "gpu_memory_utilization": args.get("gpu_memory_utilization"),
            "vocab_size": read_model_config(options.model)["vocab_size"],
        }
        return cls(llm, options, info)

    async def replay(self, trace: pd.DataFrame, spec: RunSpec) -> dict[str, Any]:
        """Replay a trace; write the run to spec.out; return its summary."""
        from dataclasses import replace

        spec = replace(spec, step_log=spec.step_log or Path(spec.out) / "steps.jsonl")
        Path(spec.out).mkdir(parents=True, exist_ok=True)
        if spec.step_log.exists():
            spec.step_log.unlink()
        if self.info["prefix_caching"]:  # each run starts cold, as a simulation does
            await self.llm.reset_prefix_cache()
        backend = EngineBackend(self.llm)
        tok = Path(self.options.model) / "tokenizer.json"
        tokenizer = tok if tok.is_file() and not self.options.dummy_weights else None
        return await run_trace(backend, trace, spec, self.info, int(self.info["vocab_size"]),
                               tokenizer, self.info["max_model_len"])

    async def warm_up(self, requests: int = 8, prompt_tokens: int = 32,
                      output_tokens: int = 16) -> None:
        """A few requests before the first measured run (first steps allocate, compile)."""
        import tempfile

        df = pd.DataFrame({"request_id": range(requests), "arrival_s": 0.0,
                           "prompt_tokens": prompt_tokens, "output_tokens": output_tokens})
        with tempfile.TemporaryDirectory() as tmp:
            await self.replay(df, RunSpec(policy="fcfs", out=Path(tmp), stall_timeout_s=60))

    def shutdown(self) -> None:
        """Stop the engine core, giving it time to exit by itself: vLLM's default 5 s
        grace ran out on a loaded CPU, and the force-killed core left its shared memory
        for the resource tracker to report at exit. AsyncLLM.__del__ shuts down again, at
        interpreter exit when vLLM's module globals are gone (a TypeError on stderr):
        make that a no-op."""
        llm, self.llm = self.llm, None
        if llm is not None:
            llm.shutdown(timeout=SHUTDOWN_GRACE_S)
            llm.shutdown = lambda *args, **kwargs: None

    async def aclose(self) -> None:
        """Stop the engine core and let its output task end inside the event loop, so
        no AsyncLLM is left for interpreter exit (its __del__ then finds vLLM gone)."""
        self.shutdown()
        await asyncio.sleep(0.1)
        gc.collect()


async def replay_on_new_engine(options: EngineOptions, trace: pd.DataFrame,
                               specs: list[RunSpec], warmup: int = 8) -> list[dict[str, Any]]:
    """Start an engine, warm it up, replay the trace once per spec, stop it."""
    engine = LiveEngine.start(options)
    try:
        if warmup > 0:
            await engine.warm_up(warmup)
        return [await engine.replay(trace, spec) for spec in specs]
    finally:
        await engine.aclose()
