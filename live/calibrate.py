"""Fit the simulator's step-time model to a live run's logged steps.

t = c0 + prefill_token * P + prefill_sq * sum(chunk^2) + decode_req * D + decode_ctx_token * C
+ prefill_ctx_token * prefill_ctx (sim/profile.py; prefill_ctx: each chunk's tokens times
the tokens cached before it, 0 in step logs written before it was logged), by
non-negative least squares over the run's non-empty steps, and
written as a profile file `ltrsched simulate --profile` loads. sim/ is not imported:
the YAML layout is written here and checked by loading it with the simulator.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy.optimize import nnls

from live.errors import LiveError
from traces.io import atomic_write
from traces.results import read_run

FEATURES = ("prefill_tokens", "prefill_sq_tokens", "decode_requests", "decode_context_tokens",
            "prefill_ctx_tokens")
COEFFICIENTS = ("c0_s", "prefill_token_s", "prefill_sq_s", "decode_req_s", "decode_ctx_token_s",
                "prefill_ctx_token_s")
ENGINE_KEYS = ("num_gpu_blocks", "block_size", "max_num_seqs", "max_num_batched_tokens",
               "chunked_prefill", "max_model_len")
MIN_STEPS = 20
# Runs pooled into one fit must come from one engine: same model, device, version, limits.
SAME_ENGINE_KEYS = ("model", "device", "vllm_version", *ENGINE_KEYS)


@dataclass(frozen=True)
class StepFit:
    """Fitted coefficients and how well they reproduce the steps they came from."""

    coefficients: dict[str, float]
    steps: int
    mape: float
    r2: float
    p50_abs_error_s: float
    p90_abs_error_s: float
    total_time_error: float  # sum of predicted over sum of measured step times, minus 1
    ranges: dict[str, list[float]]  # p5, p50, p95 of each feature over the fitted steps

    def warnings(self) -> list[str]:
        """Features the run did not vary: their coefficients are not identified, and a
        trace that leaves this range is extrapolated."""
        return [f"{name} hardly varies over the fitted steps (p5 {lo:g}, p95 {hi:g}): "
                "calibrate on a run that spans the loads you will simulate (a rate ramp)"
                for name, (lo, _, hi) in self.ranges.items()
                if name == "decode_requests" and hi - lo < 2]

    def error_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "mape": round(self.mape, 6),
            "r2": round(self.r2, 6),
            "p50_abs_error_s": float(f"{self.p50_abs_error_s:.6g}"),
            "p90_abs_error_s": float(f"{self.p90_abs_error_s:.6g}"),
            "total_time_error": round(self.total_time_error, 6),
            "on": "the fitted steps",
            "feature_p5_p50_p95": self.ranges,
        }


def fit_step_time(steps: pd.DataFrame) -> StepFit:
    """NNLS of duration_s on [1, P, sum chunk^2, D, C, prefill_ctx] over steps that
    scheduled work."""
    if "prefill_ctx_tokens" not in steps.columns:  # logged before prefix caching was
        steps = steps.assign(prefill_ctx_tokens=0)
    use = steps[np.isfinite(steps["duration_s"]) & (steps["duration_s"] > 0)]
    if "scheduled_requests" in use.columns:
        use = use[use["scheduled_requests"] > 0]
    if len(use) < MIN_STEPS:
        raise LiveError(f"calibrate: {len(use)} usable steps, need at least {MIN_STEPS} "
                        "(was steps.parquet written by a live replay?)")
    X = np.column_stack([np.ones(len(use))] + [use[c].to_numpy(np.float64) for c in FEATURES])
    y = use["duration_s"].to_numpy(np.float64)
    scale = np.where(X.max(axis=0) > 0, X.max(axis=0), 1.0)  # condition the columns
    coef, _ = nnls(X / scale, y)
    coef = coef / scale
    pred = X @ coef
    err = np.abs(pred - y)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return StepFit(
        coefficients={k: float(v) for k, v in zip(COEFFICIENTS, coef, strict=True)},
        steps=len(use),
        mape=float(np.mean(err / y)),
        r2=1.0 - float((err**2).sum()) / ss_tot if ss_tot > 0 else float("nan"),
        p50_abs_error_s=float(np.percentile(err, 50)),
        p90_abs_error_s=float(np.percentile(err, 90)),
        total_time_error=float(pred.sum() / y.sum() - 1.0),
        ranges={c: [float(v) for v in np.percentile(use[c].to_numpy(np.float64), [5, 50, 95])]
                for c in FEATURES},
    )


def build_profile(fit: StepFit, summary: dict[str, Any], run_names: list[str],
                  name: str | None = None) -> dict[str, Any]:
    """The profile mapping in sim/profile.py's layout, with where and how it was measured."""
    model = Path(str(summary.get("model", "model"))).name
    device = str(summary.get("device", "unknown device"))
    version = summary.get("vllm_version")
    date = dt.date.today().isoformat()
    name = name or f"{model}_{device.split(':')[0]}_vllm{version}_fitted"
    method = (
        f"Non-negative least squares (scipy.optimize.nnls) of each step's duration on "
        f"[1, prefill_tokens, sum of squared prefill chunks, decode requests, their context "
        f"tokens, prefill chunk x cached context tokens], over the {fit.steps} non-empty "
        f"steps of the live "
        f"{'run' if len(run_names) == 1 else 'runs'} {', '.join(map(repr, run_names))} "
        f"(model {model}, policy {summary.get('policy')}), logged by the ltrsched scheduler "
        f"plug-in on {device}, vLLM {version}, {date}. A step's duration runs from its "
        f"schedule() to the next one while the engine stayed busy."
    )
    engine = {k: summary[k] for k in ENGINE_KEYS if summary.get(k) is not None}
    return {
        "name": name,
        "model": model,
        "gpu": device,
        "vllm_version": version,
        "source": "measured",
        "method": method,
        "fit_error": fit.error_dict(),
        "coefficients": {**{k: float(f"{v:.6g}") for k, v in fit.coefficients.items()},
                         "swap_block_s": 0.0},
        "engine": engine,
    }


def calibrate(run_dirs: str | Path | list[str | Path], out: str | Path,
              name: str | None = None) -> dict[str, Any]:
    """Fit the step-time model to the steps of one live run, or of several runs of one
    engine pooled (replicates average out a machine's run-to-run drift); write the
    profile YAML to out, atomically."""
    dirs = [Path(d) for d in (run_dirs if isinstance(run_dirs, list) else [run_dirs])]
    if not dirs:
        raise LiveError("calibrate: no --run given")
    frames, summaries = [], []
    for run_dir in dirs:
        if not (run_dir / "steps.parquet").is_file() or not (run_dir / "summary.json").is_file():
            raise LiveError(f"--run {run_dir}: not a run directory (needs steps.parquet and "
                            "summary.json from `ltrsched live replay`)")
        _, steps, summary = read_run(run_dir)
        if summary.get("engine") != "vllm":
            raise LiveError(f"--run {run_dir}: not a live run (engine {summary.get('engine')!r})")
        for key in SAME_ENGINE_KEYS:
            if summaries and summary.get(key) != summaries[0].get(key):
                raise LiveError(f"--run {run_dir}: {key} is {summary.get(key)!r} but "
                                f"{summaries[0].get(key)!r} in --run {dirs[0]}; pool only runs "
                                "of one engine")
        frames.append(steps)
        summaries.append(summary)
    fit = fit_step_time(pd.concat(frames, ignore_index=True))
    profile = build_profile(fit, summaries[0], [d.name for d in dirs], name)
    if fit.warnings():
        profile["fit_warnings"] = fit.warnings()
    text = ("# Fitted by `ltrsched live calibrate` from live vLLM runs.\n"
            + yaml.safe_dump(profile, sort_keys=False, width=100))
    atomic_write(out, lambda tmp: Path(tmp).write_text(text))
    return profile
