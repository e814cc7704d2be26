"""Request traces: loaders, token counting, arrival processes, trace files.

The names below load on first use, so `import traces.errors` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from traces.errors import TraceError

_EXPORTS = {
    "ArrivalProcess": "traces.arrivals",
    "arrival_times": "traces.arrivals",
    "BuildConfig": "traces.config",
    "BuildResult": "traces.build",
    "build_trace": "traces.build",
    "read_trace": "traces.io",
    "write_trace": "traces.io",
    "validate_trace": "traces.io",
    "SOURCES": "traces.sources",
    "get_source": "traces.sources",
    "TokenCounter": "traces.tokenize",
    "get_tokenizer": "traces.tokenize",
    "TraceSummary": "traces.summary",
    "summarize": "traces.summary",
    "parse_length_dist": "traces.distributions",
    "hash_ids_from_token_ids": "traces.prefix",
    "token_ids_from_hash_ids": "traces.prefix",
}

__all__ = ["TraceError", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'traces' has no attribute {name!r}")
