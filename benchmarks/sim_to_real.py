"""Sim-to-real on public ground truth: the 13 vLLM 0.15.1 runs (H100, TP 1-4, shared-prefix
workloads, prefix caching and chunked prefill on) that inference-sim/sim-to-real-accuracy-validation
scored five simulators against. Each run's workload is rebuilt as a trace, its model, GPU and TP get
a roofline profile, and the simulator replays it with the run's measured KV block count; the table
gives our signed error on mean E2E, mean TTFT and ITL beside each peer's, per run, then the median
|error| of each simulator over the runs it covers.

    python benchmarks/sim_to_real.py [--only 60 61] [--seed 0] [--json out.json] [--check]
    python benchmarks/sim_to_real.py --peers-only     # the published numbers, no simulation

The facts and their sources are in benchmarks/data/sim_to_real/ (its README says what the load
generator really sent). ITL is computed the way the measured one was: (mean E2E - mean TTFT) /
(mean output length - 1) with the run's client-counted output length, solved from its three
published means, so our ITL error is our error on the decode span. Exit status 0 whatever the
numbers; with --check, 1 when a target is missed. Bad input: one line, exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sim.config import EngineConfig
from sim.errors import SimError
from sim.profile import StepTimeProfile
from sim.run import simulate
from traces.errors import TraceError
from traces.io import atomic_write, read_trace
from traces.schema import HASH_BLOCK_TOKENS_KEY

DATA_DIR = Path(__file__).resolve().parent / "data" / "sim_to_real"
WHOLE_RUN = -1
ACTUAL = "actual"
OURS = "ltrsched"
PEERS = (
    "blis-roofline",
    "blis-evolved",
    "llm-optimizer-estimate",
    "aiconfigurator-estimate",
    "vidur",
)
METRICS = ("e2e_mean_ms", "ttft_mean_ms", "itl_mean_ms")
METRIC_LABELS = {"e2e_mean_ms": "mean E2E", "ttft_mean_ms": "mean TTFT", "itl_mean_ms": "ITL"}
# Issue 17: median |error| over the 13 runs, whole runs, roofline profiles, no tuning.
TARGET_ABS_PCT = {"e2e_mean_ms": 10.0, "ttft_mean_ms": 25.0, "itl_mean_ms": 10.0}
MAX_ENGINE_S = 2.0
MEASUREMENT_COLUMNS = ("exp_id", "stage", "source", *METRICS)


class SimToRealError(ValueError):
    """Bad facts file, bad option, or a piece the benchmark needs that is not there."""


@dataclass(frozen=True)
class Experiment:
    """One measured run: the server it ran on and the workload the server received."""

    exp_id: str
    model: str
    gpu: str
    tp: int
    precision: str
    workload: str
    max_num_seqs: int
    max_num_batched_tokens: int
    max_model_len: int
    block_size: int
    num_gpu_blocks: int
    cpu_kv_blocks: int
    cpu_offload_gib: float
    num_groups: int
    prompts_per_group: int
    system_prompt_len: int
    question_len: int
    output_len: int
    stages: tuple[tuple[float, float], ...]  # (rate req/s, duration s) per load stage

    @property
    def num_requests(self) -> int:
        """What the load generator sends: int(rate x duration) per stage."""
        return sum(int(rate * duration) for rate, duration in self.stages)


def parse_stages(text: str) -> tuple[tuple[float, float], ...]:
    """'2.5x600,6x600' -> ((2.5, 600.0), (6.0, 600.0)); ValueError on anything else."""
    stages = []
    for part in str(text).split(","):
        rate, sep, duration = part.strip().partition("x")
        if not sep:
            raise ValueError(f"stage {part.strip()!r} is not RATExDURATION")
        r, d = float(rate), float(duration)
        if not (r > 0 and d > 0 and math.isfinite(r) and math.isfinite(d)):
            raise ValueError(f"stage {part.strip()!r}: rate and duration must be > 0")
        stages.append((r, d))
    return tuple(stages)


def format_stages(stages: tuple[tuple[float, float], ...]) -> str:
    return ",".join(f"{r:g}x{d:g}" for r, d in stages)


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, comment="#")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise SimToRealError(f"{path}: cannot read ({str(e).splitlines()[0]})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise SimToRealError(f"{path}: missing column(s) {', '.join(missing)}")
    return df


def _whole_number(raw, least: int) -> int:
    value = float(raw)
    if not value.is_integer() or value < least:
        raise ValueError(f"must be a whole number >= {least}")
    return int(value)


def read_experiments(path: Path = DATA_DIR / "experiments.csv") -> list[Experiment]:
    """The runs, in file order; errors name the file, the row and the column."""
    fields = {f.name: f.type for f in dataclasses.fields(Experiment)}
    df = _read_csv(path, tuple(fields))
    out = []
    for i, row in enumerate(df.to_dict("records")):
        values = {}
        for name, kind in fields.items():
            raw = row[name]
            try:
                if name == "stages":
                    values[name] = parse_stages(raw)
                elif kind == "int":
                    values[name] = _whole_number(raw, 0 if name == "cpu_kv_blocks" else 1)
                elif kind == "float":
                    values[name] = float(raw)
                    if not values[name] >= 0:
                        raise ValueError("must be a number >= 0")
                else:
                    if pd.isna(raw) or not str(raw).strip():
                        raise ValueError("is empty")
                    values[name] = str(raw)
            except (TypeError, ValueError) as e:
                raise SimToRealError(
                    f"{path}: row {i} ({row.get('exp_id')}): {name} = {raw!r}: {e}"
                ) from None
        out.append(Experiment(**values))
    ids = [e.exp_id for e in out]
    dup = sorted({x for x in ids if ids.count(x) > 1})
    if dup:
        raise SimToRealError(f"{path}: exp_id {dup[0]} appears more than once")
    return out


def read_measurements(
    path: Path = DATA_DIR / "measurements.csv", experiments: list[Experiment] | None = None
) -> pd.DataFrame:
    """Published means in ms, one row per (exp_id, stage, source); each run must have its
    measured whole-run means. Errors name the file and the row."""
    df = _read_csv(path, MEASUREMENT_COLUMNS)
    known = {ACTUAL, *PEERS}
    for i, row in enumerate(df.to_dict("records")):
        if row["source"] not in known:
            names = ", ".join(sorted(known))
            raise SimToRealError(f"{path}: row {i}: unknown source {row['source']!r} ({names})")
        try:
            _whole_number(row["stage"], WHOLE_RUN)
        except (TypeError, ValueError):
            raise SimToRealError(
                f"{path}: row {i}: stage must be {WHOLE_RUN} (whole run) or a stage number, "
                f"got {row['stage']!r}"
            ) from None
        for m in METRICS:
            v = pd.to_numeric(row[m], errors="coerce")
            if not (math.isfinite(v) and v > 0):
                raise SimToRealError(f"{path}: row {i}: {m} must be a number > 0, got {row[m]!r}")
    dup = df.duplicated(["exp_id", "stage", "source"])
    if dup.any():
        i = int(dup.to_numpy().nonzero()[0][0])
        raise SimToRealError(
            f"{path}: row {i}: ({df['exp_id'].iloc[i]}, stage "
            f"{df['stage'].iloc[i]}, {df['source'].iloc[i]}) repeated"
        )
    if experiments is not None:
        have = set(df.loc[(df["source"] == ACTUAL) & (df["stage"] == WHOLE_RUN), "exp_id"])
        for e in experiments:
            if e.exp_id not in have:
                raise SimToRealError(f"{path}: no measured whole-run means for {e.exp_id}")
    return df


def client_output_len(e2e_ms: float, ttft_ms: float, itl_ms: float) -> float:
    """The mean output length the client counted, from ITL = (E2E - TTFT) / (len - 1)."""
    return (e2e_ms - ttft_ms) / itl_ms + 1.0


def itl_from_means(e2e_ms: float, ttft_ms: float, output_len: float) -> float:
    """ITL as the source defines it: (mean E2E - mean TTFT) / (mean output length - 1)."""
    return (e2e_ms - ttft_ms) / (output_len - 1.0)


def signed_error_pct(predicted: float, actual: float) -> float:
    return 100.0 * (predicted - actual) / actual


def whole_run(measured: pd.DataFrame) -> pd.DataFrame:
    """Whole-run means, indexed by (exp_id, source)."""
    return measured[measured["stage"] == WHOLE_RUN].set_index(["exp_id", "source"])[list(METRICS)]


def error_table(measured: pd.DataFrame, ours: pd.DataFrame | None = None) -> pd.DataFrame:
    """Signed % error of every simulator on every run it covers, whole runs: one row per
    (exp_id, source, metric) with predicted, actual, error_pct. `ours` is indexed by exp_id
    with the METRICS columns."""
    runs = whole_run(measured)
    actual = runs.xs(ACTUAL, level="source")
    predicted = runs.drop(index=ACTUAL, level="source")
    if ours is not None and len(ours):
        mine = ours[list(METRICS)].copy()
        mine.index = pd.MultiIndex.from_product([mine.index, [OURS]], names=["exp_id", "source"])
        predicted = pd.concat([mine, predicted])
    long = predicted.stack().rename("predicted").reset_index()
    long.columns = ["exp_id", "source", "metric", "predicted"]
    act = actual.stack().rename("actual").reset_index()
    act.columns = ["exp_id", "metric", "actual"]
    long = long.merge(act, on=["exp_id", "metric"], how="inner")
    long["error_pct"] = signed_error_pct(long["predicted"], long["actual"])
    return long


def median_abs_errors(errors: pd.DataFrame) -> pd.DataFrame:
    """Median |error| (%) per simulator and metric, and the number of runs it covers."""
    g = errors.assign(abs_pct=errors["error_pct"].abs()).groupby(["source", "metric"])["abs_pct"]
    out = g.agg(median_abs_pct="median", n="size").reset_index()
    rank = {name: i for i, name in enumerate((OURS, *PEERS, *METRICS))}
    return out.sort_values(["source", "metric"], key=lambda col: col.map(rank), ignore_index=True)


def group_medians(errors: pd.DataFrame, experiments: list[Experiment]) -> pd.DataFrame:
    """Our median |error| (%) per GPU, per TP and per model, each metric, and runs counted."""
    mine = errors[errors["source"] == OURS]
    if mine.empty:
        return pd.DataFrame()
    facts = pd.DataFrame(
        {"exp_id": e.exp_id, "gpu": e.gpu, "tp": f"TP {e.tp}", "model": e.model.split("/")[-1]}
        for e in experiments
    )
    mine = mine.merge(facts, on="exp_id").assign(abs_pct=lambda d: d["error_pct"].abs())
    rows = []
    for by in ("gpu", "tp", "model"):
        for value, g in mine.groupby(by):
            row = {"by": by, "group": value, "runs": g["exp_id"].nunique()}
            for m in METRICS:
                row[METRIC_LABELS[m]] = float(g.loc[g["metric"] == m, "abs_pct"].median())
            rows.append(row)
    return pd.DataFrame(rows)


def verdicts(medians: pd.DataFrame, engine_s: dict[str, float]) -> list[dict]:
    """Each target of the issue on our own numbers: what, value, target, met."""
    mine = medians[medians["source"] == OURS].set_index("metric")["median_abs_pct"]
    out = [
        {
            "what": f"median |{METRIC_LABELS[m]} error| %",
            "value": float(mine.get(m, math.nan)),
            "target": f"<= {limit:g}",
            "met": bool(mine.get(m, math.inf) <= limit),
        }
        for m, limit in TARGET_ABS_PCT.items()
    ]
    worst = max(engine_s.values()) if engine_s else math.nan
    out.append(
        {
            "what": "slowest run, engine s",
            "value": worst,
            "target": f"< {MAX_ENGINE_S:g}",
            "met": bool(worst < MAX_ENGINE_S),
        }
    )
    return out


# --- the pieces that other packages provide -----------------------------------------------


def _ltrsched(argv: list[str]) -> tuple[int, str]:
    """Run `ltrsched ARGV` in this process; (exit status, its stderr)."""
    from ltrsched.cli import main as ltrsched_main

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = ltrsched_main(argv)
    return rc, err.getvalue()


def missing_pieces() -> list[str]:
    """What the simulation needs that this checkout does not have yet."""
    from traces.sources import SOURCES

    missing = []
    if "shared-prefix" not in SOURCES:
        missing.append("`ltrsched trace build --source shared-prefix --stages` (traces/)")
    if "enable_prefix_caching" not in {f.name for f in dataclasses.fields(EngineConfig)}:
        missing.append("EngineConfig.enable_prefix_caching (sim/)")
    if _ltrsched(["profile", "roofline", "--help"])[0] != 0:
        missing.append("`ltrsched profile roofline` (sim/roofline.py)")
    return missing


def _last_line(text: str) -> str:
    lines = [x for x in text.strip().splitlines() if x.strip()]
    return lines[-1].strip() if lines else "no message"


def build_trace(exp: Experiment, seed: int, out: Path) -> pd.DataFrame:
    """The workload the server received: num_groups x prompts_per_group fixed prompts sent in
    a cycle, single turn, int(rate x duration) requests per stage."""
    argv = [
        "trace",
        "build",
        "--source",
        "shared-prefix",
        "--num-groups",
        str(exp.num_groups),
        "--prompts-per-group",
        str(exp.prompts_per_group),
        "--system-prompt-len",
        str(exp.system_prompt_len),
        "--question-len",
        str(exp.question_len),
        "--output-len",
        str(exp.output_len),
        "--stages",
        format_stages(exp.stages),
        "--seed",
        str(seed),
        "-o",
        str(out),
    ]
    rc, err = _ltrsched(argv)
    if rc != 0:
        raise SimToRealError(f"{exp.exp_id}: ltrsched {' '.join(argv)}: {_last_line(err)}")
    df, meta = read_trace(out)
    df.attrs[HASH_BLOCK_TOKENS_KEY] = meta.get(HASH_BLOCK_TOKENS_KEY)
    return df


# The runs' Hugging Face ids and GPU names as the bundled model configs and GPU table call them.
BUNDLED_MODEL = {
    "meta-llama/Llama-2-7b-hf": "llama-2-7b",
    "RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic": "llama-4-scout-17b-16e",
    "meta-llama/Llama-3.1-70B-Instruct": "llama-3.1-70b",
    "mistralai/Mistral-Nemo-Instruct-2407": "mistral-nemo-12b",
    "Qwen/Qwen2.5-7B-Instruct": "qwen2.5-7b",
    "01-ai/Yi-34B": "yi-34b",
}
BUNDLED_GPU = {"H100": "H100-SXM"}
DTYPE = {"FP16": "fp16", "BF16": "bf16", "FP8": "fp8"}


def make_profile(exp: Experiment, out: Path, datasheet_only: bool = False) -> Path:
    """A roofline step-time profile for the run's model, GPU and TP (no per-run tuning);
    datasheet_only: without the GPU's measured kernel curves."""
    argv = [
        "profile",
        "roofline",
        "--model",
        BUNDLED_MODEL.get(exp.model, exp.model),
        "--gpu",
        BUNDLED_GPU.get(exp.gpu, exp.gpu),
        "--tp",
        str(exp.tp),
        "--dtype",
        DTYPE.get(exp.precision.upper(), "bf16"),
        "--max-model-len",
        str(exp.max_model_len),
        "--max-num-seqs",
        str(exp.max_num_seqs),
        "--max-num-batched-tokens",
        str(exp.max_num_batched_tokens),
        "--block-size",
        str(exp.block_size),
        *(["--datasheet-only"] if datasheet_only else []),
        "-o",
        str(out),
    ]
    rc, err = _ltrsched(argv)
    if rc != 0:
        raise SimToRealError(f"{exp.exp_id}: ltrsched {' '.join(argv)}: {_last_line(err)}")
    return out


def engine_config(exp: Experiment) -> EngineConfig:
    """The server's limits as the run had them, with its measured GPU KV block count.
    The 8 GiB CPU KV offload tier of most runs has no counterpart in the simulator."""
    return EngineConfig(
        max_num_seqs=exp.max_num_seqs,
        max_num_batched_tokens=exp.max_num_batched_tokens,
        max_model_len=exp.max_model_len,
        block_size=exp.block_size,
        num_gpu_blocks=exp.num_gpu_blocks,
        enable_prefix_caching=True,
    )


def simulate_run(exp: Experiment, trace: pd.DataFrame, profile: Path | StepTimeProfile) -> dict:
    """Mean E2E and TTFT (ms) of the finished requests, and what the run cost the engine.
    `profile`: a profile file, or a loaded profile (the factor fit passes candidates)."""
    prof = profile if isinstance(profile, StepTimeProfile) else str(profile)
    res = simulate(trace, "fcfs", prof, engine_config(exp))
    req = res.requests
    done = req[req["status"] == "finished"]
    return {
        "e2e_mean_ms": float(done["latency_s"].mean() * 1000.0),
        "ttft_mean_ms": float(done["ttft_s"].mean() * 1000.0),
        "generated_mean_tokens": float(done["tokens_generated"].mean()),
        "requests": int(len(req)),
        "finished": int(len(done)),
        "engine_s": float(res.summary["sim_wall_s"]),
        "profile": str(res.summary["profile_label"]),
    }


def with_client_itl(got: dict, actual: pd.Series) -> dict:
    """`got` plus the run's client-counted output length and our ITL over it, as the source
    computes ITL; `actual`: the run's measured whole-run means."""
    length = client_output_len(actual["e2e_mean_ms"], actual["ttft_mean_ms"], actual["itl_mean_ms"])
    itl = itl_from_means(got["e2e_mean_ms"], got["ttft_mean_ms"], length)
    return {**got, "client_output_len": length, "itl_mean_ms": itl}


# --- the benchmark ------------------------------------------------------------------------


def select(experiments: list[Experiment], only: list[str] | None) -> list[Experiment]:
    """Runs whose exp_id is, or starts with, one of `only` followed by '-'."""
    if not only:
        return experiments
    chosen = []
    for key in only:
        hits = [e for e in experiments if e.exp_id == key or e.exp_id.startswith(key + "-")]
        if not hits:
            raise SimToRealError(
                f"--only: no run {key!r} (runs: "
                f"{', '.join(e.exp_id.split('-')[0] for e in experiments)})"
            )
        chosen += [e for e in hits if e not in chosen]
    return chosen


def simulate_all(
    experiments: list[Experiment],
    measured: pd.DataFrame,
    seed: int,
    workdir: Path,
    datasheet_only: bool = False,
) -> pd.DataFrame:
    """Our whole-run numbers per run (indexed by exp_id), ITL as the source computes it."""
    missing = missing_pieces()
    if missing:
        raise SimToRealError(
            "cannot simulate yet, missing: "
            + "; ".join(missing)
            + " (--peers-only prints the published numbers)"
        )
    actual = whole_run(measured).xs(ACTUAL, level="source")
    profiles: dict[tuple[str, str, int], Path] = {}
    rows = {}
    for exp in experiments:
        key = (exp.model, exp.gpu, exp.tp)
        if key not in profiles:
            profiles[key] = make_profile(
                exp, workdir / f"profile-{len(profiles)}.yaml", datasheet_only
            )
        trace = build_trace(exp, seed, workdir / f"{exp.exp_id}.parquet")
        got = with_client_itl(simulate_run(exp, trace, profiles[key]), actual.loc[exp.exp_id])
        rows[exp.exp_id] = got
        print(
            f"{exp.exp_id}: {got['finished']}/{got['requests']} finished, engine "
            f"{got['engine_s']:.2f} s",
            file=sys.stderr,
        )
    return pd.DataFrame.from_dict(rows, orient="index")


def facts_table(experiments: list[Experiment], measured: pd.DataFrame) -> pd.DataFrame:
    actual = whole_run(measured).xs(ACTUAL, level="source")
    rows = []
    for e in experiments:
        a = actual.loc[e.exp_id]
        rows.append(
            {
                "run": e.exp_id,
                "tp": e.tp,
                "mbt": e.max_num_batched_tokens,
                "gpu blocks": e.num_gpu_blocks,
                "cpu GiB": e.cpu_offload_gib,
                "prompt S+Q": e.system_prompt_len + e.question_len,
                "stages": format_stages(e.stages),
                "out gen": e.output_len,
                "out counted": client_output_len(
                    a["e2e_mean_ms"], a["ttft_mean_ms"], a["itl_mean_ms"]
                ),
            }
        )
    return pd.DataFrame(rows).set_index("run")


def metric_table(
    errors: pd.DataFrame, medians: pd.DataFrame, metric: str, runs: list[str]
) -> pd.DataFrame:
    """Runs x simulators, signed % error on one metric, then the median |error| and n."""
    e = errors[errors["metric"] == metric]
    table = e.pivot(index="exp_id", columns="source", values="error_pct").reindex(runs)
    cols = [s for s in (OURS, *PEERS) if s in table.columns]
    table = table[cols].map(lambda x: "" if pd.isna(x) else f"{x:+.1f}")
    measured = e.drop_duplicates("exp_id").set_index("exp_id")["actual"]
    table.insert(0, "measured ms", measured.map(lambda x: f"{x:.1f}"))
    m = medians[medians["metric"] == metric].set_index("source")
    table.loc["median |error|"] = [""] + [f"{m.loc[s, 'median_abs_pct']:.1f}" for s in cols]
    table.loc["runs"] = [""] + [str(int(m.loc[s, "n"])) for s in cols]
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data",
        type=Path,
        default=DATA_DIR,
        help="folder with experiments.csv and measurements.csv",
    )
    ap.add_argument("--only", nargs="+", help="runs by exp_id or its leading number (60 61 ...)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the rebuilt workloads")
    ap.add_argument("--workdir", type=Path, help="keep traces and profiles here (default: temp)")
    ap.add_argument(
        "--peers-only",
        action="store_true",
        help="print the published numbers only, without simulating",
    )
    ap.add_argument(
        "--datasheet-only",
        action="store_true",
        help="price every GPU at its datasheet peaks, without measured kernel curves",
    )
    ap.add_argument("--json", type=Path, help="write the numbers to this file")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args(argv)
    try:
        return run(args)
    except (SimToRealError, TraceError, SimError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    if args.check and args.peers_only:
        raise SimToRealError("--check judges our simulation; it cannot go with --peers-only")
    experiments = select(read_experiments(args.data / "experiments.csv"), args.only)
    measured = read_measurements(args.data / "measurements.csv", experiments)
    measured = measured[measured["exp_id"].isin([e.exp_id for e in experiments])]
    ours = None
    if not args.peers_only:
        if args.workdir:
            args.workdir.mkdir(parents=True, exist_ok=True)
            ours = simulate_all(experiments, measured, args.seed, args.workdir, args.datasheet_only)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                ours = simulate_all(
                    experiments, measured, args.seed, Path(tmp), args.datasheet_only
                )
    errors = error_table(measured, ours)
    medians = median_abs_errors(errors)

    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(
            f"{len(experiments)} runs (whole runs; signed % error = (predicted - measured) / "
            "measured; 'out counted' = the client's mean output length)"
        )
        print(facts_table(experiments, measured).to_string(float_format=lambda x: f"{x:.1f}"))
        for metric in METRICS:
            print(f"\n{METRIC_LABELS[metric]}, signed % error")
            print(
                metric_table(errors, medians, metric, [e.exp_id for e in experiments]).to_string()
            )
    results = {
        "runs": [e.exp_id for e in experiments],
        "errors": errors.to_dict("records"),
        "medians": medians.to_dict("records"),
    }
    missed = []
    groups = group_medians(errors, experiments)
    if not groups.empty:
        print("\nour median |error| % per GPU, TP and model")
        print(groups.to_string(index=False, float_format=lambda x: f"{x:.1f}"))
        results["group_medians"] = groups.to_dict("records")
    if ours is not None:
        results["ours"] = ours.reset_index(names="exp_id").to_dict("records")
        results["targets"] = checks = verdicts(medians, dict(ours["engine_s"]))
        print()
        for c in checks:
            print(
                f"{c['what']}: {c['value']:.2f} (target {c['target']}) "
                f"{'met' if c['met'] else 'MISSED'}"
            )
        missed = [c for c in checks if not c["met"]]
    if args.json:
        text = json.dumps(results, indent=2, default=float)
        atomic_write(args.json, lambda tmp: Path(tmp).write_text(text))
    return 1 if (args.check and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
