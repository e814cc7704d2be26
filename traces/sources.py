"""The source registry: a name on the command line to a loader and what it provides."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from traces.burstgpt import load_burstgpt
from traces.errors import TraceError
from traces.lmsys import load_lmsys
from traces.lmsys_like import load_lmsys_like
from traces.progress import Reporter
from traces.records import SourceOptions, SourceRecords
from traces.shared_prefix import load_shared_prefix
from traces.sharegpt import load_sharegpt
from traces.synthetic import load_synthetic
from traces.vllm_timed import load_vllm_timed

Loader = Callable[[SourceOptions, Reporter], SourceRecords]


@dataclass(frozen=True)
class SourceSpec:
    """A loader, and the facts the pipeline checks options against."""

    load: Loader
    has_text: bool  # gives prompt (and response) text, so a tokenizer counts it
    has_timestamps: bool  # gives arrival times of its own
    path: str  # "optional", "required" or "none"
    numbered: bool = True  # records have fixed positions, so --offset/--limit apply
    flags: set[str] = field(default_factory=set, hash=False)  # source-specific options
    counts_by: str = "source"  # the metadata's tokenizer when the source has no text
    # where hash_ids come from: "tokens" (hashed from the tokenizer's ids of the text),
    # "source" (the source's own) or "none" (no prefix identity: no column)
    prefix: str = "none"


_SESSIONS = {"--turns", "--max-turns", "--think-dist"}
_SHARED_PREFIX = {
    "--num-groups",
    "--prompts-per-group",
    "--system-prompt-len",
    "--question-len",
    "--output-len",
}

SOURCES: dict[str, SourceSpec] = {
    "sharegpt": SourceSpec(
        load_sharegpt,
        has_text=True,
        has_timestamps=False,
        path="optional",
        flags=_SESSIONS,
        prefix="tokens",
    ),
    "lmsys": SourceSpec(
        load_lmsys,
        has_text=True,
        has_timestamps=False,
        path="required",
        flags={"--model", *_SESSIONS},
        prefix="tokens",
    ),
    "burstgpt": SourceSpec(
        load_burstgpt,
        has_text=False,
        has_timestamps=True,
        path="required",
        flags={"--model"},
        counts_by="source (BurstGPT's)",
    ),
    "vllm-timed": SourceSpec(
        load_vllm_timed,
        has_text=False,
        has_timestamps=True,
        path="required",
        flags={"--timestamp-unit"},
        prefix="source",
    ),
    "synthetic": SourceSpec(
        load_synthetic,
        has_text=False,
        has_timestamps=False,
        path="none",
        numbered=False,
        flags={"--prompt-dist", "--output-dist"},
        counts_by="none (drawn lengths)",
    ),
    "lmsys-like": SourceSpec(
        load_lmsys_like, has_text=True, has_timestamps=False, path="none", prefix="tokens"
    ),
    "shared-prefix": SourceSpec(
        load_shared_prefix,
        has_text=False,
        has_timestamps=False,
        path="none",
        numbered=False,
        flags=_SHARED_PREFIX,
        counts_by="none (synthetic token ids)",
        prefix="source",
    ),
}


def get_source(name: str) -> SourceSpec:
    """The spec registered under `name`, or a TraceError listing the known sources."""
    if name not in SOURCES:
        raise TraceError(f"--source: unknown source {name!r} (known: {', '.join(SOURCES)})")
    return SOURCES[name]
