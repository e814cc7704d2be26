"""A user's own server: `vllm serve`'s OpenAI API with the plug-in scoring requests itself.

On the CPU build of vLLM: a tiny Llama with random weights that shares the tokenizer of
a tiny predictor trained here; requests go over plain HTTP (urllib) with no ltrsched
fields. One slot (max_num_seqs=1) makes the service order one prefill per step, which the
tests read from the server's own step log (a loaded client reads responses out of
order). The requests are queued while vLLM is paused (its `/pause?mode=keep&clear_cache=
false`, served with VLLM_SERVER_DEV_MODE=1: no step runs, new requests wait in the
scheduler's queue; with the cache cleared, vLLM would preempt the running request),
so however slowly the client sends them, no engine step passes meanwhile. Skipped where
vLLM is not installed."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from live_fakes import START_TIMEOUT_S, run_group, stop_group

pytest.importorskip("vllm")
pytest.importorskip("torch")

from transformers import AutoTokenizer  # noqa: E402

from live.models import copy_tokenizer, write_tiny_llama  # noqa: E402
from ltrsched.cli import main as ltrsched_main  # noqa: E402
from predictor.checkpoint import load_predictor  # noqa: E402
from predictor.config import TrainConfig  # noqa: E402
from predictor.scoring import score_prompts  # noqa: E402
from predictor.train import train  # noqa: E402
from traces.io import write_trace  # noqa: E402

# Steps waited before promotion (the paper's is 200). The queued requests reach the
# engine while it is paused, so their client's pace costs no steps.
STARVATION = 2000
# Output tokens of each queued request in the starvation test (steps it holds the slot).
QUEUED_TOKENS = 128
# Steps the low request waits alone before the engine is paused and the others are sent:
# more than a queued request holds the slot, so the low one is promoted alone and takes
# the next free slot before any other reaches STARVATION.
HEAD_START = 200
# The blocker holds the one slot while requests queue (the engine paused meanwhile); it
# is long enough never to end by itself before its client hangs up (vLLM aborts it).
BLOCKER_TOKENS = 32000
# The KV pool (blocks of 128 tokens on CPU): one request of MAX_MODEL_LEN and a margin.
# Left to vLLM, the CPU engine takes 0.3 of the host's RAM for KV and fills it.
NUM_GPU_BLOCKS = 300
# Seconds the engine stays paused after the last request went out, for the server to
# pass them to the engine (costs no steps; the tests check they all waited together).
QUEUE_GRACE_S = 3.0
MAX_MODEL_LEN = 32768
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
    model = write_tiny_llama(d / "tiny", max_position_embeddings=MAX_MODEL_LEN)
    copy_tokenizer(d / "predictor", model)
    return d, model


def start_server(setup, policy: str):
    """`ltrsched serve` on the tiny model with the predictor, under policy; yields
    (url, model id, folder, this server's step log)."""
    d, model = setup
    port = free_port()
    log_path = d / f"server-{port}.log"
    step_log = d / f"steps-{port}.jsonl"
    log = open(log_path, "w")  # noqa: SIM115
    # sync scoring: each request is scored before the step that first orders it, so the
    # order served is the policy's whatever the load. In overlap mode (the default) a
    # request not yet scored goes after the scored ones, and on a loaded machine scoring
    # lagged the queue: the low-scored request was served second, not promoted.
    cmd = [sys.executable, "-m", "ltrsched.cli", "serve", str(model), "--predictor",
           str(d / "predictor"), "--predictor-device", "cpu", "--predictor-mode", "sync",
           "--dummy-weights",
           "--port", str(port), "--policy", policy,
           "--step-log", str(step_log), "--",
           "--max-num-seqs", "1", "--enforce-eager", "--max-model-len", str(MAX_MODEL_LEN),
           "--no-enable-prefix-caching", "--num-gpu-blocks-override", str(NUM_GPU_BLOCKS)]
    # VLLM_SERVER_DEV_MODE: vLLM serves /pause and /resume
    env = {**os.environ, "VLLM_LOGGING_STREAM": "ext://sys.stderr",
           "VLLM_SERVER_DEV_MODE": "1"}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stop_group(proc)  # the leader is gone; the engine core may not be
            pytest.fail(f"server exited {proc.returncode}: {log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as r:
                model_id = json.load(r)["data"][0]["id"]
                break
        except OSError:
            time.sleep(1)
    else:
        stop_group(proc)
        pytest.fail(f"server did not start in {START_TIMEOUT_S} s")
    try:
        yield url, model_id, d, step_log
    finally:
        stop_group(proc)
        log.close()


@pytest.fixture(scope="module")
def server(setup):
    """The paper's rule: promoted after STARVATION steps waited."""
    yield from start_server(setup, f"ltr:starvation={STARVATION},quantum=10")


@pytest.fixture()
def plain_server(setup):
    """No starvation prevention: on a loaded machine the blocker ran past the starvation
    threshold while the requests trickled in, and promotions reordered them."""
    yield from start_server(setup, "ltr")


class Sender:
    """One completion request in a thread of its own; `sent` is set once its body has
    gone out on the wire (the response is read after that)."""

    def __init__(self, url: str, model: str, prompt: str, max_tokens: int) -> None:
        self.body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens,
                                "ignore_eos": True, "temperature": 0})
        self.url = urllib.parse.urlsplit(url)
        self.sent = threading.Event()
        self.status: int | None = None
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=600)
        try:
            conn.request("POST", "/v1/completions", self.body,
                         {"Content-Type": "application/json"})
            self.sent.set()
            resp = conn.getresponse()
            resp.read()
            self.status = resp.status
        finally:
            conn.close()


def send_while_paused(url: str, model: str, jobs: list[tuple[str, int]]) -> list[Sender]:
    """With the engine paused, send every (prompt, max_tokens) and give the server time
    to queue them; no engine step runs meanwhile, whatever the client's pace."""
    senders = [Sender(url, model, p, n) for p, n in jobs]
    for s in senders:
        assert s.sent.wait(120), "a request was never sent"
    time.sleep(QUEUE_GRACE_S)  # the server's own pace: no step passes while paused
    return senders


def control(url: str, path: str) -> None:
    """POST to one of vLLM's dev endpoints (/pause, /resume)."""
    req = urllib.request.Request(f"{url}{path}", b"", method="POST")
    with urllib.request.urlopen(req, timeout=120) as r:
        assert r.status == 200, (path, r.status)


def finish(senders: list[Sender], blocker: Blocker) -> None:
    for s in senders:
        s.thread.join(600)
    blocker.thread.join(60)
    assert not any(s.thread.is_alive() for s in senders), "some requests did not complete"
    assert all(s.status == 200 for s in senders), [s.status for s in senders]


class Blocker:
    """A streamed completion that holds the one slot. `tokens` counts the chunks it has
    read (each a token the engine made in a step of its own, so at least that many steps
    have run); once `stop` is set the client hangs up (vLLM aborts the request)."""

    def __init__(self, url: str, model: str) -> None:
        self.tokens = 0
        self.stop = threading.Event()
        body = json.dumps({"model": model, "prompt": "block", "max_tokens": BLOCKER_TOKENS,
                           "ignore_eos": True, "temperature": 0, "stream": True}).encode()
        self._req = urllib.request.Request(f"{url}/v1/completions", body,
                                           {"Content-Type": "application/json"})
        self.thread = threading.Thread(target=self._read)
        self.thread.start()

    def _read(self) -> None:
        with urllib.request.urlopen(self._req, timeout=120) as r:
            for line in r:
                if line.startswith(b"data:"):
                    self.tokens += 1
                if self.stop.is_set():
                    return

    def wait_tokens(self, n: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while self.tokens < n:
            assert self.thread.is_alive(), "the blocker ended early"
            assert time.monotonic() < deadline, f"the blocker got {self.tokens} of {n} tokens"
            time.sleep(0.01)

    def release(self, url: str) -> None:
        """Resume the paused engine and hang up: vLLM aborts the blocker within a few
        steps, and the slot goes to the queue in the scheduler's order."""
        assert self.thread.is_alive(), "the blocker ended before the requests were queued"
        self.stop.set()
        control(url, "/resume")


def served_order(url: str, model: str, prompts: list[str]) -> None:
    """Hold the one slot with a long request; pause the engine, send the prompts (in
    list order), resume and let go of the slot; wait for every response."""
    blocker = Blocker(url, model)
    blocker.wait_tokens(1)  # it runs, alone, from here
    control(url, "/pause?mode=keep&clear_cache=false")
    senders = send_while_paused(url, model, [(p, SHORT_TOKENS) for p in prompts])
    blocker.release(url)
    finish(senders, blocker)


def logged_steps(step_log: Path, prefills: int, timeout_s: float = 60) -> list[dict]:
    """The engine steps in the server's log, once it shows `prefills` steps that prefill
    (the log is flushed at every step that finishes a request and when the engine goes
    idle)."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = step_log.read_text() if step_log.exists() else ""
        steps = [json.loads(x) for x in text.splitlines() if '"kind": "step"' in x]
        if sum(s["prefill_tokens"] > 0 for s in steps) >= prefills:
            return steps
        assert time.monotonic() < deadline, (
            f"{step_log.name}: {sum(s['prefill_tokens'] > 0 for s in steps)} of "
            f"{prefills} prefill steps logged")
        time.sleep(0.1)


def prefill_order(steps: list[dict]) -> list[int]:
    """The prompt lengths (tokens prefilled) of the requests in the order the engine
    first scheduled them, the blocker's left out: what the engine did, whatever order a
    loaded client read the responses in. Each prompt here is prefilled in one step."""
    return [s["prefill_tokens"] for s in steps if s["prefill_tokens"] > 0][1:]


def test_a_bad_predictor_directory_stops_the_server_at_start(setup, tmp_path, capsys):
    """First in the file: no server of this module is up yet (beside two live servers this
    third engine once failed to start on the 2-core machine, hiding the plug-in's
    message)."""
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
         "--max-model-len", "512", "--num-gpu-blocks-override", "8",
         "--port", str(free_port())],
        START_TIMEOUT_S)
    assert proc.returncode != 0
    assert "ltrsched plug-in: predictor" in proc.stderr + proc.stdout
    assert "not a predictor model directory" in proc.stderr + proc.stdout


def test_requests_without_scores_are_served_in_predicted_order(plain_server, setup):
    url, model, d, step_log = plain_server
    predictor = load_predictor(d / "predictor")
    ks = (7, 2, 11, 4, 9, 1)
    prompts = ["go " * k + "now" for k in ks]
    scores = score_prompts(predictor, prompts)
    assert len(set(scores.round(6))) == len(prompts)
    served_order(url, model, prompts)
    # A prompt's token count grows with k, so the engine's prefill lengths name the
    # requests: they must come in the order of k over the prompts ranked by score.
    expected = [ks[i] for i in sorted(range(len(prompts)), key=lambda i: -scores[i])]
    steps = logged_steps(step_log, 1 + len(prompts))
    assert max(s["waiting_requests"] for s in steps) == len(prompts)  # all queued together
    lengths = prefill_order(steps)
    assert len(lengths) == len(prompts)
    assert list(np.argsort(lengths)) == list(np.argsort(expected)), (lengths, expected)


def test_starvation_prevention_promotes_a_request_that_waited_too_long(server, setup):
    """A known answer in engine steps, whatever the client's pace: the lowest-scored
    request, alone in the queue behind the blocker, is scheduled between STARVATION and
    STARVATION + QUEUED_TOKENS - 1 steps after it began to wait (promoted at STARVATION,
    it takes the slot when the request holding it ends), while higher-scored
    requests still wait. The others reach the queue while the engine is paused, after
    it waited HEAD_START steps, so it is the only one promoted by then; unpromoted it
    would be served last."""
    url, model_id, d, step_log = server
    predictor = load_predictor(d / "predictor")
    tokenizer = AutoTokenizer.from_pretrained(setup[1])
    pool = ["go " * k + "now" + " ." * (k % 3) for k in range(1, 71)]
    scores = score_prompts(predictor, pool)
    low = int(np.argmin(scores))
    length = [len(tokenizer(p)["input_ids"]) for p in pool]
    # 35 higher-scored prompts, none as long as the low one (its prefill names it): they
    # hold the slot 35 x QUEUED_TOKENS steps, far past the promotion at STARVATION.
    higher = [i for i in np.argsort(-scores) if length[i] != length[low]][:35]
    assert len(higher) * QUEUED_TOKENS > STARVATION + 5 * QUEUED_TOKENS
    blocker = Blocker(url, model_id)
    blocker.wait_tokens(1)
    first = Sender(url, model_id, pool[low], SHORT_TOKENS)
    # It waits alone for HEAD_START steps or more before the others are sent, so they
    # reach STARVATION steps waited that much later than it.
    deadline = time.monotonic() + 120
    while not low_request_waiting(step_log):
        assert time.monotonic() < deadline, "the low request never reached the queue"
        time.sleep(0.01)
    blocker.wait_tokens(blocker.tokens + HEAD_START)
    control(url, "/pause?mode=keep&clear_cache=false")
    senders = [first, *send_while_paused(url, model_id,
                                         [(pool[i], QUEUED_TOKENS) for i in higher])]
    blocker.release(url)
    finish(senders, blocker)
    # The policy counts steps that schedule something (an idle step waits for no one).
    steps = [s for s in logged_steps(step_log, 1 + len(senders)) if s["scheduled_requests"]]
    assert max(s["waiting_requests"] for s in steps) == len(senders)  # all queued together
    arrived = next(i for i, s in enumerate(steps) if s["waiting_requests"] >= 1)
    assert steps[arrived]["waiting_requests"] == 1  # the low request, alone
    others = next(i for i, s in enumerate(steps) if s["waiting_requests"] > 1)
    assert others - arrived >= HEAD_START  # its head start, in steps
    served = [i for i, s in enumerate(steps) if s["prefill_tokens"] == length[low]]
    assert len(served) == 1, served
    waited = served[0] - arrived
    assert STARVATION <= waited < STARVATION + QUEUED_TOKENS, waited
    assert steps[served[0]]["waiting_requests"] >= 5  # higher-scored ones still queued
    log = step_log.read_text().splitlines()
    assert sum(s["scored_requests"] for s in steps) >= len(senders)
    assert not [x for x in log if '"kind": "error"' in x]


def low_request_waiting(step_log: Path) -> bool:
    """Whether the server's step log shows a request waiting (the log is flushed every
    few steps)."""
    text = step_log.read_text() if step_log.exists() else ""
    return any(json.loads(x)["waiting_requests"] >= 1
               for x in text.splitlines() if '"kind": "step"' in x)
