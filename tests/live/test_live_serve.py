"""A user's own server: `vllm serve`'s OpenAI API with the plug-in scoring requests itself.

On the CPU build of vLLM: a tiny Llama with random weights that shares the tokenizer of
a tiny predictor trained here; requests go over plain HTTP (urllib) with no ltrsched
fields. One slot (max_num_seqs=1) makes the service order visible as the order in which
responses come back. Skipped where vLLM is not installed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from live_fakes import START_TIMEOUT_S, run_group, stop_group

pytest.importorskip("vllm")
pytest.importorskip("torch")

from live.models import copy_tokenizer, write_tiny_llama  # noqa: E402
from ltrsched.cli import main as ltrsched_main  # noqa: E402
from predictor.checkpoint import load_predictor  # noqa: E402
from predictor.config import TrainConfig  # noqa: E402
from predictor.scoring import score_prompts  # noqa: E402
from predictor.train import train  # noqa: E402
from traces.io import write_trace  # noqa: E402

STARVATION = 200  # steps waited before promotion
# The blocker holds the one slot until every request sent is in the engine's waiting
# queue (read from the server's metrics), then its client hangs up and vLLM aborts it;
# its length only bounds how long a loaded machine may take to queue them.
BLOCKER_TOKENS = 3000
MAX_MODEL_LEN = 4096
SHORT_TOKENS = 8
TINY = dict(backbone="opt-tiny", max_prompt_tokens=32, vocab_size=300, list_size=16,
            batch_size=16, lr=3e-3, device="cpu", threads=1, seed=0, epochs=2)


def synthetic_trace(path: Path, n: int, seed: int) -> Path:
    """Prompt "go" k times asks for about 20*k output tokens: a learnable task."""
    rng = np.random.default_rng(seed)
    k = rng.integers(1, 13, size=n)
    write_trace(pd.DataFrame({
        "request_id": np.arange(n), "arrival_s": np.zeros(n),
        "prompt_tokens": k + 1, "output_tokens": 20 * k + rng.integers(0, 10, size=n),
        "prompt": ["go " * int(i) + "now" for i in k],
    }), path, {"source": "synthetic"})
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve")
    train(TrainConfig(**TINY), synthetic_trace(d / "train.parquet", n=160, seed=1),
          d / "predictor")
    model = write_tiny_llama(d / "tiny")
    copy_tokenizer(d / "predictor", model)
    return d, model


@pytest.fixture(scope="module")
def server(setup):
    d, model = setup
    port = free_port()
    log = open(d / "server.log", "w")  # noqa: SIM115
    # sync scoring: each request is scored before the step that first orders it, so the
    # order served is the policy's whatever the load. In overlap mode (the default) a
    # request not yet scored goes after the scored ones, and on a loaded machine scoring
    # lagged the queue: the low-scored request was served second, not promoted.
    cmd = [sys.executable, "-m", "ltrsched.cli", "serve", str(model), "--predictor",
           str(d / "predictor"), "--predictor-device", "cpu", "--predictor-mode", "sync",
           "--dummy-weights",
           "--port", str(port), "--policy", f"ltr:starvation={STARVATION},quantum=10",
           "--step-log", str(d / "steps.jsonl"), "--",
           "--max-num-seqs", "1", "--enforce-eager", "--max-model-len", str(MAX_MODEL_LEN),
           "--no-enable-prefix-caching"]
    env = {**os.environ, "VLLM_LOGGING_STREAM": "ext://sys.stderr"}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited {proc.returncode}: "
                        f"{(d / 'server.log').read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as r:
                model_id = json.load(r)["data"][0]["id"]
                break
        except OSError:
            time.sleep(1)
    else:
        stop_group(proc)
        pytest.fail(f"server did not start in {START_TIMEOUT_S} s")
    yield url, model_id, d
    stop_group(proc)
    log.close()


def complete(url: str, model: str, prompt: str, max_tokens: int) -> dict:
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens,
                       "ignore_eos": True, "temperature": 0}).encode()
    req = urllib.request.Request(f"{url}/v1/completions", body,
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)


def stream(url: str, model: str, prompt: str, max_tokens: int,
           started: threading.Event, stop: threading.Event) -> None:
    """A streamed completion; `started` is set at its first token; once `stop` is set
    the client hangs up (vLLM aborts the request)."""
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens,
                       "ignore_eos": True, "temperature": 0, "stream": True}).encode()
    req = urllib.request.Request(f"{url}/v1/completions", body,
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        for line in r:
            if line.startswith(b"data:"):
                started.set()
            if stop.is_set():
                return


def requests_waiting(url: str) -> float:
    """vLLM's gauge of requests in the engine's waiting queue."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("vllm:num_requests_waiting"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError("the server's metrics have no vllm:num_requests_waiting")


def served_order(url: str, model: str, first: list[str], then: list[str] = (),
                 queued: int = 5, first_after: int = 0) -> list[int]:
    """Hold the one slot with a long request; meanwhile send the `first` prompts (in list
    order), then keep `queued` of the `then` prompts waiting: each response back lets the
    next one go. The blocker stops once all those sent wait in the engine, so the order
    they are served in is the scheduler's, however slowly the machine took them in.
    With first_after > 0 the `first` prompts go only once that many responses are back
    (the blocker long gone). Returns prompt indices (first, then then) in the order they
    came back."""
    prompts = list(first) + list(then)
    done: list[int] = []
    lock = threading.Lock()
    feed = iter(range(len(first), len(prompts)))
    threads: list[threading.Thread] = []

    def one(i: int) -> None:
        complete(url, model, prompts[i], SHORT_TOKENS)
        with lock:
            done.append(i)
            nxt = next(feed, None)
            if nxt is not None:
                start(nxt)
            if first_after and len(done) == first_after:
                for j in range(len(first)):
                    start(j)

    def start(i: int) -> None:
        t = threading.Thread(target=one, args=(i,))
        threads.append(t)
        t.start()

    started, stop = threading.Event(), threading.Event()
    blocker = threading.Thread(target=stream, args=(url, model, "block", BLOCKER_TOKENS,
                                                    started, stop))
    blocker.start()
    assert started.wait(120), "the blocker got no token"  # it runs, alone, from here
    with lock:
        sent = 0
        for i in range(0 if first_after else len(first)):
            start(i)
            sent += 1
            time.sleep(0.002)
        for _ in range(queued):
            nxt = next(feed, None)
            if nxt is not None:
                start(nxt)
                sent += 1
    deadline = time.monotonic() + 120
    while requests_waiting(url) < sent and time.monotonic() < deadline:
        assert blocker.is_alive(), "the blocker ended before the requests were queued"
        time.sleep(0.05)
    assert blocker.is_alive() and not done, "the blocker ended before the requests queued"
    stop.set()
    deadline = time.monotonic() + 300
    while len(done) < len(prompts) and time.monotonic() < deadline:
        time.sleep(0.05)
    blocker.join(60)
    assert len(done) == len(prompts), "some requests did not complete"
    return done


def test_requests_without_scores_are_served_in_predicted_order(server, setup):
    url, model, d = server
    predictor = load_predictor(d / "predictor")
    prompts = ["go " * k + "now" for k in (7, 2, 11, 4, 9, 1)]
    scores = score_prompts(predictor, prompts)
    assert len(set(scores.round(6))) == len(prompts)
    order = served_order(url, model, prompts)
    assert order == sorted(range(len(prompts)), key=lambda i: -scores[i])


def test_starvation_prevention_promotes_a_request_that_waited_too_long(server, setup):
    url, model, d = server
    predictor = load_predictor(d / "predictor")
    pool = ["go " * k + "now" + " ." * (k % 3) for k in range(1, 71)]
    scores = score_prompts(predictor, pool)
    by_score = sorted(range(len(pool)), key=lambda i: scores[i])
    low, high = by_score[0], by_score[-50:]  # the lowest score, and 50 higher ones
    # The low one arrives with 5 others, and 5 more keep waiting as each leaves: the queue
    # always holds higher-scored requests, none waiting long, so only promotion lets it in.
    order = served_order(url, model, [pool[low]], [pool[i] for i in high])
    # Unpromoted it would come back last (51st). It waits the few steps the blocker runs
    # after the requests are queued, then about 25 short requests of 8 steps, is
    # promoted at 200 steps and goes next.
    position = order.index(0)
    assert 5 <= position <= 30, order
    log = (d / "steps.jsonl").read_text().splitlines()
    steps = [json.loads(x) for x in log if '"kind": "step"' in x]
    assert sum(s["scored_requests"] for s in steps) >= len(order)
    assert not [x for x in log if '"kind": "error"' in x]


def test_a_bad_predictor_directory_stops_the_server_at_start(setup, tmp_path, capsys):
    d, model = setup
    rc = ltrsched_main(["serve", str(model), "--predictor", str(tmp_path / "nope"),
                        "--dry-run"])
    assert rc == 2 and "no such model directory" in capsys.readouterr().err
    # The plug-in itself refuses too, when vLLM is started without ltrsched's check.
    (tmp_path / "broken").mkdir()
    cfg = json.dumps({"ltrsched": {"predictor": str(tmp_path / "broken")}})
    proc = run_group(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
         "--load-format", "dummy", "--scheduler-cls", "live.scheduler.PolicyScheduler",
         "--additional-config", cfg, "--gpu-memory-utilization", "0.3", "--enforce-eager",
         "--max-model-len", "512", "--port", str(free_port())],
        START_TIMEOUT_S)
    assert proc.returncode != 0
    assert "ltrsched plug-in: predictor" in proc.stderr + proc.stdout
    assert "not a predictor model directory" in proc.stderr + proc.stdout
