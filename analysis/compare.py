"""`ltrsched compare`: how far the simulator was from a live run of the same trace.

Reads run directories (the schema of traces/results.py); imports neither sim nor live.
Relative error = (sim - live) / live, per summary metric and per request. Several live
directories (replicates: the same trace and policy replayed again) are averaged, metric
by metric and request by request, and their spread is reported: on a machine whose
speed drifts from run to run, a verdict is no tighter than that spread.
"""

from __future__ import annotations

import html
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from analysis.errors import AnalysisError
from traces.fingerprint import FINGERPRINT_KEY
from traces.io import atomic_write
from traces.results import add_derived_columns

# (summary key, label); the first group is what the verdict checks.
METRICS = (
    ("mean_latency_s", "mean latency"),
    ("p50_latency_s", "p50 latency"),
    ("p90_latency_s", "p90 latency"),
    ("p99_latency_s", "p99 latency"),
    ("mean_ttft_s", "mean TTFT"),
    ("mean_norm_latency_s_per_token", "mean per-token latency"),
    ("throughput_req_s", "throughput (req/s)"),
    ("throughput_tok_s", "throughput (tok/s)"),
)
THROUGHPUT = ("throughput_req_s", "throughput_tok_s")


@dataclass(frozen=True)
class Tolerances:
    """The verdict's bounds on |relative error|."""

    mean: float = 0.10  # mean latency and throughput
    p90: float = 0.15  # p90 latency


@dataclass
class Comparison:
    sim: str
    live: str  # the live directories, joined by ", " when there are several
    metrics: list[dict[str, Any]]  # live = the replicates' mean; live_min/live_max
    requests_matched: int
    per_request_latency_error: dict[str, float]
    passed: bool
    verdict: str
    notes: list[str] = field(default_factory=list)
    live_runs: int = 1
    # (max - min) / mean over the live replicates, per verdict metric; empty for one run
    live_spread: dict[str, float] = field(default_factory=dict)
    # Fleets (both runs with a `replica` column): see fleet_agreement; None otherwise
    fleet: dict[str, Any] | None = None


def read_run_dir(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    path = Path(path)
    summary = read_run_summary(path)
    try:
        req = pd.read_parquet(path / "requests.parquet")
    except (OSError, ValueError) as e:
        raise AnalysisError(f"{path}: cannot read the run ({str(e).splitlines()[0]})") from None
    if "latency_s" not in req.columns:
        req = add_derived_columns(req)
    return req, summary


def read_run_summary(path: Path) -> dict[str, Any]:
    """A run directory's summary.json, checked to be a run directory (both files there)."""
    path = Path(path)
    req_path, sum_path = path / "requests.parquet", path / "summary.json"
    if not req_path.is_file() or not sum_path.is_file():
        raise AnalysisError(
            f"{path}: not a run directory (needs requests.parquet and summary.json)"
        )
    try:
        return json.loads(sum_path.read_text())
    except (OSError, ValueError) as e:
        raise AnalysisError(f"{path}: cannot read the run ({str(e).splitlines()[0]})") from None


def rel_error(sim: float | None, live: float | None) -> float:
    if (
        sim is None
        or live is None
        or not math.isfinite(sim)
        or not math.isfinite(live)
        or live == 0
    ):
        return math.nan
    return (sim - live) / live


def _live_dirs(live: Path | Sequence[Path]) -> list[Path]:
    dirs = [Path(live)] if isinstance(live, (str, Path)) else [Path(d) for d in live]
    if not dirs:
        raise AnalysisError("compare: no --live run given")
    return dirs


def _mean_summary(summaries: list[dict[str, Any]]) -> tuple[dict, dict, dict]:
    """Per metric: the replicates' mean, min and max (None where any lacks it)."""
    mean, lo, hi = {}, {}, {}
    for key, _ in METRICS:
        vals = [s.get(key) for s in summaries]
        if any(v is None for v in vals):
            mean[key] = lo[key] = hi[key] = None
            continue
        mean[key] = sum(vals) / len(vals)
        lo[key], hi[key] = min(vals), max(vals)
    return mean, lo, hi


def mean_live_requests(reqs: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per request finished in every replicate, latency and TTFT averaged."""
    cols = ["request_id", "latency_s", "ttft_s", "output_tokens", "status"]
    fin = [r[cols][r["status"] == "finished"] for r in reqs]
    if len(fin) == 1:
        return fin[0]
    both = pd.concat(fin, ignore_index=True)
    agg = both.groupby("request_id").agg(
        n=("latency_s", "size"),
        latency_s=("latency_s", "mean"),
        ttft_s=("ttft_s", "mean"),
        output_tokens=("output_tokens", "first"),
        status=("status", "first"),
    )
    return agg[agg["n"] == len(fin)].drop(columns="n").reset_index()


def check_same_trace(
    sim_dir: Path,
    sim_sum: dict[str, Any],
    live_dirs: list[Path],
    live_sums: list[dict[str, Any]],
    allow_different: bool = False,
) -> list[str]:
    """Refuse runs of different traces (by their fingerprints; by request count for runs
    written before fingerprints), unless allowed; returns notes on what was not checked
    or was allowed."""
    notes = []
    for d, ls in zip(live_dirs, live_sums, strict=True):
        fs, fl = sim_sum.get(FINGERPRINT_KEY), ls.get(FINGERPRINT_KEY)
        ns, nl = sim_sum.get("requests"), ls.get("requests")
        if fs and fl:
            differ = fs != fl
        else:
            differ = ns != nl
            missing = [str(p) for p, f in ((sim_dir, fs), (d, fl)) if not f]
            notes.append(
                f"no {FINGERPRINT_KEY} in {', '.join(missing)} (an older run): "
                "the traces were checked by request count only"
            )
        if not differ:
            continue
        what = f"{ns} requests, fingerprint {fs or '-'} against {nl}, {fl or '-'}"
        if not allow_different:
            raise AnalysisError(
                f"--sim {sim_dir} and --live {d} ran different traces ({what}); pass "
                "--allow-different-trace to compare them anyway"
            )
        notes.append(f"different traces ({what} in {d}), compared as asked")
    return notes


def compare_runs(
    sim_dir: Path,
    live_dir: Path | Sequence[Path],
    tol: Tolerances = Tolerances(),
    allow_different_trace: bool = False,
) -> Comparison:
    """Per-metric and per-request errors of sim_dir against one live run, or against the
    mean of several replicate live runs; and a verdict. Runs of different traces are
    refused (AnalysisError) unless allow_different_trace."""
    live_dirs = _live_dirs(live_dir)
    sim_req, sim_sum = read_run_dir(sim_dir)
    lives = [read_run_dir(d) for d in live_dirs]
    live_sums = [s for _, s in lives]
    trace_notes = check_same_trace(
        Path(sim_dir), sim_sum, live_dirs, live_sums, allow_different_trace
    )
    live_mean, live_lo, live_hi = _mean_summary(live_sums)
    rows = []
    for key, label in METRICS:
        s, v = sim_sum.get(key), live_mean[key]
        rows.append(
            {
                "metric": key,
                "label": label,
                "sim": s,
                "live": v,
                "rel_error": rel_error(s, v),
                "live_min": live_lo[key],
                "live_max": live_hi[key],
            }
        )
    by = {r["metric"]: r["rel_error"] for r in rows}
    checks = [
        ("mean latency", [by["mean_latency_s"]], tol.mean),
        ("throughput", [by[k] for k in THROUGHPUT], tol.mean),
        ("p90 latency", [by["p90_latency_s"]], tol.p90),
    ]
    misses = [
        name for name, errs, bound in checks if any(not (abs(e) <= bound) for e in errs)
    ]  # NaN misses too
    passed = not misses
    what = "" if len(lives) == 1 else f" (against the mean of {len(lives)} live runs)"
    verdict = (
        f"within {tol.mean:.0%} on mean latency and throughput, {tol.p90:.0%} on p90"
        f"{what}: " + ("PASS" if passed else f"FAIL ({', '.join(misses)})")
    )
    joined = matched_requests(sim_req, mean_live_requests([r for r, _ in lives]))
    err = (joined["latency_s_sim"] - joined["latency_s_live"]) / joined["latency_s_live"]
    notes = trace_notes
    # A trace of another name is the same trace when the fingerprints agree.
    for key in ("policy", "trace"):
        for d, ls in zip(live_dirs, live_sums, strict=True):
            same_print = sim_sum.get(FINGERPRINT_KEY) and (
                sim_sum.get(FINGERPRINT_KEY) == ls.get(FINGERPRINT_KEY)
            )
            if key == "trace" and same_print:
                continue
            if sim_sum.get(key) != ls.get(key):
                notes.append(
                    f"{key} differs: sim {sim_sum.get(key)!r}, live {ls.get(key)!r}"
                    + (f" in {d}" if len(lives) > 1 else "")
                )
                break
    for d, ls in zip(live_dirs, live_sums, strict=True):
        if ls.get("failed"):
            notes.append(f"live run {d} had {ls['failed']} failed requests")
    spread = {}
    if len(lives) > 1:
        for key in ("mean_latency_s", "p90_latency_s", *THROUGHPUT):
            lo, hi, mean = live_lo[key], live_hi[key], live_mean[key]
            spread[key] = (hi - lo) / mean if mean else math.nan
        notes.append(
            f"the {len(lives)} live runs differ among themselves by "
            f"{spread['mean_latency_s']:.1%} in mean latency, "
            f"{spread['p90_latency_s']:.1%} in p90 and {spread['throughput_tok_s']:.1%} "
            "in throughput (max - min over their mean)"
        )
    fleet = fleet_agreement(sim_req, lives[0][0])
    if fleet is not None and len(lives) > 1:
        notes.append(f"replica assignment compared with the first live run, {live_dirs[0]}")
    return Comparison(
        sim=str(sim_dir),
        live=", ".join(str(d) for d in live_dirs),
        metrics=rows,
        requests_matched=len(joined),
        per_request_latency_error={
            "mean_abs": float(err.abs().mean()) if len(err) else math.nan,
            "p50_abs": float(err.abs().median()) if len(err) else math.nan,
            "p90_abs": float(err.abs().quantile(0.9)) if len(err) else math.nan,
        },
        passed=passed,
        verdict=verdict,
        notes=notes,
        live_runs=len(lives),
        live_spread=spread,
        fleet=fleet,
    )


def fleet_agreement(sim_req: pd.DataFrame, live_req: pd.DataFrame) -> dict[str, Any] | None:
    """Where a simulated and a live fleet agree, request by request: the replica each
    request went to (equal for a router that reads no state, e.g. round-robin) and the
    prefix-cache hit (cached_tokens, where both report it). None unless both runs have
    a `replica` column."""
    if "replica" not in sim_req.columns or "replica" not in live_req.columns:
        return None
    cols = ["request_id", "replica"]
    if "cached_tokens" in sim_req.columns and "cached_tokens" in live_req.columns:
        cols.append("cached_tokens")
    both = sim_req[cols].merge(live_req[cols], on="request_id", suffixes=("_sim", "_live"))
    both = both[(both["replica_sim"] >= 0) & (both["replica_live"] >= 0)]
    same = both["replica_sim"] == both["replica_live"]
    same_hit = pd.Series([], dtype=bool)
    if "cached_tokens" in cols:
        hits = both[(both["cached_tokens_sim"] >= 0) & (both["cached_tokens_live"] >= 0)]
        same_hit = hits["cached_tokens_sim"] == hits["cached_tokens_live"]
    return {
        "requests_routed_in_both": int(len(both)),
        "same_replica": int(same.sum()),
        "same_replica_share": float(same.mean()) if len(both) else math.nan,
        "first_different_replica": both.loc[~same, "request_id"].head(5).tolist(),
        "same_cached_tokens": int(same_hit.sum()),
        "same_cached_tokens_share": float(same_hit.mean()) if len(same_hit) else math.nan,
    }


def matched_requests(sim_req: pd.DataFrame, live_req: pd.DataFrame) -> pd.DataFrame:
    """Requests finished in both runs, one row each, columns suffixed _sim and _live."""
    cols = ["request_id", "latency_s", "ttft_s", "output_tokens", "status"]
    s = sim_req[cols][sim_req["status"] == "finished"]
    v = live_req[cols][live_req["status"] == "finished"]
    return s.merge(v, on="request_id", suffixes=("_sim", "_live"))


def write_scatter_html(
    sim_dir: Path,
    live_dir: Path | Sequence[Path],
    out: Path,
    comparison: Comparison | None = None,
) -> None:
    """A self-contained HTML page: the comparison's verdict, its table of errors and notes
    (computed if not given), then per-request latency and TTFT, simulated against live
    (the replicates' mean per request when there are several)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from analysis.figures.common import identity_line

    live_dirs = _live_dirs(live_dir)
    sim_req, _ = read_run_dir(sim_dir)
    live_req = mean_live_requests([read_run_dir(d)[0] for d in live_dirs])
    j = matched_requests(sim_req, live_req)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("latency (s)", "TTFT (s)"))
    for col, name in ((1, "latency_s"), (2, "ttft_s")):
        x, y = j[f"{name}_live"], j[f"{name}_sim"]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="markers",
                marker={"size": 5, "opacity": 0.6},
                text=[
                    f"request {i}, {n} tokens"
                    for i, n in zip(j["request_id"], j["output_tokens_live"], strict=True)
                ],
                name=name,
                showlegend=False,
            ),
            row=1,
            col=col,
        )
        hi = float(max(x.max(), y.max())) if len(j) else 1.0
        fig.add_trace(identity_line(hi), row=1, col=col)
        fig.update_xaxes(title_text="live", row=1, col=col)
        fig.update_yaxes(title_text="simulated", row=1, col=col)
    fig.update_layout(
        title=f"simulated vs live, {len(j)} requests: {Path(sim_dir).name} vs "
        f"{live_dirs[0].name}"
        + (f" (mean of {len(live_dirs)} runs)" if len(live_dirs) > 1 else ""),
        height=500,
    )
    c = comparison if comparison is not None else compare_runs(sim_dir, live_dirs)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>ltrsched compare: {html.escape(Path(sim_dir).name)}</title>"
        f"<style>{_CSS}</style></head><body>\n{_comparison_html(c)}\n"
        + fig.to_html(full_html=False, include_plotlyjs=True)
        + "\n</body></html>\n"
    )
    atomic_write(out, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))


_CSS = (
    "body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; }"
    " table { border-collapse: collapse; } th, td { border: 1px solid #ddd;"
    " padding: 3px 8px; } td.num { text-align: right; font-variant-numeric: tabular-nums; }"
    " p.pass { color: #1a7f37; font-weight: bold; } p.fail { color: #c62828; font-weight: bold; }"
)


def _comparison_html(c: Comparison) -> str:
    """The verdict, the table of metrics and the notes, as format_table gives them."""

    def num(x: float | None) -> str:
        return "-" if x is None or not math.isfinite(x) else f"{x:.4g}"

    many = c.live_runs > 1
    head = (
        "<tr><th>metric</th><th>sim</th><th>live"
        + (f" (mean of {c.live_runs})</th><th>live min</th><th>live max" if many else "")
        + "</th><th>error</th></tr>"
    )
    rows = []
    for r in c.metrics:
        err = f"{r['rel_error']:+.1%}" if math.isfinite(r["rel_error"]) else "-"
        extra = (
            (
                f'<td class="num">{num(r.get("live_min"))}</td>'
                f'<td class="num">{num(r.get("live_max"))}</td>'
            )
            if many
            else ""
        )
        rows.append(
            f'<tr><td>{html.escape(r["label"])}</td><td class="num">{num(r["sim"])}'
            f'</td><td class="num">{num(r["live"])}</td>{extra}'
            f'<td class="num">{err}</td></tr>'
        )
    p = c.per_request_latency_error
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in c.notes)
    return (
        f"<h1>Simulated against live: {html.escape(Path(c.sim).name)}</h1>"
        f"<p>sim: {html.escape(c.sim)}<br>live: {html.escape(c.live)}</p>"
        f'<p class="{"pass" if c.passed else "fail"}">{html.escape(c.verdict)}</p>'
        f"<table>{head}{''.join(rows)}</table>"
        f"<p>per request ({c.requests_matched} matched): |latency error| mean "
        f"{p['mean_abs']:.1%}, p50 {p['p50_abs']:.1%}, p90 {p['p90_abs']:.1%}</p>"
        + (f"<ul>{notes}</ul>" if notes else "")
    )


def format_table(c: Comparison) -> str:
    """The comparison as text; its table fits 80 columns, replicate columns included."""
    many = c.live_runs > 1

    def num(x: float | None, width: int = 10) -> str:
        return f"{x:{width}.4g}" if x is not None else f"{'-':>{width}}"

    live_head, w = (f"live (mean of {c.live_runs})", 17) if many else ("live", 10)
    head = f"{'metric':<23}{'sim':>10}{live_head:>{w}}{'error':>9}"
    lines = [head + (f"{'live min':>10}{'live max':>10}" if many else "")]
    for r in c.metrics:
        err = f"{r['rel_error']:+9.1%}" if math.isfinite(r["rel_error"]) else f"{'-':>9}"
        line = f"{r['label']:<23}{num(r['sim'])}{num(r['live'], w)}{err}"
        if many:
            line += num(r.get("live_min")) + num(r.get("live_max"))
        lines.append(line)
    p = c.per_request_latency_error
    lines.append(
        f"per request ({c.requests_matched} matched): |latency error| mean "
        f"{p['mean_abs']:.1%}, p50 {p['p50_abs']:.1%}, p90 {p['p90_abs']:.1%}"
    )
    if (f := c.fleet) is not None:
        lines.append(
            f"fleet: same replica for {f['same_replica']}/{f['requests_routed_in_both']} "
            f"requests, same cached tokens for {f['same_cached_tokens']}"
        )
    lines += [f"note: {n}" for n in c.notes]
    lines.append(c.verdict)
    return "\n".join(lines)


def compare(
    run_a: Annotated[
        Path | None,
        typer.Argument(
            help="A run directory (simulated or live), shown as A beside RUN_B: their "
            "ratio and differing settings, no verdict.",
            show_default=False,
        ),
    ] = None,
    run_b: Annotated[
        Path | None, typer.Argument(help="The run shown as B.", show_default=False)
    ] = None,
    sim: Annotated[Path | None, typer.Option("--sim", help="Simulated run directory.")] = None,
    live: Annotated[
        list[Path] | None,
        typer.Option(
            "--live",
            help="Live run directory; repeat it for replicates of the same trace and "
            "policy, which are averaged (their spread is reported).",
        ),
    ] = None,
    html_out: Annotated[
        Path | None,
        typer.Option("--html", help="Write the verdict, the table and per-request scatters here."),
    ] = None,
    tol_mean: Annotated[
        float, typer.Option(help="Bound on mean latency and throughput error.")
    ] = 0.10,
    tol_p90: Annotated[float, typer.Option(help="Bound on p90 latency error.")] = 0.15,
    allow_different_trace: Annotated[
        bool,
        typer.Option(
            "--allow-different-trace",
            help="Compare runs whose traces differ (by fingerprint); refused otherwise.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compare two runs side by side (RUN_A RUN_B: exit status 0), or a simulated run
    with a live run of the same trace (--sim S --live L: errors and a verdict; exit
    status 0 on PASS, 1 on FAIL)."""
    if run_a is not None:
        if sim is not None or live:
            raise AnalysisError("compare: give RUN_A RUN_B, or --sim and --live, not both")
        if run_b is None:
            raise AnalysisError("compare: give two run directories, RUN_A and RUN_B")
        _compare_two(run_a, run_b, html_out, as_json)
        return
    if sim is None or not live:
        raise AnalysisError("compare: give RUN_A RUN_B, or --sim S --live L")
    c = compare_runs(sim, live, Tolerances(tol_mean, tol_p90), allow_different_trace)
    if html_out is not None:
        write_scatter_html(sim, live, html_out, c)
    if as_json:
        sys.stdout.write(json.dumps(asdict(c), indent=2, default=str) + "\n")
    else:
        print(format_table(c))
        if html_out is not None:
            print(f"wrote {html_out}")
    if not c.passed:
        raise typer.Exit(1)


def _compare_two(run_a: Path, run_b: Path, html_out: Path | None, as_json: bool) -> None:
    from analysis.ab import compare_ab, format_ab, write_ab_html

    c = compare_ab(run_a, run_b)
    if html_out is not None:
        write_ab_html(c, html_out)
    if as_json:
        sys.stdout.write(json.dumps(asdict(c), indent=2, default=str) + "\n")
        return
    print(format_ab(c))
    if html_out is not None:
        print(f"wrote {html_out}")
