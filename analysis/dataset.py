"""The results of a sweep on disk: one Parquet dataset that grows a file per finished run.

    DIR/results/part-<run_id>.parquet   one row: parameters, metrics, status, error, wall_s
    DIR/requests/<run_id>.parquet       per-request latencies (if the spec keeps them)
    DIR/traces/<trace_id>.parquet       the traces the sweep built (reused on resume)
    DIR/spec.yaml                       the spec last run into DIR
    DIR/live/<name>/                    live runs to compare with (requests/steps/summary)

Every file is written under a temporary name and renamed, the requests file before the
result part, so a part on disk means a whole run: a killed sweep leaves only whole runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.errors import AnalysisError
from traces.io import atomic_write

PART_PREFIX = "part-"


@dataclass(frozen=True)
class SweepDir:
    """Paths inside a sweep's output folder."""

    root: Path

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def requests(self) -> Path:
        return self.root / "requests"

    @property
    def traces(self) -> Path:
        return self.root / "traces"

    @property
    def live(self) -> Path:
        return self.root / "live"

    def part(self, run_id: str) -> Path:
        return self.results / f"{PART_PREFIX}{run_id}.parquet"

    def requests_of(self, run_id: str) -> Path:
        return self.requests / f"{run_id}.parquet"

    def trace(self, trace_id: str) -> Path:
        return self.traces / f"{trace_id}.parquet"

    def parts(self) -> list[Path]:
        """Finished parts, by name (temporary files of an interrupted write are skipped)."""
        if not self.results.is_dir():
            return []
        return sorted(self.results.glob(f"{PART_PREFIX}*.parquet"))


def write_result(sweep: SweepDir, row: dict, requests: pd.DataFrame | None) -> None:
    """Write one run: its per-request table first, then its result part (the marker)."""
    run_id = row["run_id"]
    if requests is not None:
        atomic_write(sweep.requests_of(run_id), lambda p: requests.to_parquet(p, index=False))
    table = pa.Table.from_pylist([row])
    atomic_write(sweep.part(run_id), lambda p: pq.write_table(table, p))


def done_run_ids(sweep: SweepDir) -> set[str]:
    """run_ids finished with status ok (failed runs are tried again on resume)."""
    done = set()
    for part in sweep.parts():
        status = pq.read_table(part, columns=["status"]).column("status").to_pylist()
        if status == ["ok"]:
            done.add(part.stem[len(PART_PREFIX) :])
    return done


def read_results(root: str | Path) -> pd.DataFrame:
    """All result rows of a sweep folder, one per run, sorted by run_id; the union of the
    parts' columns (a policy's parameters are columns of its runs only)."""
    sweep = SweepDir(Path(root))
    parts = sweep.parts()
    if not parts:
        raise AnalysisError(f"{root}: no sweep results (expected {sweep.results}/part-*.parquet)")
    frames = [pq.read_table(p).to_pandas() for p in parts]
    df = pd.concat(frames, ignore_index=True, sort=False).infer_objects()
    return df.sort_values("run_id", kind="stable").reset_index(drop=True)


def read_requests(root: str | Path, run_id: str) -> pd.DataFrame | None:
    """The per-request latencies of one run, or None if the sweep did not keep them."""
    path = SweepDir(Path(root)).requests_of(run_id)
    return pd.read_parquet(path) if path.exists() else None
