"""Stand-ins for vLLM objects and small traces, shared by the live tests; and a way to
run vLLM in a child process that never outlives its test."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class FakeSamplingParams:
    extra_args: dict | None = None
    max_tokens: int = 16
    ignore_eos: bool = True


@dataclass(eq=False)
class FakeRequest:
    """The attributes of vllm.v1.request.Request the plug-in reads."""

    request_id: str
    num_prompt_tokens: int = 10
    num_output_tokens: int = 0
    priority: int = 0
    arrival_time: float = 0.0
    finished: bool = False
    sampling_params: FakeSamplingParams = field(default_factory=FakeSamplingParams)

    def is_finished(self) -> bool:
        return self.finished


def make_trace(n: int = 40, rate: float = 50.0, seed: int = 0, burst: int = 0) -> pd.DataFrame:
    """Short prompts and outputs, a score column that ranks short outputs first."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1 / rate, n - burst)
    out = rng.integers(4, 48, n)
    return pd.DataFrame(
        {
            "request_id": np.arange(n),
            "arrival_s": np.concatenate([np.zeros(burst), np.cumsum(gaps)]),
            "prompt_tokens": rng.integers(8, 96, n),
            "output_tokens": out,
            "score_len": -out + rng.normal(0, 4, n),
        }
    )


# vLLM starts in about 20 s on an idle 2-core machine and took 6 minutes beside other
# jobs (load 10): these are guards against a hang, not measurements.
START_TIMEOUT_S = 900
REPLAY_TIMEOUT_S = 1800


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is left (a zombie leader counts until reaped)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_group(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """Stop a child started with start_new_session=True and everything it started
    (vLLM's engine core outlives a killed parent otherwise): SIGTERM to the group, then
    SIGKILL to whatever is left after grace_s. A no-op when the group is gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader, so that it does not keep the group alive
            if not group_alive(proc.pid):
                break
            time.sleep(0.05)
        if not group_alive(proc.pid):
            break
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        pass


def run_group(cmd: list[str], timeout_s: float, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run(capture_output=True, text=True) in a process group of its own,
    stopped whole however it ends: on timeout (TimeoutExpired is raised), on any other
    error or interrupt in the caller, and when the leader exits leaving children."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,
    )
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                out, err = proc.communicate(
                    timeout=min(1.0, max(deadline - time.monotonic(), 0.01))
                )
                break
            except subprocess.TimeoutExpired:
                if proc.poll() is not None:  # the leader is done; what it left holds the
                    stop_group(proc)  # pipes open: stop it, then read to the end
                    out, err = proc.communicate()
                    break
                if time.monotonic() >= deadline:
                    raise subprocess.TimeoutExpired(cmd, timeout_s) from None
    finally:
        stop_group(proc)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


# ------------------------------------------------ a prefix cache that evicts
EVICT_BLOCK = 32  # tokens per KV block (vLLM on CPU takes multiples of 32)
EVICT_BLOCKS = 9  # vLLM's count, block 0 (its null block) included: 8 to use
EVICT_MAX_LEN = 224  # 7 blocks: a request fits the pool
EVICT_HASH_BLOCK = 16  # tokens per hash id in the trace


def evict_trace() -> tuple[pd.DataFrame, dict[int, int]]:
    """Request 0 (96-token prompt, 8 out: 3 full blocks and a partial one) is a session's
    first turn; its next turn (3) is sent 2 s after it ends, the conversation so far in
    front. vLLM 0.32 frees a request's blocks tail first, full (hashed) ones to the back
    of the free queue and the partial one to its front (block_pool.free_blocks: "LIFO
    reuse of non-cached blocks"). So 1 (96 tokens) takes 0's partial block and 3 never
    used; 2 (64 tokens, 3 blocks) takes 1's partial block, the last unused one, and then
    the oldest cached block: 0's third. Turn 1 finds 2 blocks (64 tokens), not the 3 it
    would find in a pool that did not evict. Returns the trace and each request's hit."""
    from traces.prefix import hash_ids_from_token_ids

    turn0 = list(range(7000, 7096))
    answer, more = list(range(7100, 7108)), list(range(7200, 7240))
    content = [turn0, list(range(8000, 8096)), list(range(9000, 9064)), turn0 + answer + more]
    return pd.DataFrame(
        {
            "request_id": [0, 1, 2, 3],
            "arrival_s": [0.0, 0.6, 1.2, 2.0],  # 3's: when it is sent (think_s after 0 ends)
            "prompt_tokens": [len(c) for c in content],
            "output_tokens": [8, 8, 8, 8],
            "hash_ids": [hash_ids_from_token_ids(c, EVICT_HASH_BLOCK) for c in content],
            "session_id": [0, 1, 2, 0],
            "turn": [0, 0, 0, 1],
            "think_s": [0.0, 0.0, 0.0, 2.0],
        }
    ), {0: 0, 1: 0, 2: 0, 3: 2 * EVICT_BLOCK}
