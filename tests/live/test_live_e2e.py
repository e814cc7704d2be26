"""End to end on the CPU build of vLLM: a tiny Llama with random weights replays one
trace under three policies on one engine; calibrate from the FCFS run, simulate every
policy with the fitted profile, compare. Skipped where vLLM is not installed."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau

from traces.results import REQUEST_COLUMNS, STEP_COLUMNS

pytest.importorskip("vllm")

from analysis.compare import compare_runs  # noqa: E402
from live.calibrate import calibrate  # noqa: E402
from live.models import write_tiny_llama  # noqa: E402
from ltrsched.cli import main as ltrsched_main  # noqa: E402
from traces.io import write_trace  # noqa: E402

POLICIES = {"fcfs": "fcfs", "ltr": "ltr:starvation=100,quantum=10", "sjf": "sjf-oracle"}
N, BURST, RATE, MAX_MODEL_LEN = 200, 30, 30.0, 1024
LONG = N // 2  # a request longer than max_model_len: rejected, not a hang


def e2e_trace(seed: int = 0) -> pd.DataFrame:
    """A burst (where the order of service shows) then Poisson arrivals; score_len ranks
    short outputs first, with noise."""
    rng = np.random.default_rng(seed)
    out = rng.integers(4, 65, N)
    prompt = rng.integers(16, 129, N)
    prompt[LONG], out[LONG] = 1000, 100
    arrival = np.concatenate([np.zeros(BURST), np.cumsum(rng.exponential(1 / RATE, N - BURST))])
    return pd.DataFrame({"request_id": np.arange(N), "arrival_s": arrival,
                         "prompt_tokens": prompt, "output_tokens": out,
                         "score_len": -out + rng.normal(0, 8, N)})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Replay the trace live under the three policies (one engine), then simulate each
    with the profile fitted on the live FCFS run."""
    d = tmp_path_factory.mktemp("e2e")
    model = write_tiny_llama(d / "tiny")
    trace = d / "trace.parquet"
    write_trace(e2e_trace(), trace, {"source": "test"})
    cmd = [sys.executable, "-m", "live.cli", "replay", "--trace", str(trace),
           "--model", str(model), "--dummy-weights", "--enforce-eager", "--max-num-seqs", "8",
           "--max-batched-tokens", "512", "--max-model-len", str(MAX_MODEL_LEN),
           "--stall-timeout", "60", "--out", str(d / "live"), "--json"]
    for spec in POLICIES.values():
        cmd += ["--policy", spec]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-4000:]
    printed = json.loads(proc.stdout)  # stdout is the summaries alone (vLLM logs to stderr)
    assert [s["policy_spec"] for s in printed] == list(POLICIES.values())
    live = {k: next(p for p in (d / "live").iterdir() if p.name.startswith(k.split(":")[0]))
            for k in ("fcfs", "ltr", "sjf")}
    profile = d / "profile.yaml"
    calibrate(live["fcfs"], profile)
    sim = {}
    for key, spec in POLICIES.items():
        sim[key] = d / f"sim_{key}"
        rc = ltrsched_main(["simulate", "--trace", str(trace), "--policy", spec, "--profile",
                            str(profile), "--max-model-len", str(MAX_MODEL_LEN),
                            "--out", str(sim[key]), "--json"])
        assert rc == 0
    return {"live": live, "sim": sim, "profile": profile}


def load(run_dir):
    return (pd.read_parquet(run_dir / "requests.parquet"),
            pd.read_parquet(run_dir / "steps.parquet"),
            json.loads((run_dir / "summary.json").read_text()))


@pytest.mark.parametrize("key", list(POLICIES))
def test_live_runs_are_complete_and_exact(runs, key):
    req, steps, s = load(runs["live"][key])
    assert (s["completed"], s["rejected"], s["failed"]) == (N - 1, 1, 0)
    assert req.loc[req["request_id"] == LONG, "status"].item() == "rejected"
    done = req[req["status"] == "finished"]
    assert (done["tokens_generated"] == done["output_tokens"]).all()  # exact lengths
    assert (done["first_scheduled_s"] <= done["first_token_s"]).all()
    assert (done["first_token_s"] <= done["finish_s"]).all()
    assert set(REQUEST_COLUMNS) <= set(req.columns) and set(STEP_COLUMNS) <= set(steps.columns)
    assert len(steps) > 100 and (steps["duration_s"] > 0).all()
    assert steps["prefill_tokens"].sum() >= done["prompt_tokens"].sum()
    assert s["vllm_version"].startswith("0.32") and s["block_size"] > 0
    assert s["num_gpu_blocks"] > 0 and s["max_num_seqs"] == 8
    assert s["max_num_batched_tokens"] == 512 and s["chunked_prefill"] is True
    assert s["policy"].startswith(POLICIES[key].split(":")[0]) and s["plugin_error"] is None
    assert 0 < s["plugin_overhead"]["mean_s"] < s["plugin_overhead"]["mean_step_s"]


def burst_tau(run_dir) -> float:
    req = pd.read_parquet(run_dir / "requests.parquet")
    b = req[(req["arrival_s"] == 0) & (req["status"] == "finished")]
    return float(kendalltau(b["finish_s"], b["output_tokens"]).statistic)


def test_plugin_order_follows_the_policy(runs):
    """In the burst, SJF-oracle finishes requests in length order; FCFS does not."""
    fcfs, ltr = burst_tau(runs["live"]["fcfs"]), burst_tau(runs["live"]["ltr"])
    assert burst_tau(runs["live"]["sjf"]) > 0.9
    # ltr's noisy scores and starvation promotions (which depend on how many steps a
    # loaded machine runs) cost some order; it must still beat arrival order clearly.
    assert ltr > fcfs + 0.15, (ltr, fcfs)
    assert fcfs < 0.6
    assert burst_tau(runs["sim"]["sjf"]) > 0.9  # the simulator agrees


def test_live_and_simulated_policy_order_agree(runs):
    live = {k: load(v)[2]["mean_latency_s"] for k, v in runs["live"].items()}
    sim = {k: json.loads((v / "summary.json").read_text())["mean_latency_s"]
           for k, v in runs["sim"].items()}
    assert live["fcfs"] > max(live["ltr"], live["sjf"])
    assert sim["fcfs"] > max(sim["ltr"], sim["sjf"])


def test_calibrated_simulation_against_live(runs):
    """The whole loop runs and reports; accuracy is measured by
    benchmarks/live_validate.py, not gated here: on a shared 2-core CI machine two live
    runs of one trace differ by up to 30% in latency (the trace here is overloaded, where
    a small change in step time moves the queue a lot)."""
    c = compare_runs(runs["sim"]["fcfs"], runs["live"]["fcfs"])
    by = {r["metric"]: r["rel_error"] for r in c.metrics}
    # The profile was fitted on this run: total step time matches by construction, so
    # throughput (tokens over the makespan) is close whatever the noise.
    assert abs(by["throughput_tok_s"]) < 0.2
    assert c.requests_matched == N - 1 and c.verdict.startswith("within 10%")
    other = compare_runs(runs["sim"]["ltr"], runs["live"]["ltr"])
    assert all(np.isfinite(r["rel_error"]) for r in other.metrics)
