"""The peer suite's harness (scripts/peer/): the verdict, the extraction from an sdist,
the offline stand-ins, one-line errors, and the pytest plugin on a small suite of its
own (vLLM's tests themselves run in CI, .ci/run)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

PEER = Path(__file__).resolve().parents[2] / "scripts" / "peer"
sys.path.insert(0, str(PEER))

import peer_tests  # noqa: E402
from standins import MODELS, REVISION, write_hub_cache  # noqa: E402


def rec(outcome: str, error: str = "") -> dict:
    return {"outcome": outcome, "error": error}


def test_verdict_counts_only_what_vllm_passes_and_the_allow_list_excuses():
    base = {
        "a": rec("passed"),
        "b": rec("passed"),
        "c": rec("passed"),
        "d": rec("failed"),
        "e": rec("passed"),
    }
    ours = {"a": rec("passed"), "b": rec("failed"), "c": rec("failed"), "d": rec("failed")}
    allowed = {"c": "premise changed", "z": "gone upstream"}
    unexpected, seen, stale = peer_tests.verdict(base, ours, allowed)
    assert unexpected == ["b", "e"]  # e: not run under ours at all
    assert seen == ["c"] and stale == ["z"]


def fake_sdist(tmp_path: Path, drop: str | None = None) -> Path:
    names = [
        *peer_tests.HELPERS,
        *(peer_tests.CORE + f for f in peer_tests.SUITE),
        "tests/v1/core/test_other.py",
        "vllm/__init__.py",
    ]
    path = tmp_path / "vllm-9.9.9.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            if name == drop:
                continue
            data = f"# {name}\n".encode()
            info = tarfile.TarInfo(f"vllm-9.9.9/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_extract_takes_the_suite_and_its_helpers_only(tmp_path):
    work = tmp_path / "w"
    paths = peer_tests.extract(fake_sdist(tmp_path), work, ("test_prefix_replay.py",))
    assert paths == ["tests/v1/core/test_prefix_replay.py"]
    got = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file())
    want = {*peer_tests.HELPERS, *(peer_tests.CORE + f for f in peer_tests.SUITE), "pytest.ini"}
    assert got == sorted(want)
    with pytest.raises(peer_tests.PeerError, match="lacks tests/v1/core/utils.py"):
        peer_tests.extract(fake_sdist(tmp_path, drop="tests/v1/core/utils.py"), work, ())


def test_stand_ins_are_read_from_the_hub_cache_offline(tmp_path):
    from huggingface_hub import try_to_load_from_cache

    root = write_hub_cache(tmp_path / "hub")
    for repo in MODELS:
        path = try_to_load_from_cache(repo, "config.json", cache_dir=root)
        assert path is not None and REVISION in path
        cfg = json.loads(Path(path).read_text())
        assert cfg["architectures"] and cfg["dtype"]  # no dtype: vLLM asks the hub


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["--policy", "no-such-policy"], "--policy no-such-policy"),
        (["--files", "test_nothing.py"], "--files: test_nothing.py not in the suite"),
        (["--jobs", "0"], "--jobs must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, msg, capsys):
    assert peer_tests.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("peer: error: ") and msg in err and "\n" not in err


SMALL_SUITE = """
from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.scheduler import Scheduler

def test_names():
    import os
    ours = bool(os.environ.get("LTRSCHED_PEER_POLICY"))
    assert (Scheduler.__name__ == "PolicySyncScheduler") == ours
    assert (AsyncScheduler.__name__ == "PolicyAsyncScheduler") == ours

def test_fails():
    assert 1 == 2, "on purpose"
"""


@pytest.mark.parametrize("policy", [None, "fcfs"])
def test_plugin_swaps_the_classes_and_records_outcomes(tmp_path, policy):
    pytest.importorskip("vllm")
    (tmp_path / "test_small.py").write_text(SMALL_SUITE)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    record = tmp_path / "record.json"
    env = dict(
        os.environ,
        LTRSCHED_PEER_RECORD=str(record),
        PYTHONPATH=os.pathsep.join([str(PEER), str(PEER.parents[1])]),
    )
    env.pop("LTRSCHED_PEER_POLICY", None)
    if policy:
        env["LTRSCHED_PEER_POLICY"] = policy
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "ltrsched_peer",
            "-p",
            "no:cacheprovider",
            "-c",
            str(tmp_path / "pytest.ini"),
            "test_small.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=600,
    )
    got = json.loads(record.read_text())
    assert got["policy"] == policy
    tests = got["tests"]
    assert tests["test_small.py::test_names"]["outcome"] == "passed"
    assert tests["test_small.py::test_fails"]["outcome"] == "failed"
    assert "on purpose" in tests["test_small.py::test_fails"]["error"]
