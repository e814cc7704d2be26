"""A sweep's progress off a terminal: a line per finished run, and on Ctrl-C how many runs
are done and that a rerun resumes."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from analysis.progress import RichSweepProgress, run_line


def plain_console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=False, width=200), buf


def test_off_a_terminal_each_trace_and_run_prints_one_line():
    console, buf = plain_console()
    with RichSweepProgress(console) as progress:
        progress.traces_started(2)
        progress.trace_done(True)
        progress.trace_done(False)
        progress.runs_started(3, done_before=4, pending=3)
        progress.run_done(
            {
                "status": "ok",
                "run_id": "a1",
                "policy": "fcfs",
                "mean_latency_s": 4.2951,
                "wall_s": 2.04,
            }
        )
        progress.run_done(
            {
                "status": "ok",
                "run_id": "b2",
                "policy": "sjf-oracle",
                "mean_latency_s": 0.071,
                "requests": 2000,
                "completed": 27,
                "rejected": 1973,
                "wall_s": 0.5,
            }
        )
        progress.run_done(
            {
                "status": "failed",
                "run_id": "c3",
                "policy": "nope",
                "error": "unknown policy 'nope'",
                "wall_s": 0.0,
            }
        )
    assert buf.getvalue().splitlines() == [
        "trace 1/2 built",
        "trace 2/2 failed",
        "run 1/3 ok: a1 fcfs, mean latency 4.295 s, 2.0 s",
        "run 2/3 ok: b2 sjf-oracle, mean latency 0.071 s over 27 of 2,000 requests "
        "(1,973 rejected), 0.5 s",
        "run 3/3 failed: c3 nope: unknown policy 'nope'",
    ]


def test_on_a_terminal_no_lines_only_the_bar():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    progress = RichSweepProgress(console)
    assert not progress.lines
    progress.runs_started(1, 0, 1)
    progress.run_done({"status": "ok", "run_id": "a1", "policy": "fcfs"})
    assert "run 1/1" not in buf.getvalue()


def test_ctrl_c_says_how_many_runs_are_done_and_that_a_rerun_resumes():
    console, buf = plain_console()
    with pytest.raises(KeyboardInterrupt), RichSweepProgress(console) as progress:
        progress.runs_started(10, done_before=5, pending=10)
        progress.run_done({"status": "ok", "run_id": "a", "policy": "fcfs"})
        progress.run_done({"status": "failed", "run_id": "b", "policy": "x", "error": "e"})
        raise KeyboardInterrupt
    assert buf.getvalue().splitlines()[-1] == (
        "interrupted: 7 of 15 runs done and saved, 8 left; rerun the same command to "
        "resume (it skips the runs done)"
    )
    console, buf = plain_console()
    with pytest.raises(KeyboardInterrupt), RichSweepProgress(console) as progress:
        progress.traces_started(4)
        progress.trace_done(True)
        raise KeyboardInterrupt
    assert buf.getvalue().splitlines()[-1] == (
        "interrupted while building traces (1 of 4 built and saved); rerun the same "
        "command to resume"
    )


def test_run_line_without_a_latency():
    assert run_line({"status": "ok", "run_id": "a", "policy": "p"}, 1, 2) == "run 1/2 ok: a p"


def test_a_sweep_in_a_log_prints_a_line_per_run(small_spec, write_spec, tmp_path, capsys):
    from ltrsched.cli import main

    spec = dict(small_spec, policy=["fcfs", "sjf-oracle"], policy_params={}, seeds=[0])
    spec["trace"] = dict(spec["trace"], rate=[30])
    assert (
        main(["sweep", str(write_spec(spec)), "-o", str(tmp_path / "sw"), "--executor", "serial"])
        == 0
    )
    err = capsys.readouterr().err.splitlines()
    runs = [line for line in err if line.startswith("run ")]
    assert [line.split(":")[0] for line in runs] == ["run 1/2 ok", "run 2/2 ok"]
    assert "trace 1/1 built" in err


def slow_write(path: str) -> None:
    import time
    from pathlib import Path

    time.sleep(20)
    Path(path).write_text("finished")


def test_ctrl_c_ends_the_local_workers_instead_of_waiting_for_them(tmp_path):
    from analysis.executors import ExecutorOptions, make_executor

    marker = tmp_path / "done.txt"
    with pytest.raises(KeyboardInterrupt):
        with make_executor("local", ExecutorOptions(workers=1)) as ex:
            ex.pool.submit(int).result()  # the pool's worker is up
            running = ex.pool.submit(slow_write, str(marker))
            while not running.running():
                time.sleep(0.05)
            workers = list(ex.pool._processes.values())
            assert workers
            raise KeyboardInterrupt
    assert not any(p.is_alive() for p in workers)
    assert not marker.exists()  # the run in flight was dropped, not waited for
