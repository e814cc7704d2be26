"""The report's opening table: each setting's metrics, averaged over seeds, and the
failed runs with their errors."""

from __future__ import annotations

import html

import pandas as pd

from analysis.figures.common import aggregate, fmt, param_columns, pretty, varying

METRICS = (
    ("completed", "completed"),
    ("rejected", "rejected"),
    ("mean_latency_s", "mean latency (s)"),
    ("p90_latency_s", "p90 latency (s)"),
    ("mean_norm_latency_s_per_token", "latency / token (s)"),
    ("mean_ttft_s", "mean TTFT (s)"),
    ("max_waiting_time_p99_s", "max wait p99 (s)"),
    ("throughput_req_s", "throughput (req/s)"),
    ("preemptions", "preemptions"),
)
MAX_ROWS = 400
MAX_FAILED = 20


def summary_table(runs: pd.DataFrame) -> str:
    """HTML: one row per setting (the parameters that vary), sorted by setting."""
    ok = runs[runs["status"] == "ok"]
    if ok.empty:
        return "<p>No run finished ok.</p>"
    ok = ok.assign(**{m: ok[m] if m in ok else float("nan") for m, _ in METRICS})
    keys = varying(ok, param_columns(ok)) or ["policy"]
    context = [k for k in keys if k != "policy"]
    agg = aggregate(ok, keys, [m for m, _ in METRICS])
    agg = agg.sort_values(context + ["mean_latency_s"], kind="stable")
    if "policy" in keys:
        agg = merge_identical_rows(agg, context)
    shown = agg.head(MAX_ROWS)
    head = "".join(f"<th>{html.escape(pretty(k))}</th>" for k in keys)
    head += "<th>seeds</th>" + "".join(f"<th>{t}</th>" for _, t in METRICS)
    body = []
    for _, r in shown.iterrows():
        cells = "".join(f"<td>{html.escape(fmt(r[k]))}</td>" for k in keys)
        cells += f"<td>{int(r['seeds'])}</td>"
        cells += "".join(f'<td class="num">{_num(r[m])}</td>' for m, _ in METRICS)
        # A setting that drops work must not pass for a fast one: mark it.
        tr = '<tr class="rejected">' if r["rejected"] > 0 else "<tr>"
        body.append(f"{tr}{cells}</tr>")
    note = f"<p>First {MAX_ROWS} of {len(agg)} settings.</p>" if len(agg) > MAX_ROWS else ""
    dropped = int((agg["rejected"] > 0).sum())
    warn = (
        f'<p class="warn">{dropped} setting{"s" if dropped != 1 else ""} (highlighted) '
        "rejected requests: their latencies and throughput are over the requests they "
        "completed, not the whole trace.</p>"
        if dropped
        else ""
    )
    return f'{warn}<table class="summary"><tr>{head}</tr>{"".join(body)}</table>{note}'


def merge_identical_rows(agg: pd.DataFrame, context: list[str]) -> pd.DataFrame:
    """One row for the policies of a setting whose every shown metric is the same (at
    light load all policies serve requests as they come): 'fcfs = mlfq = ...'."""
    shown = [m for m, _ in METRICS]
    sig = agg[shown].apply(lambda col: col.map(_num)).astype(str).agg("|".join, axis=1)
    sig = sig + "|" + agg["seeds"].astype(str)
    groups = [*context, "_sig"] if context else ["_sig"]
    tagged = agg.assign(_sig=sig.to_numpy(), _order=range(len(agg)))
    per_setting = (
        tagged.groupby(context, dropna=False)["policy"].transform("size")
        if context
        else pd.Series(len(tagged), index=tagged.index)
    )
    rows = []
    for _, g in tagged.groupby(groups, sort=False, dropna=False):
        first = g.iloc[0].copy()
        if len(g) > 1 and len(g) == per_setting.loc[g.index[0]]:
            first["policy"] = f"all {len(g)} policies (identical results)"
        elif len(g) > 1:
            first["policy"] = " = ".join(g["policy"].astype(str))
        rows.append(first)
    out = pd.DataFrame(rows).sort_values("_order", kind="stable")
    return out.drop(columns=["_sig", "_order"]).reset_index(drop=True)


def failed_table(runs: pd.DataFrame) -> str:
    """HTML list of failed runs (run_id, policy, error), or '' if none failed."""
    failed = runs[runs["status"] != "ok"]
    if failed.empty:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(str(r['run_id']))}</td><td>{html.escape(str(r['policy']))}"
        f"</td><td>{html.escape(str(r['error']))}</td></tr>"
        for _, r in failed.head(MAX_FAILED).iterrows()
    )
    more = f"<p>... and {len(failed) - MAX_FAILED} more.</p>" if len(failed) > MAX_FAILED else ""
    return (
        f'<h3>Failed runs ({len(failed)})</h3><table class="failed"><tr><th>run_id</th>'
        f"<th>policy</th><th>error</th></tr>{rows}</table>{more}"
    )


def _num(value) -> str:
    if pd.isna(value):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
