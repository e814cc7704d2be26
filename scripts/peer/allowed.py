"""The peer suite's allowed differences: vLLM scheduler tests whose premise a policy
changes on purpose, per policy spec, each with its reason. A test listed here may fail
under the plug-in with that policy without failing the suite; any other test that passes
under vLLM's own scheduler must pass under the plug-in. CI checks `fcfs`, which must
be vLLM's own order: it has no entry. The others are checked by hand
(`peer_tests.py --policy ltr`), as of vLLM 0.32.0."""

from __future__ import annotations

DEFERRED = "tests/v1/core/test_deferred_block_free.py::"
SCHED = "tests/v1/core/test_scheduler.py::"

ALLOWED: dict[str, dict[str, str]] = {
    "fcfs": {},
    "ltr": {
        # The test sets the running requests' priorities to 9, 0, 1 in vLLM's fcfs mode
        # and expects fcfs's victim, the last admitted. ltr reads a request's priority as
        # its score when it brings no other (score_priority = -priority), so its
        # lowest-ranked request, the victim, is the one of priority 9.
        DEFERRED + "test_allocation_retry_waits_for_fence_then_succeeds[fcfs-1]": (
            "ltr ranks by the priorities the test sets; vLLM's fcfs mode ignores them"
        ),
    },
    "prompt-length": {
        # Each of these adds a long prompt before a short one and asserts the arrival
        # order: shortest prompt first serves the short one first, on purpose.
        SCHED + "test_schedule_order[False]": "expects the 800-token prompts first",
        SCHED + "test_schedule_order[True]": "expects the 800-token prompts first",
        SCHED + "test_async_load_reservation_prevents_wedge_e2e": (
            "expects the 8-block request's KV load admitted before the 5-block one's"
        ),
        SCHED + "test_fcfs_mixed_blocked_types_remote_load_drains_first": (
            "expects the 20-token request admitted before the 1-token one behind it"
        ),
    },
}
