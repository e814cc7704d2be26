"""Sweeps, reports and the sweep-side of sim-versus-live comparison.

spec.py (the YAML format) -> grid.py (runs and their run_ids) -> sweep.py (run them on an
executor from executors.py, each through worker.py, into the dataset of dataset.py);
report.py draws a sweep folder (figures/, summary_table.py, live_runs.py) as one HTML page.
"""
