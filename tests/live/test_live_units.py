"""Live mode without vLLM: extra-args codec, config precedence, the policy queue, the
request views' counters, the step log, version pins, model directories, prompts."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
from live_fakes import FakeRequest, FakeSamplingParams, make_trace

from live.compat import OVERRIDE_ENV, support_status
from live.config import PluginConfig
from live.errors import LiveError
from live.models import read_model_config, write_tiny_llama
from live.policy_run import PolicyRun
from live.prompts import fit_length, prompt_token_ids
from live.queue import PolicyQueue
from live.records import RequestRecord
from live.run import read_run_log
from live.steplog import StepLogWriter, StepRecord, read_step_log
from live.tracker import RequestTracker
from live.xargs import RequestTag, RunTag, decode, encode
from policies import make_policy
from policies.views import views_from_trace


def test_xargs_round_trip_flat_and_nested():
    tag = RequestTag(3, 1.5, 40, {"score_a": -2.0})
    run = RunTag("r1", "ltr:col=score_a", "t.parquet", "steps.jsonl", 123.0)
    flat = encode(tag, run)
    assert all(isinstance(v, (str, int, float)) for v in flat.values())  # vllm_xargs types
    assert decode(flat) == (tag, run)
    nested = {"ltrsched": {"request_id": 3, "arrival_s": 1.5, "output_tokens": 40,
                           "features": {"score_a": -2}, "run": "r1"}}
    t, r = decode(nested)
    assert (t.request_id, t.output_tokens, t.features, r.run) == (3, 40, {"score_a": -2.0}, "r1")
    assert decode(None) == (RequestTag(), RunTag())


def test_config_precedence_env_then_additional_config_then_run():
    env = {"LTRSCHED_POLICY": "sjf-oracle", "LTRSCHED_STEP_LOG": "a.jsonl"}
    cfg = PluginConfig.from_engine({"ltrsched": {"policy": "ltr"}}, env)
    assert (cfg.policy, cfg.step_log) == ("ltr", "a.jsonl")
    assert PluginConfig.from_engine(None, {}).policy == "fcfs"
    run = cfg.for_run(RunTag(policy="fcfs", step_log="b.jsonl"))
    assert (run.policy, run.step_log, run.trace) == ("fcfs", "b.jsonl", None)


def test_policy_queue_sorts_once_and_behaves_as_a_fifo_inside_a_step():
    reqs = [FakeRequest(str(i)) for i in range(5)]
    q = PolicyQueue(reqs)
    q.reorder(key=lambda r: -int(r.request_id))
    assert [r.request_id for r in q] == ["4", "3", "2", "1", "0"]
    assert q.peek_request() is reqs[4] and q.pop_request() is reqs[4]
    # vLLM re-queues skipped requests with extendleft over a reversed deque.
    skipped = [q.pop_request(), q.pop_request()]
    q.prepend_requests(reversed(skipped))
    assert [r.request_id for r in q] == ["3", "2", "1", "0"]
    q.remove_requests([reqs[1], reqs[2]])
    assert [r.request_id for r in q] == ["3", "0"] and len(q) == 2 and q
    q.prepend_request(reqs[4])
    assert q.peek_request() is reqs[4]


def test_tracker_counters_follow_request_counters():
    tr = RequestTracker()
    a, b = FakeRequest("a"), FakeRequest("b", sampling_params=FakeSamplingParams(max_tokens=7))
    va = tr.add(a, RequestTag(0, 0.0, 30, {"score_x": 1.0}), now_s=0.0)
    vb = tr.add(b, RequestTag(1, 0.5), now_s=0.5)
    assert vb.output_tokens == 7  # ignore_eos: max_tokens is the true length
    assert vb.features == {"score_priority": -0.0} and "score_priority" not in va.features
    tr.after_step({"a": 10}, (), 1.0, 1.2, running={"a"})
    assert (va.steps_run, va.steps_waiting, va.service_s) == (1, 0, pytest.approx(0.2))
    assert (va.waiting_since_s, va.running) == (1.2, True)
    tr.sync(tr.entries["b"])  # a waiting request's skipped steps are applied when read
    assert (vb.steps_run, vb.steps_waiting, vb.running) == (0, 1, False)
    tr.after_step({"b": 5}, ("a",), 1.2, 1.3, running={"b"})
    assert (va.preemptions, va.running, va.waiting_since_s) == (1, False, 1.2)
    assert (vb.steps_run, vb.steps_waiting, vb.running) == (1, 0, True)
    tr.after_step({}, (), 1.3, 1.4, running={"b"})  # b present, not scheduled
    tr.sync(tr.entries["a"]), tr.sync(tr.entries["b"])
    assert (va.steps_waiting, vb.steps_waiting) == (2, 1)
    b.finished = True
    assert tr.after_step({"b": 1}, (), 1.4, 1.5, running=set()) == 1
    assert set(tr.entries) == {"a"} and set(tr.keys) <= {"a"}


def test_tracker_counts_match_eager_counting_over_random_steps():
    """Lazy skipped-step counting gives the numbers eager per-step counting gives."""
    rng = np.random.default_rng(0)
    tr = RequestTracker()
    reqs = {str(i): FakeRequest(str(i)) for i in range(6)}
    eager = {}
    for i, r in reqs.items():
        tr.add(r, RequestTag(int(i), 0.0, 50), 0.0)
        eager[i] = [0, 0]  # steps_run, steps_waiting
    for step in range(40):
        sched = {i: 1 for i in reqs if rng.random() < 0.4}
        tr.after_step(sched, (), step, step + 1.0, running=set(sched))
        for i in reqs:
            eager[i] = [eager[i][0] + 1, 0] if i in sched else [eager[i][0], eager[i][1] + 1]
    for i, e in tr.entries.items():
        v = tr.sync(e)
        assert [v.steps_run, v.steps_waiting] == eager[i]


def test_policy_run_ranks_with_starvation_prevention():
    run = PolicyRun.start("r", PluginConfig(policy="sjf-oracle:starvation=3,quantum=2"),
                          t0=100.0, header={})
    long_, short = FakeRequest("long"), FakeRequest("short")
    run.add(long_, RequestTag(0, 0.0, 500), 100.0)
    run.add(short, RequestTag(1, 0.0, 5), 100.0)
    order = []
    for step in range(6):
        keys, _ = run.rank_keys(100.0 + step)
        first = min(keys, key=keys.__getitem__)
        order.append(first)
        run.tracker.after_step({first: 1}, (), step, step + 0.5, running={first})
    # short first; long waited 3 steps, is promoted for 2 steps it runs, then demoted.
    assert order == ["short", "short", "short", "long", "long", "short"]


def test_policy_run_falls_back_to_arrival_order_and_logs_the_error(tmp_path):
    log = tmp_path / "s.jsonl"
    run = PolicyRun.start("r", PluginConfig(policy="ltr:col=score_missing", step_log=str(log)),
                          t0=0.0, header={"vllm_version": "x"})
    run.add(FakeRequest("a"), RequestTag(0, 0.0, 5, {"score_x": 1.0}), 0.0)
    run.add(FakeRequest("b"), RequestTag(1, 1.0, 5, {"score_x": 9.0}), 1.0)
    keys, _ = run.rank_keys(2.0)
    assert min(keys, key=keys.__getitem__) == "a"
    run.close()
    parsed = read_step_log(log, "r")
    assert parsed.header["vllm_version"] == "x"
    assert "score_missing" in parsed.errors[0]


def test_views_from_trace_match_the_simulators_ids():
    df = make_trace(10).sample(frac=1.0, random_state=1)
    views = views_from_trace(df)
    assert [v.request_id for v in views] == list(range(10))
    assert [v.arrival_s for v in views] == sorted(v.arrival_s for v in views)


def test_step_log_durations_run_to_the_next_step_while_busy(tmp_path):
    path = tmp_path / "steps.jsonl"
    w = StepLogWriter(path)
    w.header(run="r", num_gpu_blocks=10)
    w.step("r", StepRecord(0, start_s=0.0, end_s=0.8, decode_requests=1, busy_after=True))
    w.step("other", StepRecord(0, start_s=5.0, end_s=5.5))
    w.step("r", StepRecord(1, start_s=1.0, end_s=1.5, busy_after=False))
    w.step("r", StepRecord(2, start_s=3.0, end_s=3.25, busy_after=True))
    w.close()
    with open(path, "a") as f:
        f.write('{"kind": "step", "run": "r", "step": 3, "sta')  # torn by a crash
    log = read_step_log(path, "r")
    assert log.header["num_gpu_blocks"] == 10
    assert list(log.steps["duration_s"]) == pytest.approx([1.0, 0.5, 0.25])
    assert log.steps["swapped_blocks"].eq(0).all() and log.steps["step"].tolist() == [0, 1, 2]


def test_step_log_is_on_disk_once_a_request_finishes_or_the_engine_goes_idle(tmp_path):
    """A driver reads the log when its last response is back: every step up to the one
    that finished it must be there, and the idle step that ended a burst, though no
    later step comes to trigger a flush."""
    path = tmp_path / "steps.jsonl"
    w = StepLogWriter(path)
    w.header(run="r")
    w.step("r", StepRecord(0, start_s=0.0, end_s=0.1, scheduled_requests=1))  # buffered
    assert len(path.read_text().splitlines()) == 1
    w.step("r", StepRecord(1, start_s=0.1, end_s=0.2, scheduled_requests=1,
                           finished_requests=1))  # busy after: vLLM still holds its id
    assert len(path.read_text().splitlines()) == 3
    w.step("r", StepRecord(2, start_s=0.2, end_s=0.3, scheduled_requests=1))  # buffered
    w.step("r", StepRecord(3, start_s=0.3, end_s=0.3, busy_after=False))
    assert len(path.read_text().splitlines()) == 5
    w.close()


def test_a_runs_steps_end_at_its_last_step_with_work(tmp_path):
    """The empty step vLLM runs after the last finish may not be on disk yet when the
    driver reads; with it or without, the run has the same steps and durations."""
    counts = []
    for trailing in (False, True):
        path = tmp_path / f"steps{trailing}.jsonl"
        w = StepLogWriter(path)
        w.header(run="r")
        w.step("r", StepRecord(0, start_s=0.0, end_s=0.1, scheduled_requests=1))
        w.step("r", StepRecord(1, start_s=0.1, end_s=0.1, busy_after=False))  # mid-run idle
        w.step("r", StepRecord(2, start_s=0.5, end_s=0.6, scheduled_requests=2,
                               finished_requests=2))
        if trailing:
            w.step("r", StepRecord(3, start_s=0.65, end_s=0.65, busy_after=False))
        w.close()
        steps = read_run_log(path, "r").steps
        counts.append((steps["step"].tolist(), steps["duration_s"].tolist()))
    assert counts[0] == counts[1]
    assert counts[0][0] == [0, 1, 2] and counts[0][1] == pytest.approx([0.1, 0.0, 0.1])


def test_version_pins(monkeypatch):
    assert support_status("0.32.0").startswith("tested")
    assert support_status("0.25.1").startswith("untested")
    with pytest.raises(LiveError, match="vLLM 0.19.0 is not supported"):
        support_status("0.19.0")
    assert support_status("0.33.0").startswith("scheduler tests only")
    with pytest.raises(LiveError, match="not supported"):
        support_status("0.35.0")
    monkeypatch.setenv(OVERRIDE_ENV, "1")
    assert "unsupported" in support_status("0.35.0")


def test_tiny_model_and_bad_model_dirs(tmp_path):
    path = write_tiny_llama(tmp_path / "tiny")
    cfg = read_model_config(path)
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]) == (256, 2, 4)
    with pytest.raises(LiveError, match="no config.json"):
        read_model_config(tmp_path)
    with pytest.raises(LiveError, match="no such directory"):
        read_model_config(tmp_path / "nope")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{")
    with pytest.raises(LiveError, match="not valid JSON"):
        read_model_config(tmp_path / "bad")


def test_prompt_ids_have_the_traced_lengths():
    df = make_trace(20)
    ids, how = prompt_token_ids(df, vocab_size=1000)
    assert how == "synthetic ids"
    assert [len(x) for x in ids] == df["prompt_tokens"].tolist()
    assert all(100 <= t < 900 for x in ids for t in x)
    assert ids == prompt_token_ids(df, vocab_size=1000)[0]  # seeded
    assert fit_length([1, 2, 3], 7) == [1, 2, 3, 1, 2, 3, 1] and fit_length([1, 2, 3], 2) == [1, 2]


def test_record_tracks_first_token_and_largest_gap():
    r = RequestRecord(0, 0.0, 10, 4)
    for n, t in ((1, 0.5), (1, 0.6), (0, 0.9), (2, 1.0)):
        r.on_tokens(n, t)
    assert (r.first_token_s, r.tokens_generated) == (0.5, 4)
    assert r.max_token_gap_s == pytest.approx(0.4)


def test_policy_specs_used_by_the_tests_are_valid():
    views = views_from_trace(make_trace(5))
    for spec in ("fcfs", "sjf-oracle", "ltr:starvation=100,quantum=10"):
        make_policy(spec).prepare(views)
    assert json.dumps(encode(RequestTag(1, 0.0, 3), RunTag(t0=np.float64(1.0).item())))


def test_static_keys_are_reused_while_requests_wait():
    calls = []

    class Counting(type(make_policy("sjf-oracle"))):
        def key(self, r, now_s):
            calls.append(r.request_id)
            return super().key(r, now_s)

    tr = RequestTracker()
    reqs = [FakeRequest(str(i)) for i in range(3)]
    for i, r in enumerate(reqs):
        tr.add(r, RequestTag(i, 0.0, 10 + i), 0.0)
    pol = Counting()
    assert tr.rank_keys(pol, 0.0)[1]  # the first call sorts everything
    tr.after_step({"0": 1}, (), 0.0, 0.1, running={"0"})
    calls.clear()
    keys, full = tr.rank_keys(pol, 0.2)
    assert calls == [0] and not full and len(keys) == 3  # only the running one is asked


def test_dynamic_keys_are_reread_at_the_horizon_not_on_every_arrival():
    tr = RequestTracker()
    for i in range(3):
        tr.add(FakeRequest(str(i)), RequestTag(i, 0.0, 10 * (i + 1)), 0.0)
    pol = make_policy("sjf-oracle:starvation=3,quantum=1")
    fulls = []
    for step in range(5):
        _, full = tr.rank_keys(pol, float(step))
        fulls.append(full)
        tr.after_step({"0": 1}, (), step, step + 0.5, running={"0"})
    # full at 0; the waiting requests 1 and 2 reach 3 skipped steps at step 3.
    assert fulls == [True, False, False, True, False]
    tr.add(FakeRequest("9"), RequestTag(9, 5.0, 1), 5.0)
    keys, full = tr.rank_keys(pol, 5.0)
    assert not full and "9" in keys  # its own promotion is 3 steps away


@pytest.mark.parametrize("spec", ["sjf-oracle:starvation=4,quantum=2", "fcfs", "srtf-oracle",
                                  "ltr:starvation=3,quantum=1", "mlfq:quantum_s=0.5"])
def test_incremental_order_equals_re_ranking_everything_every_step(spec):
    """Cached keys, lazy counters and horizons give the order a full re-rank gives."""
    rng = np.random.default_rng(1)
    lazy, eager = RequestTracker(), RequestTracker()
    pol_lazy, pol_eager = make_policy(spec), make_policy(spec)
    reqs: dict[str, FakeRequest] = {}
    running: set[str] = set()
    for step in range(120):
        now = step * 0.1
        if rng.random() < 0.5:  # an arrival
            vid = str(len(reqs))
            reqs[vid] = FakeRequest(vid, sampling_params=FakeSamplingParams(max_tokens=50))
            tag = RequestTag(len(reqs), now, int(rng.integers(2, 30)),
                             {"score_x": float(rng.normal())})
            lazy.add(reqs[vid], tag, now)
            eager.add(reqs[vid], tag, now)
        k_lazy, _ = lazy.rank_keys(pol_lazy, now)
        eager.forget_keys()
        k_eager, _ = eager.rank_keys(pol_eager, now)
        live = sorted(k_eager, key=k_eager.__getitem__)
        assert sorted(k_lazy, key=k_lazy.__getitem__) == live
        # an engine step: the best 3 run; sometimes the worst running one is preempted
        new_running = set(live[:3])
        preempted = ()
        if running and rng.random() < 0.1:
            preempted = (max(running, key=k_eager.__getitem__),)
            new_running -= set(preempted)
        sched = {vid: 1 for vid in new_running}
        for vid in sched:
            reqs[vid].num_output_tokens += 1
            if reqs[vid].num_output_tokens >= 8 + int(vid) % 7:
                reqs[vid].finished = True
        running = {vid for vid in new_running if not reqs[vid].finished}
        for tr in (lazy, eager):
            tr.after_step(sched, preempted, now, now + 0.1, running)


def test_policy_queue_reinserts_only_what_moved():
    reqs = [FakeRequest(str(i)) for i in range(6)]
    q = PolicyQueue(reqs[:4])
    key = {r.request_id: -int(r.request_id) for r in reqs}
    q.reorder(lambda r: key[r.request_id])
    q.add_request(reqs[5])
    q.prepend_request(reqs[4])
    q.reorder(lambda r: key[r.request_id], full=False)
    assert [r.request_id for r in q] == ["5", "4", "3", "2", "1", "0"]


def test_quiet_vllm_keeps_the_users_own_level(monkeypatch):
    from live.engine import quiet_vllm

    for var in ("VLLM_LOGGING_LEVEL", "TORCH_CPP_LOG_LEVEL", "PYTHONWARNINGS"):
        monkeypatch.delenv(var, raising=False)
    with warnings.catch_warnings():  # its in-process filter stays in this block
        quiet_vllm()
    assert os.environ["VLLM_LOGGING_LEVEL"] == "ERROR"
    assert os.environ["PYTHONWARNINGS"] == "ignore::FutureWarning"
    monkeypatch.setenv("VLLM_LOGGING_LEVEL", "INFO")
    monkeypatch.delenv("PYTHONWARNINGS")
    with warnings.catch_warnings():
        quiet_vllm()
    assert os.environ["VLLM_LOGGING_LEVEL"] == "INFO" and "PYTHONWARNINGS" not in os.environ


def test_policy_queue_places_several_newcomers_of_one_step_in_order():
    keys = {"a": 3, "b": 2, "c": 1, "d": 2.5}
    reqs = {k: FakeRequest(k) for k in keys}
    q = PolicyQueue()
    q.add_request(reqs["a"])
    q.reorder(key=lambda r: keys[r.request_id])
    for k in "bcd":  # three arrive in one step, each behind the unsorted others
        q.add_request(reqs[k])
    q.reorder(key=lambda r: keys[r.request_id], full=False)
    assert [r.request_id for r in q] == ["c", "b", "d", "a"]


def test_policy_queue_reads_as_vllms_fcfs_deque():
    reqs = [FakeRequest(str(i)) for i in range(4)]
    q = PolicyQueue(reqs)
    assert q[0] is reqs[0] and q[-1] is reqs[3] and q[1:3] == reqs[1:3]
    assert reqs[2] in q and FakeRequest("x") not in q
    assert [r.request_id for r in reversed(q)] == ["3", "2", "1", "0"]
    q.remove(reqs[1])
    q.prepend_request(reqs[1])
    assert [r.request_id for r in q] == ["1", "0", "2", "3"] and len(q) == 4
