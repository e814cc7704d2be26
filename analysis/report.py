"""A sweep's report: one self-contained HTML page (plotly.js inlined, so it opens offline)
with a summary table, then every figure the sweep has data for, each with a caption, and
a note for each figure it lacks data for."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import plotly.io as pio
from plotly.offline import get_plotlyjs

from analysis.dataset import SweepDir, read_results
from analysis.errors import AnalysisError
from analysis.figures import FIGURES, ReportData, Shown, Skipped
from analysis.live_runs import find_live_runs
from analysis.predictor_table import predictor_table
from analysis.summary_table import failed_table, summary_table
from traces.io import atomic_write

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; }
p.caption { color: #444; margin: 0.2em 0 0.6em; } p.meta { color: #666; }
p.warn { background: #fff4d6; padding: 0.5em; border-left: 4px solid #e0a800; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } th { background: #f4f4f4; }
tr.rejected td { background: #fff4d6; } div.wide { overflow-x: auto; max-width: 100%; }
"""


@dataclass
class ReportOutcome:
    """What the page holds: figures shown and skipped, and any PNGs written."""

    path: Path
    shown: list[Shown] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    pngs: list[Path] = field(default_factory=list)


def load_report_data(root: str | Path, live: list[Path] | None = None) -> ReportData:
    """The sweep's rows, and the live runs in DIR/live/ and in each --live path."""
    root = Path(root)
    runs = read_results(root)
    live_paths = list(live or [])
    if SweepDir(root).live.is_dir():
        live_paths.insert(0, SweepDir(root).live)
    return ReportData(runs, root, find_live_runs(live_paths))


def build_report(
    data: ReportData, out: str | Path, png_dir: str | Path | None = None
) -> ReportOutcome:
    """Write the HTML page (atomically) and, if asked, one PNG per figure."""
    outcome = ReportOutcome(Path(out))
    for make in FIGURES:
        result = make(data)
        if result is None:  # not meant for this kind of sweep: no section, no note
            continue
        (outcome.shown if isinstance(result, Shown) else outcome.skipped).append(result)
    page = _page(data, outcome)
    atomic_write(outcome.path, lambda p: Path(p).write_text(page, encoding="utf-8"))
    if png_dir is not None:
        outcome.pngs = export_pngs(outcome.shown, Path(png_dir))
    return outcome


def export_pngs(shown: list[Shown], png_dir: Path) -> list[Path]:
    """<key>.png per figure through kaleido (which drives a local Chrome or Chromium)."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        raise AnalysisError(
            "--png needs kaleido (pip install kaleido) and Chrome or Chromium"
        ) from None
    png_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in shown:
        path = png_dir / f"{s.key}.png"
        try:
            s.figure.write_image(path, width=1300, height=s.figure.layout.height or 450)
        except Exception as e:  # noqa: BLE001 - kaleido's errors vary by version and browser
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise AnalysisError(f"--png: kaleido could not export {s.key}: {first}") from None
        paths.append(path)
    return paths


def _page(data: ReportData, outcome: ReportOutcome) -> str:
    runs = data.runs
    names = ", ".join(sorted(set(runs["sweep"].astype(str))))
    ok = int((runs["status"] == "ok").sum())
    parts = [
        f"<h1>ltrsched sweep report: {html.escape(names)}</h1>",
        f'<p class="meta">{len(runs)} runs: {ok} ok, {len(runs) - ok} failed; '
        f"{len(data.live)} live run(s); written "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by ltrsched report.</p>",
        _profile_note(runs),
        '<h2 id="summary">Summary</h2>',
        '<p class="caption">Each setting\'s metrics, mean over seeds, sorted by setting and '
        "then by mean latency; policies with the same results in a setting share a row "
        "(a = b).</p>",
        summary_table(runs),
        failed_table(runs),
        predictor_table(runs),
    ]
    parts += [figure_html(s) for s in outcome.shown]
    if outcome.skipped:
        items = "".join(
            f"<li><b>{html.escape(s.title)}</b>: skipped, {html.escape(s.note)}</li>"
            for s in outcome.skipped
        )
        parts += ['<h2 id="skipped">Figures without data</h2>', f"<ul>{items}</ul>"]
    spec = data.root / "spec.yaml" if data.root else None
    if spec is not None and spec.exists():
        parts.append(
            "<details><summary>Sweep spec (the last one run into this folder)"
            f"</summary><pre>{html.escape(spec.read_text())}</pre></details>"
        )
    return html_document(f"ltrsched report: {names}", "\n".join(p for p in parts if p))


def html_document(title: str, body: str) -> str:
    """A self-contained page around body (HTML): the reports' CSS, plotly.js inlined."""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head>'
        f"<body>\n{body}\n</body></html>\n"
    )


def figure_html(s: Shown) -> str:
    """One figure of a page: its heading, caption, plot (plotly.js is the page's) and
    extra HTML."""
    # The div's id differs from the heading's: getElementById must find the div.
    div = pio.to_html(
        s.figure,
        full_html=False,
        include_plotlyjs=False,
        div_id=f"fig-{s.key}",
        config={"displaylogo": False, "responsive": True},
    )
    return "\n".join([
        f'<h2 id="{s.key}">{html.escape(s.title)}</h2>',
        f'<p class="caption">{html.escape(s.caption)}</p>',
        div,
        s.extra_html,
    ])


def _profile_note(runs) -> str:
    """Say so when step times come from a first-principles estimate, not measurements."""
    if "profile_source" not in runs.columns:
        return ""
    estimated = runs.loc[runs["profile_source"] == "first-principles", "profile_label"]
    if estimated.empty:
        return ""
    labels = ", ".join(sorted(set(estimated.astype(str))))
    return (
        f'<p class="warn">Step times come from a first-principles estimate, not from '
        f"measurements: {html.escape(labels)}.</p>"
    )
