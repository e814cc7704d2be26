"""Replays that go wrong end, never hang: a stalled engine, a server that is down or dies
mid-replay, a request too long for the model. What finished is kept and written."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pandas as pd
import pytest
import typer
from live_fakes import make_trace

from live.cli import app
from live.errors import LiveError
from live.records import FINISHED
from live.replay import Rejected
from live.run import RunSpec, run_trace
from traces.io import write_trace

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402


class FakeBackend:
    """Finishes requests after a few ms; hangs on the ids in `hang`; rejects long ones."""

    def __init__(self, hang=(), reject_over: int = 10_000) -> None:
        self.hang, self.reject_over = set(hang), reject_over
        self.xargs: list[dict] = []

    def begin(self, run_id, t0):
        self.run_id = run_id

    async def send(self, rec, prompt_ids, xargs, clock):
        self.xargs.append(xargs)
        assert len(prompt_ids) == rec.prompt_tokens
        if rec.prompt_tokens > self.reject_over:
            raise Rejected("prompt too long")
        if rec.request_id in self.hang:
            await asyncio.sleep(3600)
        for _ in range(rec.output_tokens):
            await asyncio.sleep(0.0005)
            rec.on_tokens(1, clock())
        rec.finish_s = rec.last_token_s
        rec.status = FINISHED


def run(backend, df, tmp_path, **kw):
    spec = RunSpec(policy="fcfs", out=tmp_path / "run", trace="t.parquet", **kw)
    return asyncio.run(run_trace(backend, df, spec, {"mode": "fake"}, vocab_size=1000))


def test_open_loop_replay_sends_at_arrival_and_writes_the_run(tmp_path):
    df = make_trace(30, rate=200.0)
    backend = FakeBackend()
    s = run(backend, df, tmp_path)
    req = pd.read_parquet(tmp_path / "run" / "requests.parquet")
    assert s["completed"] == 30 and s["failed"] == 0 and s["failure"] is None
    assert (req["tokens_generated"] == req["output_tokens"]).all()
    # Sent in arrival order and never early; how late is the machine's (summary's
    # submit_lag_s), not asserted: a loaded machine delays the driver's wake-ups.
    req = req.sort_values(["arrival_s", "request_id"])
    assert req["submit_s"].is_monotonic_increasing
    assert (req["submit_s"] >= req["arrival_s"] - 1e-3).all()
    assert s["submit_lag_s"]["max"] >= 0
    x = backend.xargs[0]
    assert x["ltrsched.policy"] == "fcfs" and x["ltrsched.run"] == backend.run_id
    assert "ltrsched.f.score_len" in x and x["ltrsched.request_id"] == 0


def test_stalled_requests_fail_after_the_stall_timeout(tmp_path):
    df = make_trace(20, rate=500.0)
    s = run(FakeBackend(hang={3, 7}), df, tmp_path, stall_timeout_s=1.0)
    req = pd.read_parquet(tmp_path / "run" / "requests.parquet")
    assert s["completed"] == 18 and s["failed"] == 2 and "no progress" in s["failure"]
    assert sorted(req.loc[req["status"] == "failed", "request_id"]) == [3, 7]


def test_too_long_requests_are_rejected_not_failed(tmp_path):
    df = make_trace(10)
    df.loc[4, "prompt_tokens"] = 5000
    s = run(FakeBackend(reject_over=1000), df, tmp_path)
    assert (s["completed"], s["rejected"], s["failed"]) == (9, 1, 0)


# ------------------------------------------------------------ a fake vLLM server
class FakeServer:
    """/v1/models, /version and streaming /v1/completions; `die_after` complete answers
    out, it stops listening and drops every open stream."""

    def __init__(self, die_after: int | None = None, max_len: int = 2000,
                 card_max_len: bool = True) -> None:
        self.die_after, self.max_len, self.card_max_len = die_after, max_len, card_max_len
        self.bodies: list[dict] = []
        self.answered = 0  # complete answers sent; the server stops after die_after of them
        self.port = free_port()

    async def models(self, request):
        card = {"id": "tiny", **({"max_model_len": self.max_len} if self.card_max_len else {})}
        return web.json_response({"data": [card]})

    async def version(self, request):
        return web.json_response({"version": "0.32.0"})

    async def completions(self, request):
        body = await request.json()
        self.bodies.append(body)
        if len(body["prompt"]) + body["max_tokens"] > self.max_len:
            return web.json_response({"error": {"message": "too long for max_model_len"}},
                                     status=400)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        n = body["max_tokens"] // 2 if body["max_tokens"] == 201 else body["max_tokens"]
        for i in range(n):  # 201: cut short, as a server clamping max_tokens would
            await asyncio.sleep(0.002)
            last = i == n - 1
            chunk = {"choices": [{"index": 0, "text": "", "token_ids": [7],
                                  "finish_reason": "length" if last else None}]}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        self.answered += 1
        if self.answered == self.die_after:  # counted in answers, not time: load-proof
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.stop()))
        return resp

    async def start(self):
        web_app = web.Application()
        web_app.add_routes([web.get("/v1/models", self.models), web.get("/version", self.version),
                            web.post("/v1/completions", self.completions)])
        self.runner = web.AppRunner(web_app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self):
        await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(args: list[str]) -> None:
    typer.main.get_command(app).main(args, standalone_mode=False)


def replay_against(server: FakeServer, trace: Path, out: Path, capsys,
                   extra: tuple[str, ...] = ()) -> dict:
    async def go():
        await server.start()
        try:
            await asyncio.to_thread(cli, ["replay", "--trace", str(trace), "--server",
                                          server.url, "--out", str(out), "--json",
                                          "--stall-timeout", "5", *extra])
        finally:
            if server.die_after is None:
                await server.stop()

    asyncio.run(go())
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def trace_file(tmp_path) -> Path:
    df = make_trace(30, rate=300.0)
    df.loc[5, "prompt_tokens"] = 3000  # too long for the fake server
    path = tmp_path / "t.parquet"
    write_trace(df, path, {"source": "test"})
    return path


@pytest.mark.parametrize("card_max_len", [True, False])
def test_server_mode_streams_and_counts_rejections(tmp_path, trace_file, capsys, card_max_len):
    server = FakeServer(card_max_len=card_max_len)
    s = replay_against(server, trace_file, tmp_path / "run", capsys)
    assert (s["completed"], s["rejected"], s["failed"]) == (29, 1, 0)
    assert s["mode"] == "server" and s["model"] == "tiny" and s["vllm_version"] == "0.32.0"
    body = server.bodies[0]
    assert body["ignore_eos"] and body["stream"] and isinstance(body["prompt"][0], int)
    assert body["vllm_xargs"]["ltrsched.policy"] == "fcfs"  # a local server gets the run
    req = pd.read_parquet(tmp_path / "run" / "requests.parquet")
    done = req[req["status"] == "finished"]
    assert (done["tokens_generated"] == done["output_tokens"]).all()
    assert pd.read_parquet(tmp_path / "run" / "steps.parquet").empty  # no step log given
    assert len(server.bodies) == (29 if card_max_len else 30)  # known limit: not even sent


def test_a_short_answer_is_a_failure_not_a_finish(tmp_path, capsys):
    df = make_trace(10, rate=300.0)
    df.loc[3, "output_tokens"] = 201  # the fake server answers 100 tokens
    path = tmp_path / "t.parquet"
    write_trace(df, path, {"source": "test"})
    s = replay_against(FakeServer(), path, tmp_path / "run", capsys)
    req = pd.read_parquet(tmp_path / "run" / "requests.parquet")
    assert (s["completed"], s["failed"]) == (9, 1)
    assert req.loc[3, "error"] == "RuntimeError: got 100 of 201 output tokens"


def test_server_dying_mid_replay_keeps_what_finished(tmp_path, trace_file, capsys):
    s = replay_against(FakeServer(die_after=3), trace_file, tmp_path / "run", capsys)
    assert s["completed"] >= 1 and s["failed"] >= 1
    assert s["completed"] + s["failed"] + s["rejected"] == 30
    assert "failed" in s["failure"]
    req = pd.read_parquet(tmp_path / "run" / "requests.parquet")
    assert set(req["status"]) <= {"finished", "failed", "rejected"}
    assert req.loc[req["status"] == "failed", "error"].str.len().gt(0).all()


def test_server_down_is_a_one_line_error(tmp_path, trace_file):
    with pytest.raises(LiveError, match="cannot reach it"):
        cli(["replay", "--trace", str(trace_file), "--server",
             f"http://127.0.0.1:{free_port()}", "--out", str(tmp_path / "run")])


def test_missing_model_dir_and_config(tmp_path, trace_file):
    with pytest.raises(LiveError, match="--model is required"):
        cli(["replay", "--trace", str(trace_file), "--out", str(tmp_path / "r")])
    pytest.importorskip("vllm")
    with pytest.raises(LiveError, match="no config.json"):
        cli(["replay", "--trace", str(trace_file), "--out", str(tmp_path / "r"),
             "--model", str(tmp_path), "--dummy-weights"])
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"vocab_size": 10}')
    with pytest.raises(LiveError, match="no weights"):
        cli(["replay", "--trace", str(trace_file), "--out", str(tmp_path / "r"),
             "--model", str(tmp_path / "m")])


def test_unsupported_vllm_version_is_refused_before_starting(tmp_path, trace_file, monkeypatch):
    import live.engine

    monkeypatch.setattr(live.engine, "installed_vllm_version", lambda: "0.19.0")
    with pytest.raises(LiveError, match="vLLM 0.19.0 is not supported"):
        cli(["replay", "--trace", str(trace_file), "--out", str(tmp_path / "r"),
             "--model", str(tmp_path), "--dummy-weights"])


def test_replicates_run_in_rounds_into_their_own_directories(tmp_path, trace_file, capsys):
    server = FakeServer()
    out = tmp_path / "runs"
    s = replay_against(server, trace_file, out, capsys,
                       ("--policy", "fcfs", "--policy", "sjf-oracle", "--repeats", "2"))
    assert [x["policy_spec"] for x in s] == ["fcfs", "sjf-oracle", "fcfs", "sjf-oracle"]
    assert sorted(p.name for p in out.iterdir()) == ["fcfs_r0", "fcfs_r1", "sjf-oracle_r0",
                                                     "sjf-oracle_r1"]
    assert all(x["completed"] == 29 for x in s)
    sent = [b["vllm_xargs"]["ltrsched.policy"] for b in server.bodies]
    first_sjf = sent.index("sjf-oracle")
    assert set(sent[:first_sjf]) == {"fcfs"} and "fcfs" in sent[first_sjf:]  # in rounds


def test_a_policy_given_twice_or_no_repeats_is_a_one_line_error(tmp_path, trace_file):
    with pytest.raises(LiveError, match="--policy fcfs given twice: pass it once, with "
                                        "--repeats N"):
        cli(["replay", "--trace", str(trace_file), "--server", "http://127.0.0.1:9",
             "--out", str(tmp_path / "r"), "--policy", "fcfs", "--policy", "fcfs"])
    with pytest.raises(LiveError, match="--repeats 0: must be at least 1"):
        cli(["replay", "--trace", str(trace_file), "--server", "http://127.0.0.1:9",
             "--out", str(tmp_path / "r"), "--repeats", "0"])
