"""What `trace build` was asked for, one field per option, and the checks on it.

Errors name the command-line flag, since that is what the user typed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from traces.arrivals import ArrivalProcess, parse_stages
from traces.distributions import TimeDist, parse_time_dist
from traces.errors import TraceError
from traces.prefix import VLLM_BLOCK_TOKENS
from traces.records import SourceOptions
from traces.sources import SourceSpec, get_source
from traces.turns import TURNS

FLAGS = {
    "source": "--source",
    "path": "--path",
    "num_requests": "-n",
    "offset": "--offset",
    "limit": "--limit",
    "seed": "--seed",
    "tokenizer": "--tokenizer",
    "max_prompt_tokens": "--max-prompt-tokens",
    "max_output_tokens": "--max-output-tokens",
    "rate": "--rate",
    "cv": "--cv",
    "burst": "--burst",
    "duration_s": "--duration",
    "time_scale": "--time-scale",
    "shuffle": "--shuffle",
    "strict": "--strict",
    "keep_text": "--no-text",
    "model": "--model",
    "timestamp_unit": "--timestamp-unit",
    "prompt_dist": "--prompt-dist",
    "output_dist": "--output-dist",
    "hash_block_tokens": "--hash-block-tokens",
    "hash_ids": "--no-hash-ids",
    "turns": "--turns",
    "max_turns": "--max-turns",
    "think_dist": "--think-dist",
    "stages": "--stages",
    "num_groups": "--num-groups",
    "prompts_per_group": "--prompts-per-group",
    "system_prompt_len": "--system-prompt-len",
    "question_len": "--question-len",
    "output_len": "--output-len",
}
_POSITIVE = ("rate", "cv", "duration_s", "time_scale")
_AT_LEAST_ONE = (
    "num_requests",
    "limit",
    "max_prompt_tokens",
    "max_output_tokens",
    "hash_block_tokens",
    "max_turns",
    "num_groups",
    "prompts_per_group",
    "system_prompt_len",
    "question_len",
    "output_len",
)
_AT_LEAST_ZERO = ("offset", "seed")
_SOURCE_SPECIFIC = (
    "model",
    "timestamp_unit",
    "prompt_dist",
    "output_dist",
    "turns",
    "max_turns",
    "think_dist",
    "num_groups",
    "prompts_per_group",
    "system_prompt_len",
    "question_len",
    "output_len",
)
_STAGES_EXCLUDE = ("num_requests", "rate", "cv", "burst", "duration_s", "time_scale")
DEFAULT_THINK_DIST = "fixed:5"


@dataclass(frozen=True)
class BuildConfig:
    """Options of `ltrsched trace build`; None means not given."""

    source: str = "sharegpt"
    path: str | None = None
    num_requests: int | None = None
    offset: int = 0
    limit: int | None = None
    seed: int = 0
    tokenizer: str | None = None
    max_prompt_tokens: int | None = None
    max_output_tokens: int | None = None
    rate: float | None = None
    cv: float | None = None
    burst: bool = False
    duration_s: float | None = None
    time_scale: float | None = None
    shuffle: bool = False
    strict: bool = False
    keep_text: bool = True
    model: str | None = None
    timestamp_unit: str | None = None
    prompt_dist: str | None = None
    output_dist: str | None = None
    hash_block_tokens: int | None = None
    hash_ids: bool = True
    turns: str | None = None  # "first" (the default) or "all"
    max_turns: int | None = None
    think_dist: str | None = None
    stages: str | None = None  # e.g. "8x600,20x600"
    num_groups: int | None = None
    prompts_per_group: int | None = None
    system_prompt_len: int | None = None
    question_len: int | None = None
    output_len: int | None = None

    def spec(self) -> SourceSpec:
        return get_source(self.source)

    def validate(self) -> None:
        """Raise TraceError naming the flag for any value or combination that makes no sense."""
        spec = self.spec()
        for name in _POSITIVE:
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise TraceError(f"{FLAGS[name]} must be a number > 0, got {value:g}")
        for name, low in [(n, 1) for n in _AT_LEAST_ONE] + [(n, 0) for n in _AT_LEAST_ZERO]:
            value = getattr(self, name)
            if value is not None and value < low:
                raise TraceError(f"{FLAGS[name]} must be >= {low}, got {value}")
        self._check_arrivals(spec)
        self._check_source_flags(spec)
        self._check_prefix_flags(spec)
        self._check_sessions()

    def _check_arrivals(self, spec: SourceSpec) -> None:
        if self.stages is not None:
            parse_stages(self.stages)
            for name in _STAGES_EXCLUDE:
                if getattr(self, name) not in (None, False):
                    raise TraceError(
                        f"--stages and {FLAGS[name]} exclude each other "
                        "(each stage sends round(rate x duration) requests)"
                    )
            return
        if self.burst and self.rate is not None:
            raise TraceError("--burst and --rate exclude each other")
        if self.cv is not None and self.rate is None:
            raise TraceError("--cv needs --rate (the mean rate of the gamma process)")
        generated = self.burst or self.rate is not None
        if self.time_scale is not None and (generated or not spec.has_timestamps):
            raise TraceError("--time-scale scales a source's own timestamps (burstgpt, vllm-timed)")
        if not generated and not spec.has_timestamps:
            raise TraceError(
                f"--source {self.source} has no timestamps: give --rate R (Poisson), "
                "--rate R --cv C (gamma) or --burst"
            )

    def _check_source_flags(self, spec: SourceSpec) -> None:
        if spec.path == "none" and self.path:
            raise TraceError(f"--source {self.source} reads no file: drop --path")
        if not spec.numbered and (self.offset or self.limit is not None):
            raise TraceError(f"--offset/--limit do not apply to --source {self.source}")
        if not spec.has_text and self.tokenizer is not None:
            raise TraceError(
                f"--tokenizer: --source {self.source} has token counts, not text, to count"
            )
        for name in _SOURCE_SPECIFIC:
            if getattr(self, name) is not None and FLAGS[name] not in spec.flags:
                raise TraceError(f"{FLAGS[name]} does not apply to --source {self.source}")

    def _check_prefix_flags(self, spec: SourceSpec) -> None:
        if self.hash_block_tokens is not None and not self.hash_ids:
            raise TraceError("--hash-block-tokens and --no-hash-ids exclude each other")
        asked = self.hash_block_tokens is not None or not self.hash_ids
        if asked and spec.prefix == "none":
            flag = FLAGS["hash_block_tokens" if self.hash_ids else "hash_ids"]
            raise TraceError(f"{flag}: --source {self.source} has no prefix identity (hash_ids)")

    def _check_sessions(self) -> None:
        if self.turns is not None and self.turns not in TURNS:
            raise TraceError(f"--turns must be one of {', '.join(TURNS)}, got {self.turns!r}")
        for name in ("max_turns", "think_dist"):
            if getattr(self, name) is not None and self.turns != "all":
                raise TraceError(f"{FLAGS[name]} needs --turns all")
        if self.think_dist is not None:
            parse_time_dist(self.think_dist, "--think-dist")

    def arrival_process(self) -> ArrivalProcess:
        """The arrival process these options ask for (of sessions, with --turns all)."""
        if self.stages is not None:
            return ArrivalProcess("stages", stages=parse_stages(self.stages))
        if self.burst:
            return ArrivalProcess("burst")
        if self.rate is not None and self.cv is not None:
            return ArrivalProcess("gamma", rate=self.rate, cv=self.cv)
        if self.rate is not None:
            return ArrivalProcess("poisson", rate=self.rate)
        return ArrivalProcess("timestamps", time_scale=self.time_scale or 1.0)

    def think_time_dist(self) -> TimeDist:
        """Think time before a session's later turns (--think-dist, default fixed:5)."""
        return parse_time_dist(self.think_dist or DEFAULT_THINK_DIST, "--think-dist")

    def num_wanted(self) -> int | None:
        """Requests (sessions, with --turns all) asked for: -n, or the stages' total."""
        if self.stages is not None:
            return sum(s.requests for s in parse_stages(self.stages))
        return self.num_requests

    def text_block_tokens(self) -> int | None:
        """The block a text source's hash_ids are cut in; None with --no-hash-ids."""
        return (self.hash_block_tokens or VLLM_BLOCK_TOKENS) if self.hash_ids else None

    def source_options(self) -> SourceOptions:
        """What the loader needs to know."""
        shared = {f.name for f in fields(SourceOptions)}
        given = {k: v for k, v in vars(self).items() if k in shared and v is not None}
        if self.stages is not None:
            given["stage_counts"] = tuple(s.requests for s in parse_stages(self.stages))
            given["num_requests"] = sum(given["stage_counts"])
        return SourceOptions(**given)
