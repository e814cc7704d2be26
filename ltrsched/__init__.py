"""ltrsched: the `ltrsched` command that fronts traces/, policies/, sim/, live/, analysis/."""

__version__ = "0.1.0"
