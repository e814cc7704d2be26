"""Metrics, sweeps, reports and sim-versus-live comparison (not built yet)."""
