"""Calibrate a profile from `vllm bench serve` results: simulate each bench run's
requests at its arrival rate, and search a few global knobs of the profile (a
derivative-free, bounded Nelder-Mead over their logarithms) until the simulated
aggregates match the bench's. The knobs, per form:

- roofline: compute (both FLOP/s shares, scaled together), memory_bandwidth_share,
  step_overhead_s;
- linear: prefill (prefill_token_s, prefill_sq_s, prefill_ctx_token_s scaled together),
  decode (decode_req_s, decode_ctx_token_s), c0_s;
and for both request_overhead_s, searched inside each trial on its simulated times.

The bench JSON is vLLM's (vllm/benchmarks/serve.py, `--save-result`): request_rate ("inf"
or a number), burstiness (gamma shape, 1 = Poisson), num_prompts, and mean_/median_/pNN_
of ttft, tpot, itl, e2el in ms, request_throughput, output_throughput; input_lens and
output_lens when saved with --save-detailed (then they replace the trace's lengths).
Client metrics from a simulated requests table (`bench_metrics`): TTFT and end-to-end
latency gain request_overhead_s each (the front end, outside the engine; the simulation
itself runs with 0, so the overhead is a constant shift); TPOT per request is
(latency - TTFT) / (output tokens - 1); mean ITL pools every gap: sum(latency - TTFT) /
sum(output tokens - 1).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.config import EngineConfig
from sim.errors import SimError
from sim.profile import COEFFICIENTS, PROFILE_LIMITS, RooflineProfile, StepTimeProfile

# Bench metrics the fit reads by default (medians and means; tails are reported only).
DEFAULT_METRICS = (
    "mean_ttft_ms",
    "median_ttft_ms",
    "mean_tpot_ms",
    "median_tpot_ms",
    "mean_itl_ms",
    "mean_e2el_ms",
    "median_e2el_ms",
)
_STAT = re.compile(r"^(mean|median|p\d+(?:\.\d+)?)_(ttft|tpot|e2el)_ms$")
_OTHER = ("mean_itl_ms", "request_throughput", "output_throughput")


def is_supported_metric(key: str) -> bool:
    return key in _OTHER or bool(_STAT.match(key))


@dataclass(frozen=True)
class Bench:
    """One `vllm bench serve` result: its traffic and the aggregates it measured."""

    path: str
    request_rate: float  # math.inf for "inf"
    burstiness: float
    num_prompts: int
    metrics: dict[str, float]
    input_lens: list[int] | None = None
    output_lens: list[int] | None = None


def read_bench(path: str | Path) -> Bench:
    """A bench JSON; one-line errors name the file and the key."""
    where = f"bench {path}"
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise SimError(f"{where}: cannot read ({e.strerror})") from None
    except ValueError as e:
        raise SimError(f"{where}: not JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise SimError(f"{where}: not a vllm bench serve result (a JSON object)")
    rate = data.get("request_rate")
    if rate in ("inf", "Infinity") or rate == math.inf:
        rate = math.inf
    elif not _num(rate) or rate <= 0:
        raise SimError(f'{where}: request_rate must be a number > 0 or "inf", got {rate!r}')
    if data.get("max_concurrency") not in (None, 0):
        raise SimError(
            f"{where}: max_concurrency {data['max_concurrency']} (a closed loop of "
            "clients) is not modelled; give an open-loop run"
        )
    if data.get("ramp_up_strategy"):
        raise SimError(f"{where}: ramp_up_strategy runs are not modelled")
    burst = data.get("burstiness", 1.0)
    if not _num(burst) or burst <= 0:
        raise SimError(f"{where}: burstiness must be a number > 0, got {burst!r}")
    n = data.get("num_prompts", data.get("completed"))
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise SimError(f"{where}: num_prompts must be an integer >= 1, got {n!r}")
    metrics = {k: float(v) for k, v in data.items() if is_supported_metric(k) and _num(v)}
    if not metrics:
        raise SimError(
            f"{where}: no metric to fit (expected keys such as mean_ttft_ms, "
            "mean_tpot_ms, mean_itl_ms, mean_e2el_ms)"
        )
    lens = [data.get("input_lens"), data.get("output_lens")]
    if all(isinstance(x, list) and len(x) == n for x in lens):
        inp, out = ([int(v) for v in x] for x in lens)
        if min(inp) < 1 or min(out) < 1:
            raise SimError(f"{where}: input_lens and output_lens must be >= 1")
    else:
        inp = out = None
    return Bench(str(path), float(rate), float(burst), int(n), metrics, inp, out)


def bench_requests(bench: Bench, trace: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The bench's requests: the trace's first num_prompts rows (lengths from the bench
    when it saved them), arriving as vLLM's client sends them: gamma gaps of mean 1/rate
    and shape burstiness, the first at t = 0; all at once for rate inf."""
    from traces.arrivals import ArrivalProcess, arrival_times

    n = bench.num_prompts
    if bench.input_lens is None and len(trace) < n:
        raise SimError(
            f"bench {bench.path}: num_prompts {n} but the trace has {len(trace)} "
            "rows (and the bench saved no input_lens/output_lens)"
        )
    df = pd.DataFrame({"request_id": np.arange(n)})
    if bench.input_lens is not None:
        df["prompt_tokens"] = np.asarray(bench.input_lens, dtype=np.int64)
        df["output_tokens"] = np.asarray(bench.output_lens, dtype=np.int64)
    else:
        head = trace.iloc[:n]
        df["prompt_tokens"] = head["prompt_tokens"].to_numpy(np.int64)
        df["output_tokens"] = head["output_tokens"].to_numpy(np.int64)
    if math.isinf(bench.request_rate):
        process = ArrivalProcess("burst")
    else:
        process = ArrivalProcess(
            "gamma", rate=bench.request_rate, cv=1.0 / math.sqrt(bench.burstiness)
        )
    t = arrival_times(process, n, np.random.default_rng(seed))
    df["arrival_s"] = t - t[0]
    return df[["request_id", "arrival_s", "prompt_tokens", "output_tokens"]]


@dataclass(frozen=True)
class ClientTimes:
    """The finished requests of a simulated run as a client sees them, before the front
    end's overhead: every bench metric is a cheap function of these and the overhead."""

    ttft_ms: np.ndarray
    e2el_ms: np.ndarray
    decode_ms: np.ndarray  # (latency - TTFT) of requests with more than one output token
    decode_tokens: np.ndarray  # their output tokens - 1
    output_tokens: int
    span_s: float  # first arrival to last finish

    @classmethod
    def of(cls, requests: pd.DataFrame) -> ClientTimes:
        done = requests[requests["status"] == "finished"]
        out = done["output_tokens"].to_numpy()
        multi = out > 1
        span = float(done["finish_s"].max() - requests["arrival_s"].min()) if len(done) else 0.0
        return cls(
            ttft_ms=done["ttft_s"].to_numpy() * 1e3,
            e2el_ms=done["latency_s"].to_numpy() * 1e3,
            decode_ms=(done["finish_s"] - done["first_token_s"]).to_numpy()[multi] * 1e3,
            decode_tokens=out[multi] - 1,
            output_tokens=int(out.sum()),
            span_s=span,
        )

    def metric(self, key: str, overhead_s: float = 0.0) -> float:
        """One bench key (e.g. mean_ttft_ms, p99_tpot_ms, mean_itl_ms) with the overhead
        added to each TTFT and end-to-end latency; nan when no request qualifies."""
        if key == "mean_itl_ms":
            n = self.decode_tokens.sum()
            return float(self.decode_ms.sum() / n) if n else math.nan
        if key in ("request_throughput", "output_throughput"):
            span = self.span_s + overhead_s
            if span <= 0:
                return math.nan
            count = len(self.e2el_ms) if key == "request_throughput" else self.output_tokens
            return count / span
        stat, name = _STAT.match(key).groups()
        if name == "tpot":
            v = self.decode_ms / self.decode_tokens
        else:
            v = (self.ttft_ms if name == "ttft" else self.e2el_ms) + overhead_s * 1e3
        if not len(v):
            return math.nan
        if stat == "mean":
            return float(np.mean(v))
        return float(np.percentile(v, 50.0 if stat == "median" else float(stat[1:])))


STANDARD_METRICS = (
    tuple(
        f"{stat}_{name}_ms"
        for name in ("ttft", "tpot", "e2el")
        for stat in ("mean", "median", "p90", "p99")
    )
    + _OTHER
)


def bench_metrics(requests: pd.DataFrame, request_overhead_s: float = 0.0) -> dict[str, float]:
    """vLLM bench serve's aggregates of a requests table (run schema), in its keys."""
    times = ClientTimes.of(requests)
    m = {k: times.metric(k, request_overhead_s) for k in STANDARD_METRICS}
    return {k: v for k, v in m.items() if math.isfinite(v)}


# ------------------------------------------------------------------------ knobs


@dataclass(frozen=True)
class Knob:
    name: str
    lo: float
    hi: float


# request_overhead_s, seconds: searched inside each trial (it needs no new simulation).
OVERHEAD_BOUNDS = (1e-6, 1.0)


def knobs_for(profile: StepTimeProfile) -> list[Knob]:
    """The knobs that change the engine's step times (each trial simulates them)."""
    if isinstance(profile, RooflineProfile):
        f = profile.factors
        top = 1.0 / max(f["gemm_flops_share"], f["attention_flops_share"])
        return [
            Knob("compute", 0.05, top),
            Knob("memory_bandwidth_share", 0.05, 1.0),
            Knob("step_overhead_s", 1e-6, 0.1),
        ]
    return [
        Knob("prefill", 0.05, 20.0),
        Knob("decode", 0.05, 20.0),
        Knob("c0_s", 1e-6, 1.0),
    ]


def knob_values(profile: StepTimeProfile) -> dict[str, float]:
    """The knobs' current values (compute, prefill, decode are multipliers: 1), and
    request_overhead_s."""
    values = {"request_overhead_s": profile.request_overhead_s}
    for k in knobs_for(profile):
        if k.name in ("compute", "prefill", "decode"):
            values[k.name] = 1.0
        elif k.name == "c0_s":
            values[k.name] = profile.c0_s
        else:
            values[k.name] = profile.factors[k.name]
    return values


def apply_knobs(profile: StepTimeProfile, values: dict[str, float]) -> StepTimeProfile:
    """A copy of profile with the knobs set (multipliers scale the profile's speeds)."""
    out = profile
    if "request_overhead_s" in values:
        out = replace(out, request_overhead_s=float(values["request_overhead_s"]))
    if isinstance(profile, RooflineProfile):
        f = dict(profile.factors)
        if "compute" in values:  # a multiplier on achieved FLOP/s
            for k in ("gemm_flops_share", "attention_flops_share"):
                f[k] = min(1.0, f[k] * values["compute"])
        for k in ("memory_bandwidth_share", "step_overhead_s"):
            if k in values:
                f[k] = min(1.0, float(values[k])) if k.endswith("_share") else float(values[k])
        m = profile.measured
        if m:  # GEMMs priced on measured curves: the same knobs move those curves
            m = dict(m)
            if "compute" in values:
                m["flops_scale"] = m.get("flops_scale", 1.0) * values["compute"]
            if "memory_bandwidth_share" in values:
                ratio = f["memory_bandwidth_share"] / profile.factors["memory_bandwidth_share"]
                m["weight_bandwidth_bytes_s"] = m["weight_bandwidth_bytes_s"] * ratio
        return replace(out, factors=f, measured=m)
    changes = {}
    if "prefill" in values:  # a multiplier on time
        for k in ("prefill_token_s", "prefill_sq_s", "prefill_ctx_token_s"):
            changes[k] = getattr(profile, k) * values["prefill"]
    if "decode" in values:
        for k in ("decode_req_s", "decode_ctx_token_s"):
            changes[k] = getattr(profile, k) * values["decode"]
    if "c0_s" in values:
        changes["c0_s"] = float(values["c0_s"])
    return replace(out, **changes)


# ------------------------------------------------------------------------ the fit


@dataclass
class FitResult:
    profile: StepTimeProfile
    values: dict[str, float]
    evaluations: int
    errors: dict[str, dict[str, float]]  # bench path -> metric -> relative error
    holdout_errors: dict[str, dict[str, float]]
    predicted: dict[str, dict[str, float]]


def simulate_bench(
    profile: StepTimeProfile,
    bench: Bench,
    trace: pd.DataFrame,
    config: EngineConfig,
    seed: int = 0,
) -> ClientTimes:
    """The bench's requests simulated under profile, before the front end's overhead
    (the simulation runs with request_overhead_s 0: a constant delay per request only
    shifts each client's clock)."""
    from sim.run import simulate

    quiet = replace(profile, request_overhead_s=0.0)
    return ClientTimes.of(
        simulate(bench_requests(bench, trace, seed), "fcfs", quiet, config).requests
    )


def predict_bench(
    profile: StepTimeProfile,
    bench: Bench,
    trace: pd.DataFrame,
    config: EngineConfig,
    seed: int = 0,
) -> dict[str, float]:
    """The bench's metrics as the simulator predicts them under profile."""
    times = simulate_bench(profile, bench, trace, config, seed)
    return {k: times.metric(k, profile.request_overhead_s) for k in bench.metrics}


def engine_config_for(profile: StepTimeProfile, **given: Any) -> EngineConfig:
    """The profile's engine limits, overridden by the given (not None) ones."""
    limits = {k: profile.engine[k] for k in PROFILE_LIMITS if profile.engine.get(k) is not None}
    cfg = EngineConfig(**{**limits, **{k: v for k, v in given.items() if v is not None}})
    cfg.validate()
    return cfg


def fit_profile(
    profile: StepTimeProfile,
    benches: list[Bench],
    trace: pd.DataFrame,
    config: EngineConfig,
    metrics: tuple[str, ...] | None = None,
    holdout: list[Bench] | None = None,
    max_evals: int = 80,
    seed: int = 0,
) -> FitResult:
    """Search the knobs so the simulation reproduces the benches' metrics (the sum of
    squared log ratios, equal weights); report the relative error per bench and metric,
    on the fitted benches and on the held-out ones. The engine knobs cost a simulation
    per trial; request_overhead_s is searched inside each trial on the simulated times
    (it needs no new simulation)."""
    from scipy.optimize import minimize, minimize_scalar

    if not benches:
        raise SimError("profile fit: give at least one --bench")
    wanted = metrics or DEFAULT_METRICS
    for m in wanted:
        if not is_supported_metric(m):
            raise SimError(f"--metric: {m!r} is not a metric the simulator predicts")
    targets = [{k: v for k, v in b.metrics.items() if k in wanted and v > 0} for b in benches]
    if not any(targets):
        raise SimError(f"profile fit: none of {', '.join(wanted)} is in the bench files")
    knobs = knobs_for(profile)
    start = knob_values(profile)
    x0 = np.log([min(max(start[k.name], k.lo), k.hi) for k in knobs])
    bounds = [(math.log(k.lo), math.log(k.hi)) for k in knobs]
    o_lo, o_hi = math.log(OVERHEAD_BOUNDS[0]), math.log(OVERHEAD_BOUNDS[1])
    evals, best = 0, {}

    def misfit(all_times: list[ClientTimes], overhead: float) -> float:
        total = 0.0
        for times, t in zip(all_times, targets, strict=True):
            for key, actual in t.items():
                p = times.metric(key, overhead)
                total += math.log(p / actual) ** 2 if p > 0 else 100.0
        return total

    def loss(x: np.ndarray) -> float:
        nonlocal evals
        evals += 1
        prof = apply_knobs(profile, _values(knobs, x))
        times = [simulate_bench(prof, b, trace, config, seed) for b in benches]
        inner = minimize_scalar(
            lambda lo: misfit(times, math.exp(lo)),
            bounds=(o_lo, o_hi),
            method="bounded",
            options={"xatol": 1e-3},
        )
        best[tuple(x)] = math.exp(inner.x)
        return float(inner.fun)

    res = minimize(
        loss,
        x0,
        method="Nelder-Mead",
        bounds=bounds,
        options={
            "maxfev": max_evals,
            "xatol": 1e-3,
            "fatol": 1e-8,
            "initial_simplex": _simplex(x0, bounds),
        },
    )
    values = _values(knobs, res.x)
    if tuple(res.x) not in best:
        loss(res.x)
    values["request_overhead_s"] = best[tuple(res.x)]
    fitted = apply_knobs(profile, values)
    errors, predicted = _errors(fitted, benches, trace, config, seed)
    held, held_pred = _errors(fitted, holdout or [], trace, config, seed)
    predicted.update(held_pred)
    return FitResult(fitted, values, evals, errors, held, predicted)


def _values(knobs: list[Knob], x: np.ndarray) -> dict[str, float]:
    return {k.name: float(math.exp(v)) for k, v in zip(knobs, x, strict=True)}


def _simplex(x0: np.ndarray, bounds: list[tuple[float, float]]) -> np.ndarray:
    """Steps of about x1.5 along each knob, inside its bounds."""
    pts = [x0]
    for i, (lo, hi) in enumerate(bounds):
        p = x0.copy()
        p[i] = x0[i] + 0.4 if x0[i] + 0.4 <= hi else x0[i] - 0.4
        p[i] = min(max(p[i], lo), hi)
        pts.append(p)
    return np.array(pts)


def _errors(profile, benches, trace, config, seed):
    errors, predicted = {}, {}
    for b in benches:
        pred = predict_bench(profile, b, trace, config, seed)
        predicted[b.path] = pred
        errors[b.path] = {
            k: pred[k] / v - 1.0 for k, v in b.metrics.items() if v > 0 and math.isfinite(pred[k])
        }
    return errors, predicted


def summarize_errors(errors: dict[str, dict[str, float]]) -> dict[str, float]:
    """Median absolute relative error per metric over the benches."""
    keys = sorted({k for e in errors.values() for k in e})
    return {k: float(np.median([abs(e[k]) for e in errors.values() if k in e])) for k in keys}


def fitted_profile_dict(
    source: dict[str, Any],
    fit: FitResult,
    benches: list[Bench],
    holdout: list[Bench],
    metrics: tuple[str, ...],
) -> dict[str, Any]:
    """The source profile's mapping with the fitted knobs, fit_error and provenance."""
    out = dict(source)
    prof = fit.profile
    out["name"] = f"{source.get('name', 'profile')}_fitted"
    out["request_overhead_s"] = prof.request_overhead_s
    if isinstance(prof, RooflineProfile):
        out["factors"] = dict(prof.factors)
    else:
        out["coefficients"] = {k: float(getattr(prof, k)) for k in COEFFICIENTS}
    knobs = ", ".join(f"{k} {v:.4g}" for k, v in fit.values.items())
    files = ", ".join(Path(b.path).name for b in benches)
    out["method"] = (
        f"{source.get('method', '').rstrip()}\nThen fitted by `ltrsched profile fit` to "
        f"{len(benches)} vllm bench serve result(s) ({files}) "
        f"on the metrics {', '.join(metrics)}: knobs {knobs} ({fit.evaluations} simulations, "
        "bounded Nelder-Mead on the logs)."
    )
    out["fit_error"] = {
        "metric": "relative error of the simulated aggregate, (sim - bench) / bench",
        "fitted_median_abs": summarize_errors(fit.errors),
        "fitted": fit.errors,
        **(
            {
                "holdout_median_abs": summarize_errors(fit.holdout_errors),
                "holdout": fit.holdout_errors,
            }
            if holdout
            else {}
        ),
    }
    out["fitted_from"] = [
        {
            "bench": b.path,
            "request_rate": "inf" if math.isinf(b.request_rate) else b.request_rate,
            "burstiness": b.burstiness,
            "num_prompts": b.num_prompts,
        }
        for b in benches
    ]
    if holdout:
        out["held_out"] = [b.path for b in holdout]
    return out


def synthetic_bench(
    profile: StepTimeProfile,
    trace: pd.DataFrame,
    rate: float,
    num_prompts: int,
    config: EngineConfig,
    burstiness: float = 1.0,
    seed: int = 0,
) -> dict[str, Any]:
    """A vllm bench serve-shaped result of simulating trace under profile: the known
    answer the fit's tests recover."""
    bench = Bench("synthetic", rate, burstiness, num_prompts, {"mean_ttft_ms": 1.0})
    times = simulate_bench(profile, bench, trace, config, seed)
    m = {k: times.metric(k, profile.request_overhead_s) for k in STANDARD_METRICS}
    return {
        "request_rate": "inf" if math.isinf(rate) else rate,
        "burstiness": burstiness,
        "max_concurrency": None,
        "num_prompts": num_prompts,
        "completed": num_prompts,
        **{k: v for k, v in m.items() if math.isfinite(v)},
    }


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
