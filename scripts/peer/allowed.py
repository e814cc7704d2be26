"""The peer suite's allowed differences: vLLM scheduler tests whose premise a policy
changes on purpose, per policy spec, each with its reason. A test listed here may fail
under the plug-in with that policy without failing the suite; any other test that passes
under vLLM's own scheduler must pass under the plug-in."""

from __future__ import annotations

ALLOWED: dict[str, dict[str, str]] = {
    "fcfs": {},
}
