"""How the plug-in is configured in vLLM's engine-core process.

The engine core is a separate process, so the policy arrives as a spec string, not an
object. Sources, later ones winning:
1. environment: LTRSCHED_POLICY (spec, default "fcfs"), LTRSCHED_STEP_LOG (JSONL path),
   LTRSCHED_TRACE (trace file for Policy.prepare), LTRSCHED_PREDICTOR (a predictor model
   directory: the plug-in scores each request that arrives without a score),
   LTRSCHED_PREDICTOR_DEVICE (auto, cpu, cuda, cuda:N; default auto),
   LTRSCHED_PREDICTOR_MODE (overlap: score while the model runs, the default; sync);
2. vLLM's additional config: `--additional-config '{"ltrsched": {"policy": ...,
   "step_log": ..., "trace": ..., "predictor": ..., "predictor_device": ...,
   "predictor_mode": ...}}'`
   (`additional_config=` in engine args);
3. per run, the ltrsched.policy / .step_log / .trace keys a replay driver sends with
   each request (live/xargs.py), so one engine serves several policies in turn.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from live.xargs import RunTag

PLUGIN_PATH = "live.scheduler.PolicyScheduler"  # what vLLM's scheduler_cls is given
CPU_MEMORY_UTILIZATION = 0.3  # on CPU the share of RAM vLLM keeps for the KV cache
ENV_POLICY = "LTRSCHED_POLICY"
ENV_STEP_LOG = "LTRSCHED_STEP_LOG"
ENV_TRACE = "LTRSCHED_TRACE"
ENV_PREDICTOR = "LTRSCHED_PREDICTOR"
ENV_PREDICTOR_DEVICE = "LTRSCHED_PREDICTOR_DEVICE"
ENV_PREDICTOR_MODE = "LTRSCHED_PREDICTOR_MODE"
ENGINE_KEYS = ("policy", "step_log", "trace", "predictor", "predictor_device", "predictor_mode")
DEFAULT_POLICY = "fcfs"


@dataclass(frozen=True)
class PluginConfig:
    """The plug-in's settings for one run."""

    policy: str = DEFAULT_POLICY
    step_log: str | None = None
    trace: str | None = None
    predictor: str | None = None  # engine-wide: loaded once when the engine starts
    predictor_device: str = "auto"
    predictor_mode: str = "overlap"  # or "sync" (live/inserver.py)

    @classmethod
    def from_engine(
        cls, additional_config: Any = None, environ: Mapping[str, str] | None = None
    ) -> PluginConfig:
        """Environment first, then vLLM's additional_config["ltrsched"] over it."""
        env = os.environ if environ is None else environ
        cfg = cls(
            policy=env.get(ENV_POLICY) or DEFAULT_POLICY,
            step_log=env.get(ENV_STEP_LOG) or None,
            trace=env.get(ENV_TRACE) or None,
            predictor=env.get(ENV_PREDICTOR) or None,
            predictor_device=env.get(ENV_PREDICTOR_DEVICE) or "auto",
            predictor_mode=env.get(ENV_PREDICTOR_MODE) or "overlap",
        )
        extra = (additional_config.get("ltrsched")
                 if isinstance(additional_config, Mapping) else None)
        if isinstance(extra, Mapping):
            cfg = replace(cfg, **{k: str(v) for k, v in extra.items()
                                  if k in ENGINE_KEYS and v})
        return cfg

    def for_run(self, run: RunTag) -> PluginConfig:
        """This config with a run's own policy, step log and trace where it gives them."""
        return replace(
            self,
            policy=run.policy or self.policy,
            step_log=run.step_log or self.step_log,
            trace=run.trace or self.trace,
        )
