"""The report's predictor section: how well each length predictor the sweep's traces carry
ranks their requests (Kendall's tau, as `predictor eval` computes it), beside the
prompt-length heuristic, so the latencies of `ltr` runs can be read against it."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from predictor.metrics import ranking_metrics
from traces.errors import TraceError
from traces.io import read_trace
from traces.schema import SCORE_PREFIX


def predictor_table(runs: pd.DataFrame) -> str:
    """HTML: one row per (trace file, score column) of the ok runs' traces, or '' when no
    trace the sweep read from a file carries a score."""
    if "trace_path" not in runs.columns:
        return ""
    paths = runs.loc[runs["status"] == "ok", "trace_path"].dropna().astype(str).unique()
    rows = []
    for path in sorted(paths):
        try:
            df, _ = read_trace(Path(path))
        except (TraceError, OSError) as e:
            rows.append(
                f"<tr><td>{html.escape(path)}</td><td colspan=4>not readable now: "
                f"{html.escape(str(e).splitlines()[0])}</td></tr>"
            )
            continue
        scores = [c for c in df.columns if c.startswith(SCORE_PREFIX)]
        if not scores:
            continue
        length = df["output_tokens"].to_numpy()
        heuristic = ranking_metrics(-df["prompt_tokens"].to_numpy(float), length)
        for col in scores:
            m = ranking_metrics(df[col].to_numpy(float), length)
            rows.append(
                f"<tr><td>{html.escape(Path(path).name)}</td><td>{html.escape(col)}</td>"
                f'<td class="num">{len(df)}</td><td class="num">{m["kendall_tau"]:.3f}</td>'
                f'<td class="num">{heuristic["kendall_tau"]:.3f}</td></tr>'
            )
    if not rows:
        return ""
    return (
        '<h2 id="predictors">Predictors</h2><p class="caption">Kendall\'s tau between each '
        "score column of the sweep's traces and the requests' true output length (1: "
        "the score orders them shortest first without error), beside the prompt-length "
        "heuristic on the same requests.</p><table><tr><th>trace</th><th>score</th>"
        "<th>requests</th><th>Kendall tau</th><th>prompt-length tau</th></tr>"
        + "".join(rows)
        + "</table>"
    )
