"""Fit the roofline's global factors (sim/data/roofline_factors.yaml) to the 13 public vLLM
runs of benchmarks/sim_to_real.py, once for every model, GPU and run, and say how well that
one set generalises.

    python benchmarks/fit_roofline_factors.py [--loo] [--write] [--max-evals 60] [--json out]

Each trial replays every run through sim_to_real's own path (its rebuilt workloads, its
roofline profile per model, GPU and TP, the run's engine limits and KV blocks, its metrics),
with the candidate factors in place of the file's. FITTED's factors are searched by bounded
Nelder-Mead over their logarithms (scipy); request_overhead_s, a constant shift of every
client's TTFT and E2E, is solved inside each trial on the simulated times (a constant delay
before the engine only moves each request's clock). Loss: the sum over runs of the squared
log errors of mean E2E, mean TTFT and ITL (whole runs). The traces and base profiles are
built once. During the search the load stages are shortened (--search-scale: the same
rates, a share of each stage's duration; the engine is stationary within a stage); the
fitted factors are then scored on the whole runs, which is what the tables show.

--loo: leave one run out: for each run, refit on the other 12 (from the all-run optimum)
and score the one left out at those factors, on its whole run. --write: write the factors
file atomically, with the fit's provenance. Exit 0; bad input: one line, exit 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import sim_to_real as s2r

from sim.errors import SimError
from sim.fit import OVERHEAD_BOUNDS
from sim.profile import RooflineProfile, load_profile
from sim.roofline import load_factors
from traces.errors import TraceError
from traces.io import atomic_write

FACTORS_FILE = Path(__file__).resolve().parents[1] / "sim" / "data" / "roofline_factors.yaml"
# The factors each trial searches, with bounds that keep them physical: shares of a
# datasheet peak in (0, 1], fixed costs of microseconds to milliseconds.
# attention_flops_share and interconnect_share stay as assumed: decode attention is bound by
# its KV bytes and decode all-reduces by their latency, and prefix caching leaves these runs
# too little prefill to time attention's FLOP/s (moving it by 2x moves no metric by 0.5%).
FITTED = {
    "memory_bandwidth_share": (0.3, 1.0),
    "step_overhead_s": (1e-5, 5e-3),
    "layer_overhead_s": (1e-6, 2e-4),
    "allreduce_latency_s": (1e-6, 1e-4),
    "gemm_flops_share": (0.1, 1.0),
}
METRICS = s2r.METRICS
# Runs of this many requests or fewer are replayed whole in the search too: shortened, their
# first cycle through the 100 prompts (cold in the prefix cache) would weigh too much.
WHOLE_IN_SEARCH = 1200


@dataclass
class Case:
    """One run, ready to replay: its trace at search length and at full length, the roofline
    profile of its model, GPU and TP, and its measured whole-run means."""

    exp: s2r.Experiment
    search_trace: pd.DataFrame
    full_trace: pd.DataFrame
    profile: RooflineProfile
    actual: pd.Series

    @property
    def run(self) -> str:
        return self.exp.exp_id


def shortened(exp: s2r.Experiment, scale: float) -> s2r.Experiment:
    """The same run with each stage `scale` times as long (same rates)."""
    return replace(exp, stages=tuple((r, d * scale) for r, d in exp.stages))


def prepare(
    experiments: list[s2r.Experiment],
    measured: pd.DataFrame,
    seed: int,
    workdir: Path,
    search_scale: float,
) -> list[Case]:
    """Traces and base profiles, built once (sim_to_real's builders)."""
    actual = s2r.whole_run(measured).xs(s2r.ACTUAL, level="source")
    profiles: dict[tuple[str, str, int], RooflineProfile] = {}
    cases = []
    for exp in experiments:
        key = (exp.model, exp.gpu, exp.tp)
        if key not in profiles:
            path = s2r.make_profile(exp, workdir / f"profile-{len(profiles)}.yaml")
            profiles[key] = load_profile(str(path))
        full = s2r.build_trace(exp, seed, workdir / f"{exp.exp_id}.parquet")
        search = full
        if search_scale < 1.0 and exp.num_requests > WHOLE_IN_SEARCH:
            short = shortened(exp, search_scale)
            search = s2r.build_trace(short, seed, workdir / f"{exp.exp_id}-search.parquet")
        cases.append(Case(exp, search, full, profiles[key], actual.loc[exp.exp_id]))
    return cases


def with_factors(profile: RooflineProfile, factors: dict[str, float]) -> RooflineProfile:
    """The profile priced with these factors and no front-end overhead (added afterwards)."""
    return replace(profile, factors={**profile.factors, **factors}, request_overhead_s=0.0)


def replay(cases: list[Case], factors: dict[str, float], full: bool = False) -> pd.DataFrame:
    """Per run: mean E2E and TTFT (ms) before the front end's overhead, ITL, engine s."""
    rows = {}
    for c in cases:
        trace = c.full_trace if full else c.search_trace
        got = s2r.simulate_run(c.exp, trace, with_factors(c.profile, factors))
        rows[c.run] = s2r.with_client_itl(got, c.actual)
    return pd.DataFrame.from_dict(rows, orient="index")


def with_overhead(sim: pd.DataFrame, overhead_s: float) -> pd.DataFrame:
    """The client's view: every TTFT and E2E longer by the front end's overhead (ITL, over
    the decode span, does not move)."""
    out = sim.copy()
    out["e2e_mean_ms"] = sim["e2e_mean_ms"] + 1000.0 * overhead_s
    out["ttft_mean_ms"] = sim["ttft_mean_ms"] + 1000.0 * overhead_s
    return out


def log_errors(pred: pd.DataFrame, cases: list[Case]) -> np.ndarray:
    """log(predicted / measured), runs x METRICS."""
    actual = pd.DataFrame({c.run: c.actual[list(METRICS)] for c in cases}).T
    return np.log(pred.loc[actual.index, list(METRICS)].to_numpy() / actual.to_numpy())


def best_overhead(sim: pd.DataFrame, cases: list[Case]) -> tuple[float, float]:
    """(request_overhead_s, loss) minimising the loss over the runs for this simulation."""
    from scipy.optimize import minimize_scalar

    lo, hi = (math.log(b) for b in OVERHEAD_BOUNDS)
    res = minimize_scalar(
        lambda x: float(np.sum(log_errors(with_overhead(sim, math.exp(x)), cases) ** 2)),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return math.exp(res.x), float(res.fun)


def searched(cases: list[Case]) -> list[str]:
    """FITTED less the factors no run's profile reads: the GEMM share where every profile
    prices its GEMMs on measured GPU curves, the all-reduce latency where every TP > 1 run
    uses a measured collective."""
    names = list(FITTED)

    def measured(c: Case) -> dict:
        return getattr(c.profile, "measured", None) or {}

    if cases and all(measured(c) for c in cases):
        names.remove("gemm_flops_share")
    multi = [c for c in cases if c.exp.tp > 1]
    if multi and all(measured(c).get("allreduce") for c in multi):
        names.remove("allreduce_latency_s")
    return names


@dataclass
class Fit:
    factors: dict[str, float]  # the searched ones
    request_overhead_s: float
    loss: float
    evaluations: int
    seconds: float


def fit(
    cases: list[Case],
    start: dict[str, float],
    max_evals: int,
    step: float = 0.4,
    log=None,
) -> Fit:
    """Bounded Nelder-Mead over log(FITTED) from `start`; `step`: the initial simplex's
    step in log units."""
    from scipy.optimize import minimize

    names = searched(cases)
    bounds = [(math.log(FITTED[k][0]), math.log(FITTED[k][1])) for k in names]
    x0 = np.array(
        [min(max(math.log(start[k]), lo), hi) for k, (lo, hi) in zip(names, bounds, strict=True)]
    )
    seen: dict[tuple, tuple[float, float]] = {}
    t0 = time.perf_counter()

    def loss(x: np.ndarray) -> float:
        key = tuple(np.round(x, 12))
        if key not in seen:
            factors = {k: math.exp(v) for k, v in zip(names, x, strict=True)}
            seen[key] = best_overhead(replay(cases, factors), cases)
            if log:
                shown = ", ".join(f"{k} {v:.4g}" for k, v in factors.items())
                log(f"  trial {len(seen)}: loss {seen[key][1]:.4f} ({shown})")
        return seen[key][1]

    simplex = [x0]
    for i, (lo, hi) in enumerate(bounds):
        x = x0.copy()
        x[i] = x0[i] + step if x0[i] + step <= hi else max(x0[i] - step, lo)
        simplex.append(x)
    res = minimize(
        loss,
        x0,
        method="Nelder-Mead",
        bounds=bounds,
        options={
            "maxfev": max_evals,
            "xatol": 0.01,
            "fatol": 1e-4,
            "initial_simplex": np.array(simplex),
        },
    )
    best = min(seen, key=lambda k: seen[k][1])
    overhead, value = seen[best]
    factors = {k: math.exp(v) for k, v in zip(names, best, strict=True)}
    _ = res
    return Fit(factors, overhead, value, len(seen), time.perf_counter() - t0)


def scored(
    fit_on: list[Case], factors: dict[str, float], score_on: list[Case] | None = None
) -> tuple[pd.DataFrame, float]:
    """Whole runs at these factors: (our numbers on score_on, as sim_to_real reports them;
    the request overhead that fits the whole runs of fit_on best)."""
    full = replay(fit_on, factors, full=True)
    overhead, _ = best_overhead(full, fit_on)
    if score_on is not None:
        full = replay(score_on, factors, full=True)
    return with_overhead(full, overhead), overhead


def medians(ours: pd.DataFrame, measured: pd.DataFrame) -> dict[str, float]:
    errors = s2r.error_table(measured, ours)
    m = s2r.median_abs_errors(errors)
    m = m[m["source"] == s2r.OURS].set_index("metric")["median_abs_pct"]
    return {k: float(m[k]) for k in METRICS}


def ttft_against_decode_step(cases: list[Case]) -> dict[str, float]:
    """The measured TTFT (ms) as a + b x the measured decode step (ms), least squares over the
    runs of short prompts (reasoning-lite's long ones miss the prefix cache more): the step is
    the decode span over the generated tokens, (E2E - TTFT) / (output_len - 1). The simulator
    starts a new request in the step after it arrives, about 1.5 steps to its first token."""
    runs = [c for c in cases if c.exp.system_prompt_len + c.exp.question_len < 1000]
    step = np.array(
        [
            (c.actual["e2e_mean_ms"] - c.actual["ttft_mean_ms"]) / (c.exp.output_len - 1)
            for c in runs
        ]
    )
    ttft = np.array([c.actual["ttft_mean_ms"] for c in runs])
    b, a = np.polyfit(step, ttft, 1)
    r2 = 1.0 - np.sum((ttft - (a + b * step)) ** 2) / np.sum((ttft - ttft.mean()) ** 2)
    return {"runs": len(runs), "a_ms": float(a), "b_steps": float(b), "r2": float(r2)}


def signed_errors(ours: pd.DataFrame, cases: list[Case]) -> pd.DataFrame:
    e = 100.0 * (np.exp(log_errors(ours, cases)) - 1.0)
    return pd.DataFrame(e, index=[c.run for c in cases], columns=list(METRICS))


# ------------------------------------------------------------------------ the factors file


FACTORS_TEMPLATE = """\
# Global efficiency factors of the roofline step-time estimate. sim/roofline.py reads this
# file and copies the values into every profile `ltrsched profile roofline` writes. ONE set
# for every model, GPU and experiment: nothing here is tuned per run, per model or per GPU.
# benchmarks/fit_roofline_factors.py writes it (change the script, not the numbers):
{provenance}
factors:
  # Achieved shares of the datasheet peaks. A GPU with measured curves
  # (sim/data/gpu_curves.json) prices its GEMMs on them, not on these shares.
  # memory_bandwidth_share: KV reads and writes (and, on datasheet-only GPUs, weight reads);
  # gemm_flops_share: datasheet-only GPUs (FITTED only when a run reads it; the provenance
  # above says which factors were). ASSUMED: attention_flops_share (typical of
  # FlashAttention; these runs do not move it) and interconnect_share.
  gemm_flops_share: {gemm_flops_share:.4g}
  attention_flops_share: {attention_flops_share:.4g}
  memory_bandwidth_share: {memory_bandwidth_share:.4g}
  interconnect_share: {interconnect_share:.4g}
  # FITTED: the fixed cost of one all-reduce (vLLM's custom all-reduce over NVLink; a
  # profile made with --measured-allreduce uses the measured NCCL collective instead).
  allreduce_latency_s: {allreduce_latency_s:.4g}
  # FITTED: scheduler, input preparation and sampling per step that the GPU does not hide
  # (vLLM 0.15 plans step N+1 while step N runs, so little of it shows).
  step_overhead_s: {step_overhead_s:.4g}
  # FITTED: the fixed time of one layer's kernels in a step (launch, ramp-up, tail of its
  # ~10 kernels), times the model's layers, in every step.
  layer_overhead_s: {layer_overhead_s:.4g}

# FITTED: added to each client's TTFT and end-to-end latency, outside the engine's steps.
# More than a front end's few ms (HTTP, tokenizer, detokenizer): it also stands in for the
# step a new request waits under vLLM's async scheduling (step N+1 is planned while step N
# runs), which the engine does not model. On the {ttft_runs} short-prompt runs the measured
# TTFT is {ttft_a_ms:.1f} ms + {ttft_b_steps:.2f} decode steps (R^2 {ttft_r2:.3f});
# the engine's is about 1.5 steps.
request_overhead_s: {request_overhead_s:.4g}

memory:
  # FITTED: vLLM's non-KV memory besides weights and the forward pass's activations
  # (CUDA context growth, cuBLAS/NCCL workspaces, sampler buffers, compile caches), per
  # GPU: the median, over the dense-model runs in sim/data/vllm_kv_blocks.csv, of
  # memory x utilisation - weights - KV blocks x block bytes - activation estimate.
  # Refit: sim.roofline.fit_non_torch_memory() (tests/sim/test_roofline.py checks it).
  non_torch_memory_gib: {non_torch_memory_gib:g}
"""


def factors_text(
    f: Fit, provenance: list[str], non_torch_memory_gib: float, ttft: dict[str, float]
) -> str:
    """The factors file: the fitted values, the assumed ones as they are, the provenance;
    `ttft`: ttft_against_decode_step's line."""
    values = {**load_factors().factors, **f.factors}
    return FACTORS_TEMPLATE.format(
        provenance="".join(f"#   {line}\n" for line in provenance),
        request_overhead_s=f.request_overhead_s,
        non_torch_memory_gib=non_torch_memory_gib,
        ttft_runs=ttft["runs"],
        ttft_a_ms=ttft["a_ms"],
        ttft_b_steps=ttft["b_steps"],
        ttft_r2=ttft["r2"],
        **values,
    )


# ------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=s2r.DATA_DIR)
    ap.add_argument("--only", nargs="+", help="fit on these runs only (exp_id or its number)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the rebuilt workloads")
    ap.add_argument("--max-evals", type=int, default=60, help="trials of the all-run fit")
    ap.add_argument(
        "--holdout",
        choices=("model", "run", "none"),
        default="model",
        help="cross-validation: refit without each model's runs (or each run) and score them",
    )
    ap.add_argument("--holdout-evals", type=int, default=25, help="trials of each held-out fit")
    ap.add_argument(
        "--search-scale", type=float, default=0.25, help="share of each stage in the search"
    )
    ap.add_argument("--write", action="store_true", help="write " + str(FACTORS_FILE.name))
    ap.add_argument("--json", type=Path, help="write the numbers to this file")
    ap.add_argument("--workdir", type=Path, help="keep traces and profiles here")
    args = ap.parse_args(argv)
    try:
        if not 0 < args.search_scale <= 1:
            raise s2r.SimToRealError("--search-scale: must be in (0, 1]")
        if args.workdir:
            args.workdir.mkdir(parents=True, exist_ok=True)
            return run(args, args.workdir, argv)
        with tempfile.TemporaryDirectory() as tmp:
            return run(args, Path(tmp), argv)
    except (s2r.SimToRealError, TraceError, SimError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def holdout_groups(cases: list[Case], by: str) -> dict[str, list[Case]]:
    """Folds of the cross-validation: each run alone, or the runs of each model."""
    groups: dict[str, list[Case]] = {}
    for c in cases:
        groups.setdefault(c.run if by == "run" else c.exp.model, []).append(c)
    return groups


def _shown(m: dict[str, float]) -> str:
    return ", ".join(f"{s2r.METRIC_LABELS[k]} {m[k]:.1f}%" for k in METRICS)


def _table(errors: pd.DataFrame) -> str:
    t = errors.rename(columns=s2r.METRIC_LABELS)
    return t.to_string(float_format=lambda x: f"{x:+.1f}")


def at_bounds(factors: dict[str, float]) -> str:
    """The fitted factors that ended within 1% of a bound of FITTED, as 'name value, ...'."""
    hits = [
        f"{k} {v:.4g}"
        for k, v in factors.items()
        if k in FITTED and (v <= FITTED[k][0] * 1.01 or v >= FITTED[k][1] * 0.99)
    ]
    return ", ".join(hits)


def write_factors(args, argv, best: Fit, out: dict, current) -> None:
    """The factors file, atomically, with what was fitted, on what, how, and how well."""
    cmd = "python benchmarks/fit_roofline_factors.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    names = list(best.factors)
    prov = [
        f"what: {', '.join(names[:3])},",
        f"  {', '.join(names[3:])}, request_overhead_s; one set for all runs",
        f"on: the {len(out['runs'])} runs in benchmarks/data/sim_to_real/ (vLLM 0.15.1, H100-SXM,",
        "  TP 1-4, 6 models; its README gives the sources and what the runs did)",
        "loss: the sum over runs of squared log errors of mean E2E, mean TTFT and ITL",
        f"command: {cmd.strip()} ({best.evaluations} trials from this file's previous values)",
        f"date: {dt.date.today().isoformat()}",
        f"median |error| over the runs (whole runs): {_shown(out['median_abs_pct'])}",
    ]
    pinned = at_bounds(best.factors)
    if pinned:
        prov.append(f"at a bound of the search box (FITTED in the script): {pinned}")
    if "holdout" in out:
        prov.append(
            f"held out by {args.holdout} (fitted without it): "
            + _shown(out["holdout"]["median_abs_pct"])
        )
    text = factors_text(
        best, prov, current.non_torch_memory_bytes / (1 << 30), out["ttft_against_decode_step"]
    )
    atomic_write(FACTORS_FILE, lambda tmp: Path(tmp).write_text(text))
    print(f"wrote {FACTORS_FILE.relative_to(FACTORS_FILE.parents[2])}", flush=True)


def run(args: argparse.Namespace, workdir: Path, argv: list[str] | None) -> int:
    experiments = s2r.select(s2r.read_experiments(args.data / "experiments.csv"), args.only)
    measured = s2r.read_measurements(args.data / "measurements.csv", experiments)
    measured = measured[measured["exp_id"].isin([e.exp_id for e in experiments])]
    missing = s2r.missing_pieces()
    if missing:
        raise s2r.SimToRealError("cannot simulate yet, missing: " + "; ".join(missing))
    cases = prepare(experiments, measured, args.seed, workdir, args.search_scale)
    current = load_factors()
    start = {}
    for k, (lo, hi) in FITTED.items():
        v = current.factors[k]
        start[k] = v if lo <= v <= hi else math.sqrt(lo * hi)

    _log(f"fitting {', '.join(searched(cases))} on {len(cases)} runs ...")
    best = fit(cases, start, args.max_evals, log=_log)
    after, overhead = scored(cases, best.factors)
    best = replace(best, request_overhead_s=overhead)
    errors = signed_errors(after, cases)
    out = {
        "runs": [c.run for c in cases],
        "fitted": {**best.factors, "request_overhead_s": best.request_overhead_s},
        "trials": best.evaluations,
        "search_seconds": best.seconds,
        "search_scale": args.search_scale,
        "median_abs_pct": medians(after, measured),
        "signed_pct": errors.to_dict("index"),
        "engine_s": after["engine_s"].to_dict(),
        "ttft_against_decode_step": ttft_against_decode_step(cases),
    }
    print(f"fitted on {len(cases)} runs ({best.evaluations} trials, {best.seconds:.0f} s):")
    for k, v in out["fitted"].items():
        print(f"  {k}: {v:.4g}")
    print("signed % error at the fitted factors (whole runs):")
    print(_table(errors))
    print(f"median |error|: {_shown(out['median_abs_pct'])}")
    line = out["ttft_against_decode_step"]
    print(
        f"measured TTFT = {line['a_ms']:.1f} ms + {line['b_steps']:.2f} decode steps "
        f"(R^2 {line['r2']:.3f}, {line['runs']} short-prompt runs); slowest run "
        f"{after['engine_s'].max():.2f} s of engine time ({after['engine_s'].idxmax()})"
    )
    if args.write:
        write_factors(args, argv, best, out, current)

    if args.holdout != "none":
        held, fits = [], {}
        for name, test in holdout_groups(cases, args.holdout).items():
            train = [c for c in cases if c not in test]
            _log(f"leave out {name} ({len(test)} runs) ...")
            f = fit(train, best.factors, args.holdout_evals, step=0.15, log=_log)
            got, overhead = scored(train, f.factors, test)
            held.append(got)
            fits[name] = {**f.factors, "request_overhead_s": overhead}
        cv = pd.concat(held).loc[[c.run for c in cases]]
        cv_errors = signed_errors(cv, cases)
        out["holdout"] = {
            "by": args.holdout,
            "median_abs_pct": medians(cv, measured),
            "signed_pct": cv_errors.to_dict("index"),
            "fits": fits,
        }
        print(f"held out by {args.holdout}: signed % error of each run at the factors fitted")
        print("without it:")
        print(_table(cv_errors))
        print(f"median |error| held out: {_shown(out['holdout']['median_abs_pct'])}")

    if args.write and "holdout" in out:
        write_factors(args, argv, best, out, current)
    if args.json:
        text = json.dumps(out, indent=2, default=float)
        atomic_write(args.json, lambda tmp: Path(tmp).write_text(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
