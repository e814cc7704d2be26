"""The SimPy discrete-event engine of a vLLM server: batching, paged KV, preemption.

The names below load on first use, so `import sim.errors` or `sim.config` stays cheap."""

from __future__ import annotations

import importlib
from typing import Any

from sim.config import EngineConfig
from sim.errors import SimError

_EXPORTS = {"StepTimeProfile": "sim.profile", "load_profile": "sim.profile"}

__all__ = ["EngineConfig", "SimError", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
