"""A fleet file: the replicas of a simulated fleet, each with its profile and limits.

YAML or JSON, e.g. two H100 and two A100 replicas:

    replicas:
      - {profile: h100.yaml, count: 2}
      - {profile: a100.yaml, count: 2, num_gpu_blocks: 9000, max_num_seqs: 128}
    router: least-loaded          # optional; --router overrides it
    router_refresh_s: 0.1         # optional; --router-refresh-s overrides it

A replica's limit is, first found: its entry, the command line, its profile's `engine`
section, the default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sim.config import EngineConfig
from sim.errors import SimError
from sim.profile import PROFILE_LIMITS, load_profile
from sim.run import Replica

LIMITS = ("max_num_seqs", "max_num_batched_tokens", "block_size", "num_gpu_blocks", "max_model_len")
ENTRY_KEYS = ("profile", "count", *LIMITS)
# Limits a replica takes from its profile's engine section, as `ltrsched simulate` does
# (num_gpu_blocks is resolved from the profile later, with how it was found).
@dataclass(frozen=True)
class FleetFile:
    entries: list[dict[str, Any]]
    router: str | None = None
    router_refresh_s: float | None = None


def read_fleet_file(path: Path) -> FleetFile:
    """Parse and check a fleet file; errors name the file and the entry."""
    where = f"--fleet {path}"
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise SimError(f"{where}: {e.strerror or e}") from None
    try:
        if str(path).endswith(".json"):
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:  # noqa: BLE001 - any parse error is the user's file
        raise SimError(f"{where}: not valid YAML/JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("replicas"), list):
        raise SimError(f"{where}: expected a mapping with a `replicas` list")
    unknown = set(data) - {"replicas", "router", "router_refresh_s"}
    if unknown:
        raise SimError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    entries = []
    for i, e in enumerate(data["replicas"]):
        if not isinstance(e, dict):
            raise SimError(f"{where}: replicas[{i}] must be a mapping")
        bad = set(e) - set(ENTRY_KEYS)
        if bad:
            raise SimError(
                f"{where}: replicas[{i}]: unknown key(s) {', '.join(sorted(bad))}; "
                f"known: {', '.join(ENTRY_KEYS)}"
            )
        for k in ("count", *LIMITS):
            v = e.get(k)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise SimError(f"{where}: replicas[{i}].{k} must be an integer >= 1, got {v!r}")
        entries.extend([e] * int(e.get("count", 1)))
    if not entries:
        raise SimError(f"{where}: no replicas")
    refresh = data.get("router_refresh_s")
    if refresh is not None and not isinstance(refresh, int | float):
        raise SimError(f"{where}: router_refresh_s must be a number")
    return FleetFile(entries, data.get("router"), refresh)


def fleet_replicas(
    entries: list[dict[str, Any]],
    base: EngineConfig,
    given: dict[str, int | None],
    default_profile: str | None,
) -> list[Replica]:
    """Each entry as a Replica. given: the limits set on the command line (None: not)."""
    defaults = EngineConfig()
    out = []
    for e in entries:
        prof = load_profile(e.get("profile") or default_profile)
        eng = prof.engine
        limits = {}
        for k in LIMITS:
            from_profile = eng.get(k) if k in PROFILE_LIMITS else None
            for v in (e.get(k), given.get(k), from_profile):
                if v is not None:
                    limits[k] = int(v)
                    break
            else:
                limits[k] = getattr(defaults, k)
        out.append(Replica(prof, replace(base, **limits)))
    return out


def cli_fleet(
    base: EngineConfig,
    given: dict[str, int | None],
    profile: str | None,
    replicas: int | None,
    router: str | None,
    router_refresh_s: float | None,
    fleet: Path | None,
    replica_profiles: list[str] | None,
) -> tuple[int | list[Replica], str | None, float]:
    """The fleet that `ltrsched simulate`'s options describe: (replicas, router, refresh)."""
    entries = None
    if fleet is not None:
        if replica_profiles:
            raise SimError("give --fleet or --replica-profile, not both")
        ff = read_fleet_file(fleet)
        entries = ff.entries
        router = router or ff.router
        if router_refresh_s is None:
            router_refresh_s = ff.router_refresh_s
    elif replica_profiles:
        entries = [{"profile": p} for p in replica_profiles]
    if entries is not None:
        if replicas is not None and replicas != len(entries):
            what = "--fleet" if fleet is not None else "--replica-profile"
            raise SimError(f"--replicas {replicas}, but {what} lists {len(entries)} replicas")
        reps: int | list[Replica] = fleet_replicas(entries, base, given, profile)
        count = len(reps)
    else:
        reps = count = 1 if replicas is None else replicas
        if count < 1:
            raise SimError(f"--replicas: must be >= 1, got {count}")
    if count > 1 and router is None:
        raise SimError(
            f"{count} replicas need --router (e.g. round-robin or least-loaded; "
            "`ltrsched routers list`)"
        )
    refresh = 0.0 if router_refresh_s is None else float(router_refresh_s)
    if refresh < 0:
        raise SimError("--router-refresh-s: must be >= 0")
    return reps, router, refresh
