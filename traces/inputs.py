"""Checks on an input file before a loader opens it, so each mistake is one clear line."""

from __future__ import annotations

from pathlib import Path

from traces.errors import TraceError


def require_path(path: str | None, source: str) -> str:
    """The --path a source needs, or a TraceError saying that it needs one."""
    if not path:
        raise TraceError(f"--source {source} needs --path FILE")
    return path


def check_input_file(path: str | Path) -> Path:
    """Return path as a Path if it is a non-empty regular file; else raise TraceError."""
    p = Path(path)
    if not p.exists():
        raise TraceError(f"{path}: no such file")
    if p.is_dir():
        raise TraceError(f"{path}: is a directory, not a file")
    if p.stat().st_size == 0:
        raise TraceError(f"{path}: file is empty")
    return p
