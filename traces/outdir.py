"""Why a path cannot become an output directory, said before any work is done: every
command that writes a directory (simulate, sweep, live replay, predictor train, demo, ...)
asks this first and raises its own package's error with the answer."""

from __future__ import annotations

import os
from pathlib import Path


def out_dir_problem(path: Path | str) -> str | None:
    """None if `path` is a directory, or can be made one, that this process may write
    into; else why not, in a few words."""
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            return "it is a file, not a directory"
        return None if os.access(p, os.W_OK | os.X_OK) else "the directory is not writable"
    for parent in p.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a directory"
            if not os.access(parent, os.W_OK | os.X_OK):
                return f"{parent} is not writable"
            return None
    return None
