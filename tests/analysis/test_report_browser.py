"""The report opens in a real browser, offline, draws every figure and logs nothing to
the console (headless Chromium; skipped where /usr/bin/chromium is absent)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")


def test_report_renders_without_console_messages(report_html, tmp_path):
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--enable-logging=stderr",
        "--v=0",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        report_html.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Every console message (log, warning, error, uncaught exception) is a CONSOLE line.
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, "\n".join(console)
    dom = proc.stdout
    figures = re.findall(r'<div id="fig-(\w+)" class="plotly-graph-div([^"]*)"', dom)
    assert len(figures) == 6
    for key, classes in figures:  # plotly drew each figure into its div
        assert "js-plotly-plot" in classes, key
        drawn = dom[dom.index(f'<div id="fig-{key}"') :]
        assert '<svg class="main-svg"' in drawn[:5000], key
