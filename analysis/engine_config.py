"""The EngineConfig of one run: the spec's values, else the profile's measured engine
limits, else EngineConfig's defaults (the precedence `ltrsched simulate` uses)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from sim.config import EngineConfig
from sim.profile import PROFILE_LIMITS, StepTimeProfile


def engine_config(given: Mapping[str, Any], profile: StepTimeProfile, seed: int) -> EngineConfig:
    """EngineConfig for a run; raises SimError if the combination is invalid."""
    measured = {k: profile.engine[k] for k in PROFILE_LIMITS if profile.engine.get(k) is not None}
    cfg = EngineConfig(**{**measured, **given, "seed": seed})
    cfg.validate()
    return cfg


def engine_columns(cfg: EngineConfig) -> dict[str, Any]:
    """Every EngineConfig field as a result column, named as vLLM names it."""
    return {f.name: getattr(cfg, f.name) for f in fields(cfg)}
