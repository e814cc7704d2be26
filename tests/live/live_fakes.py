"""Stand-ins for vLLM objects and small traces, shared by the live tests; and a way to
run vLLM in a child process that never outlives its test."""

from __future__ import annotations

import os
import signal
import subprocess
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
    return pd.DataFrame({
        "request_id": np.arange(n),
        "arrival_s": np.concatenate([np.zeros(burst), np.cumsum(gaps)]),
        "prompt_tokens": rng.integers(8, 96, n),
        "output_tokens": out,
        "score_len": -out + rng.normal(0, 4, n),
    })


# vLLM starts in about 20 s on an idle 2-core machine and took 6 minutes beside other
# jobs (load 10): these are guards against a hang, not measurements.
START_TIMEOUT_S = 900
REPLAY_TIMEOUT_S = 1800


def stop_group(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """Stop a child started with start_new_session=True and everything it started
    (vLLM's engine core outlives a killed parent otherwise)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:  # the leader is gone: what it left behind goes too
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return


def run_group(cmd: list[str], timeout_s: float, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run(capture_output=True, text=True) in a process group of its own,
    stopped whole on timeout."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
