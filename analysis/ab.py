"""`ltrsched compare RUN_A RUN_B`: two runs side by side, with no verdict.

For A/B questions (this policy against that one, this KV size against that one, a
simulated run against a live one) the answer is the two runs' summaries, their ratio and
what was set differently; whether the difference matters is the reader's call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.compare import METRICS, read_run_summary
from traces.fingerprint import FINGERPRINT_KEY

# (summary key, label) shown besides compare's METRICS: what was thrown away, and fairness.
AB_METRICS = (
    ("completed", "completed"),
    ("rejected", "rejected"),
    ("unfinished", "unfinished"),
    *METRICS,
    ("max_waiting_time_p99_s", "p99 max waiting"),
    ("preemptions", "preemptions"),
    ("makespan_s", "makespan (s)"),
)
# Engine limits, as sim/ keeps them (under "engine") and live/ does (at the top level).
ENGINE_KEYS = (
    "engine_mode",
    "num_gpu_blocks",
    "block_size",
    "max_num_seqs",
    "max_num_batched_tokens",
    "max_model_len",
    "chunked_prefill",
    "prefix_caching",
    "preemption",
)


@dataclass
class ABComparison:
    """Two runs' summary metrics (B over A as the ratio) and their differing settings."""

    run_a: str
    run_b: str
    metrics: list[dict[str, Any]]
    differing: list[dict[str, Any]]  # setting, a, b
    notes: list[str] = field(default_factory=list)


def run_settings(summary: dict[str, Any]) -> dict[str, Any]:
    """What a run was set to, flattened alike for simulated and live runs."""
    engine = summary.get("engine")
    live = engine == "vllm" or not isinstance(engine, dict)
    limits = {} if live else dict(engine)
    if not live and "prefix_caching" in summary:
        limits["prefix_caching"] = summary["prefix_caching"]  # the mode's default resolved
    out: dict[str, Any] = {
        "engine": "live vLLM" if live else "simulator",
        "policy": summary.get("policy"),
        "profile": None if live else summary.get("profile_label") or summary.get("profile"),
        "model": summary.get("model") if live else None,
        "device": summary.get("device") if live else None,
    }
    for key in ENGINE_KEYS:
        out[key] = summary.get(key) if live or key not in limits else limits[key]
    if not live:
        out["num_gpu_blocks"] = summary.get("num_gpu_blocks", out["num_gpu_blocks"])
    out["trace"] = summary.get(FINGERPRINT_KEY) or summary.get("trace")
    return out


def ratio(a: float | None, b: float | None) -> float:
    """b / a; NaN where either is missing or not finite, or a is 0."""
    if a is None or b is None or not math.isfinite(a) or not math.isfinite(b) or a == 0:
        return math.nan
    return b / a


def compare_ab(run_a: Path, run_b: Path) -> ABComparison:
    """Side by side summaries of two run directories (simulated or live, any mix)."""
    sa, sb = read_run_summary(run_a), read_run_summary(run_b)
    rows = []
    for key, label in AB_METRICS:
        a, b = sa.get(key), sb.get(key)
        rows.append({"metric": key, "label": label, "a": a, "b": b, "ratio": ratio(a, b)})
    set_a, set_b = run_settings(sa), run_settings(sb)
    differing = [
        {"setting": k, "a": set_a[k], "b": set_b[k]}
        for k in set_a
        if k != "trace" and set_a[k] != set_b[k] and not (set_a[k] is None and set_b[k] is None)
    ]
    notes = []
    if set_a["trace"] != set_b["trace"]:
        notes.append(
            f"the runs are of different traces ({sa.get('requests')} and "
            f"{sb.get('requests')} requests): the ratios compare different work"
        )
    for name, s in (("A", sa), ("B", sb)):
        dropped = (s.get("rejected") or 0) + (s.get("unfinished") or 0)
        if dropped:
            notes.append(
                f"run {name}'s latencies are over {s.get('completed') or 0:,} of "
                f"{s.get('requests') or 0:,} requests ({dropped:,} rejected or unfinished)"
            )
    return ABComparison(str(run_a), str(run_b), rows, differing, notes)


def _num(x: Any, width: int = 12) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return f"{'-':>{width}}"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return f"{str(x):>{width}}"
    return f"{x:>{width},}" if isinstance(x, int) else f"{x:>{width}.4g}"


def format_ab(c: ABComparison) -> str:
    """The comparison as text: a table of metrics (B/A), then the differing settings."""
    lines = [f"A: {c.run_a}", f"B: {c.run_b}"]
    lines.append(f"{'metric':<23}{'A':>12}{'B':>12}{'B/A':>9}")
    for r in c.metrics:
        rat = f"{r['ratio']:9.3f}" if math.isfinite(r["ratio"]) else f"{'-':>9}"
        lines.append(f"{r['label']:<23}{_num(r['a'])}{_num(r['b'])}{rat}")
    if c.differing:
        lines.append("settings that differ:")
        for d in c.differing:
            lines.append(f"  {d['setting']}: A {_setting(d['a'])}, B {_setting(d['b'])}")
    else:
        lines.append("settings that differ: none")
    lines += [f"note: {n}" for n in c.notes]
    return "\n".join(lines)


def _setting(x: Any) -> str:
    return "-" if x is None else str(x)


def write_ab_html(c: ABComparison, out: Path) -> None:
    """The same table and settings as a self-contained HTML page."""
    import html

    from analysis.compare import _CSS
    from traces.io import atomic_write

    def cell(x: Any) -> str:
        return f'<td class="num">{html.escape(_num(x).strip())}</td>'

    rows = "".join(
        f"<tr><td>{html.escape(r['label'])}</td>{cell(r['a'])}{cell(r['b'])}"
        + cell(r["ratio"])
        + "</tr>"
        for r in c.metrics
    )
    diff = "".join(
        f"<tr><td>{html.escape(d['setting'])}</td><td>{html.escape(_setting(d['a']))}</td>"
        f"<td>{html.escape(_setting(d['b']))}</td></tr>"
        for d in c.differing
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in c.notes)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>ltrsched compare: {html.escape(Path(c.run_a).name)} vs "
        f"{html.escape(Path(c.run_b).name)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>A/B: {html.escape(Path(c.run_a).name)} vs {html.escape(Path(c.run_b).name)}</h1>"
        f"<p>A: {html.escape(c.run_a)}<br>B: {html.escape(c.run_b)}</p>"
        f"<table><tr><th>metric</th><th>A</th><th>B</th><th>B/A</th></tr>{rows}</table>"
        + (
            "<h2>Settings that differ</h2><table><tr><th>setting</th><th>A</th><th>B</th>"
            f"</tr>{diff}</table>"
            if diff
            else "<p>No settings differ.</p>"
        )
        + (f"<ul>{notes}</ul>" if notes else "")
        + "\n</body></html>\n"
    )
    atomic_write(out, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
