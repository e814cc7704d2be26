"""What `trace build` was asked for, one field per option, and the checks on it.

Errors name the command-line flag, since that is what the user typed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from traces.arrivals import ArrivalProcess
from traces.errors import TraceError
from traces.records import SourceOptions
from traces.sources import SourceSpec, get_source

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
}
_POSITIVE = ("rate", "cv", "duration_s", "time_scale")
_AT_LEAST_ONE = ("num_requests", "limit", "max_prompt_tokens", "max_output_tokens")
_AT_LEAST_ZERO = ("offset", "seed")
_SOURCE_SPECIFIC = ("model", "timestamp_unit", "prompt_dist", "output_dist")


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

    def _check_arrivals(self, spec: SourceSpec) -> None:
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

    def arrival_process(self) -> ArrivalProcess:
        """The arrival process these options ask for."""
        if self.burst:
            return ArrivalProcess("burst")
        if self.rate is not None and self.cv is not None:
            return ArrivalProcess("gamma", rate=self.rate, cv=self.cv)
        if self.rate is not None:
            return ArrivalProcess("poisson", rate=self.rate)
        return ArrivalProcess("timestamps", time_scale=self.time_scale or 1.0)

    def source_options(self) -> SourceOptions:
        """What the loader needs to know."""
        shared = {f.name for f in fields(SourceOptions)}
        given = {k: v for k, v in vars(self).items() if k in shared and v is not None}
        return SourceOptions(**given)
