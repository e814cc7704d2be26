"""pytest plugin for the peer suite (scripts/peer/peer_tests.py): vLLM's own scheduler
tests, run against the ltrsched plug-in.

Loaded with `-p ltrsched_peer`. It records every test's outcome (nodeid -> outcome, the
first line of its error, how many plug-in schedulers it built) as JSON into the file
named by LTRSCHED_PEER_RECORD. With LTRSCHED_PEER_POLICY set to a policy spec, it also
makes every `Scheduler(...)` and `AsyncScheduler(...)` the tests build our plug-in
over that class (live.scheduler.PolicySyncScheduler / PolicyAsyncScheduler) with that
policy: before the tests import them, vLLM's modules are given the plug-in classes
under vLLM's names, so `from vllm.v1.core.sched.scheduler import Scheduler` in a test
gets ours (a subclass of vLLM's, so isinstance checks, patch.object and subclassing in
the tests apply to it). Without the variable the tests run vLLM's own scheduler: the
baseline.

A test in which the plug-in fell back to arrival order (a policy error it would
otherwise only log) fails, with the plug-in's message.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

ENV_POLICY = "LTRSCHED_PEER_POLICY"
ENV_RECORD = "LTRSCHED_PEER_RECORD"

_records: dict[str, dict[str, Any]] = {}
_current: dict[str, Any] = {"built": 0, "fallbacks": []}


def _install(policy: str) -> None:
    from vllm.v1.core.sched import async_scheduler, scheduler

    from live import scheduler as plugin
    from live.config import ENV_POLICY as PLUGIN_POLICY

    os.environ[PLUGIN_POLICY] = policy
    mixin = plugin.PolicySchedulingMixin
    init, fail = mixin.__init__, mixin._ltr_fail

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        _current["built"] += 1
        init(self, *args, **kwargs)

    def loud_fail(self: Any, e: Exception) -> None:
        _current["fallbacks"].append(f"{type(e).__name__}: {e}")
        fail(self, e)

    mixin.__init__ = counting_init  # type: ignore[method-assign]
    mixin._ltr_fail = loud_fail  # type: ignore[method-assign]
    scheduler.Scheduler = plugin.PolicySyncScheduler  # type: ignore[misc]
    async_scheduler.AsyncScheduler = plugin.PolicyAsyncScheduler  # type: ignore[misc]


def pytest_configure(config: pytest.Config) -> None:
    policy = os.environ.get(ENV_POLICY)
    if policy:
        _install(policy)


@pytest.fixture(autouse=True)
def _ltrsched_peer_watch() -> Any:
    _current["built"], _current["fallbacks"] = 0, []
    yield
    if _current["fallbacks"]:
        pytest.fail("ltrsched plug-in fell back to arrival order: " + _current["fallbacks"][0])


def _first_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr or "")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[0][:300] if lines else ""


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    rec = _records.setdefault(report.nodeid, {"outcome": "passed", "error": ""})
    if report.when == "call":
        rec["built"] = _current["built"]
    if report.failed and rec["outcome"] != "failed":
        rec["outcome"] = "failed"
        rec["error"] = f"{report.when}: {_first_line(report)}"
    elif report.skipped and rec["outcome"] == "passed":
        rec["outcome"] = "skipped"


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:  # a file that cannot be imported: its tests never run
        _records[report.nodeid] = {"outcome": "failed", "error": f"collect: {_first_line(report)}"}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get(ENV_RECORD)
    if path:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(
                {"policy": os.environ.get(ENV_POLICY) or None, "tests": _records},
                f,
                indent=1,
                sort_keys=True,
            )
        os.replace(tmp, path)
