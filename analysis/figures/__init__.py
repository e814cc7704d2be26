"""The report's figures, in page order: each a function from ReportData to a Shown figure,
a Skipped note when the sweep lacks its data, or None when the figure is not meant for
this kind of sweep at all. Adding a figure: one file, one line here."""

from analysis.figures.advantage import advantage_figure
from analysis.figures.cdf import cdf_figure
from analysis.figures.common import ReportData, Shown, Skipped
from analysis.figures.datagen import datagen_figure
from analysis.figures.live import live_figure
from analysis.figures.rate import rate_figure
from analysis.figures.replica_load import replica_load_figure
from analysis.figures.router import router_figure
from analysis.figures.tau import tau_figure
from analysis.figures.tradeoff import tradeoff_figure

FIGURES = (
    rate_figure,
    advantage_figure,
    cdf_figure,
    tradeoff_figure,
    tau_figure,
    datagen_figure,
    router_figure,
    replica_load_figure,
    live_figure,
)

__all__ = ["FIGURES", "ReportData", "Shown", "Skipped"]
