"""The live tests' vLLM runs in a process group that never outlives its test: a fake slow
"engine" (a parent that starts a child in its session, as vLLM's engine core is started,
and both sleep) is stopped whole on timeout, on an error in the caller, and when the
parent exits and leaves its child behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from live_fakes import group_alive, run_group

# A parent that starts a child (its pid in argv[1]'s file) and then sleeps or exits.
ENGINE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[1], "w").write(str(child.pid))
if sys.argv[2] == "exit":
    sys.exit(3)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    """Whether pid is a live process (a zombie is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def child_pid(path) -> int:
    deadline = time.monotonic() + 60
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < deadline, "the fake engine never started its child"
        time.sleep(0.05)
    return int(path.read_text())


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_a_timeout_stops_the_leader_and_its_child(tmp_path):
    pid_file = tmp_path / "child.pid"
    with pytest.raises(subprocess.TimeoutExpired) as e:
        run_group([sys.executable, "-c", ENGINE, str(pid_file), "sleep"], timeout_s=5)
    child = child_pid(pid_file)
    assert not alive(child)
    assert e.value.timeout == 5


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_a_leader_that_exits_leaves_no_child_behind(tmp_path):
    pid_file = tmp_path / "child.pid"
    proc = run_group([sys.executable, "-c", ENGINE, str(pid_file), "exit"], timeout_s=60)
    assert proc.returncode == 3
    child = child_pid(pid_file)
    deadline = time.monotonic() + 10  # an orphan is reaped by whoever adopted it
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_an_interrupt_in_the_caller_stops_the_group(tmp_path, monkeypatch):
    """Any exception while waiting (here a KeyboardInterrupt from communicate) stops
    the group before it propagates."""
    pid_file = tmp_path / "child.pid"
    started: list[subprocess.Popen] = []
    real_communicate = subprocess.Popen.communicate

    def interrupted(self, *args, **kwargs):
        started.append(self)
        child_pid(pid_file)  # the child exists before the interrupt
        raise KeyboardInterrupt

    monkeypatch.setattr(subprocess.Popen, "communicate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_group([sys.executable, "-c", ENGINE, str(pid_file), "sleep"], timeout_s=60)
    monkeypatch.setattr(subprocess.Popen, "communicate", real_communicate)
    assert not alive(child_pid(pid_file))
    assert not group_alive(started[0].pid)
