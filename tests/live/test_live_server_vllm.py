"""`ltrsched live replay --server` against a real vLLM server (the CPU build's OpenAI API
server with the plug-in, a tiny Llama with random weights and no tokenizer), so that the
API contract the driver relies on is checked for real, not only against a fake server:
token ids in the stream (`return_token_ids`; with no tokenizer there is no text), the
usage chunk with the prompt's cached tokens (`stream_options.include_usage` and the
server's --enable-prompt-tokens-details), and `vllm_xargs` reaching the plug-in (the
policy the engine ran is the one the driver sent, not the server's own). The trace is
live_fakes.evict_trace, whose hits have a known answer. Skipped where vLLM is not
installed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pytest
from live_fakes import (
    EVICT_BLOCK,
    EVICT_BLOCKS,
    EVICT_HASH_BLOCK,
    EVICT_MAX_LEN,
    REPLAY_TIMEOUT_S,
    START_TIMEOUT_S,
    evict_trace,
    run_group,
    stop_group,
)

from traces.io import write_trace
from traces.schema import HASH_BLOCK_TOKENS_KEY

pytest.importorskip("vllm")
pytest.importorskip("aiohttp")

SERVER_POLICY = "fcfs"  # the server's own; the driver sends RUN_POLICY with each request
RUN_POLICY = "sjf-oracle"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.load(r)


@pytest.fixture(scope="module")
def server_run(tmp_path_factory):
    """Start the server (prefix caching on, 8 KV blocks of 32 tokens), warm it up with
    one request, replay the trace through `live replay --server`, stop the server."""
    from live.models import write_tiny_llama

    d = tmp_path_factory.mktemp("server")
    model = write_tiny_llama(d / "tiny")
    df, expect = evict_trace()
    trace = d / "trace.parquet"
    write_trace(df, trace, {"source": "test", HASH_BLOCK_TOKENS_KEY: EVICT_HASH_BLOCK})
    port, step_log = free_port(), d / "steps.jsonl"
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--load-format",
        "dummy",
        "--skip-tokenizer-init",
        "--scheduler-cls",
        "live.scheduler.PolicyScheduler",
        "--enforce-eager",
        "--max-num-seqs",
        "4",
        "--max-num-batched-tokens",
        "256",
        "--max-model-len",
        str(EVICT_MAX_LEN),
        "--block-size",
        str(EVICT_BLOCK),
        "--num-gpu-blocks-override",
        str(EVICT_BLOCKS),
        "--gpu-memory-utilization",
        "0.3",
        "--enable-prefix-caching",
        "--enable-prompt-tokens-details",
        "--port",
        str(port),
    ]
    env = {
        **os.environ,
        "VLLM_LOGGING_STREAM": "ext://sys.stderr",
        "VLLM_SERVER_DEV_MODE": "1",  # /reset_prefix_cache: the run starts cold
        "LTRSCHED_POLICY": SERVER_POLICY,
        "LTRSCHED_STEP_LOG": str(step_log),
    }
    log_path = d / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                assert proc.poll() is None, (
                    f"server exited {proc.returncode}: {log_path.read_text()[-3000:]}"
                )
                assert time.monotonic() < deadline, f"server did not start in {START_TIMEOUT_S} s"
                try:
                    with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as r:
                        model_id = json.load(r)["data"][0]["id"]
                    break
                except OSError:
                    time.sleep(1)
            # The first request of a fresh engine is slow: not in the measured run.
            post(
                f"{url}/v1/completions",
                {
                    "model": model_id,
                    "prompt": list(range(500, 548)),
                    "max_tokens": 8,
                    "ignore_eos": True,
                },
            )
            proc_replay = run_group(
                [
                    sys.executable,
                    "-m",
                    "live.cli",
                    "replay",
                    "--server",
                    url,
                    "--trace",
                    str(trace),
                    "--step-log",
                    str(step_log),
                    "--policy",
                    RUN_POLICY,
                    "--stall-timeout",
                    "60",
                    "--out",
                    str(d / "run"),
                    "--json",
                ],
                REPLAY_TIMEOUT_S,
            )
        finally:
            stop_group(proc)
    assert proc_replay.returncode == 0, proc_replay.stderr[-4000:]
    return {
        "summary": json.loads(proc_replay.stdout),
        "expect": expect,
        "req": pd.read_parquet(d / "run" / "requests.parquet").set_index("request_id"),
        "steps": pd.read_parquet(d / "run" / "steps.parquet"),
    }


def test_token_ids_come_back_in_the_stream(server_run):
    """With no tokenizer the stream has no text: a request is complete, at its exact
    length, only if the driver read its token ids."""
    s, req = server_run["summary"], server_run["req"]
    assert (s["completed"], s["failed"], s["rejected"]) == (4, 0, 0)
    assert (req["tokens_generated"] == req["output_tokens"]).all()
    assert req.loc[3, "arrival_s"] >= req.loc[0, "finish_s"] + 2.0  # the later turn waited


def test_usage_reports_vllms_hits_per_request(server_run):
    """The usage chunk carries vLLM's cached tokens; here the known answer of a pool that
    evicts (live_fakes.evict_trace), every request alone in the engine."""
    s, req = server_run["summary"], server_run["req"]
    ordered = req.sort_values("first_token_s")
    assert (ordered["finish_s"].to_numpy()[:-1] < ordered["submit_s"].to_numpy()[1:]).all()
    assert s["prefix_cache_reset"] is True
    assert req["cached_tokens"].to_dict() == server_run["expect"]
    assert s["prefix_cached_tokens"] == sum(server_run["expect"].values())


def test_vllm_xargs_reach_the_plugin(server_run):
    """The engine ran the policy the driver sent with each request, logged this run's
    steps under the run id it sent, and read the server's engine limits."""
    s, steps = server_run["summary"], server_run["steps"]
    assert s["policy_spec"] == RUN_POLICY and s["plugin_policy"] == s["policy"]
    assert s["plugin_policy"] != SERVER_POLICY
    assert len(steps) >= 4 * 8  # a prefill and decodes per request, this run's only
    assert steps["prefill_tokens"].sum() == sum(
        p - c
        for p, c in zip(
            server_run["req"]["prompt_tokens"], server_run["req"]["cached_tokens"], strict=True
        )
    )
    assert (s["num_gpu_blocks"], s["block_size"], s["max_model_len"]) == (
        EVICT_BLOCKS,
        EVICT_BLOCK,
        EVICT_MAX_LEN,
    )
