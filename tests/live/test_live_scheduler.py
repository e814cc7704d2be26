"""The plug-in against vLLM's own scheduler, in-process, with vLLM as the oracle: under
`fcfs` the plug-in must schedule and preempt step for step as vLLM does, in both of
vLLM's modes; it must never write Request.priority; vLLM's priority mode orders before
the policy. No model runs: each step's output is one sampled token per request."""

from __future__ import annotations

import pytest

pytest.importorskip("vllm")
torch = pytest.importorskip("torch")

from hypothesis import assume, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from vllm.config import CacheConfig, ModelConfig, SchedulerConfig, VllmConfig  # noqa: E402
from vllm.sampling_params import SamplingParams  # noqa: E402
from vllm.v1.core.sched.scheduler import Scheduler  # noqa: E402
from vllm.v1.kv_cache_interface import (  # noqa: E402
    FullAttentionSpec,
    KVCacheConfig,
    KVCacheGroupSpec,
)
from vllm.v1.outputs import ModelRunnerOutput  # noqa: E402
from vllm.v1.request import Request  # noqa: E402
from vllm.v1.structured_output import StructuredOutputManager  # noqa: E402

from live.models import write_tiny_llama  # noqa: E402
from live.scheduler import PolicySyncScheduler  # noqa: E402
from live.xargs import FEATURE  # noqa: E402

BLOCK = 16


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_tiny_llama(tmp_path_factory.mktemp("tiny"))


def build(cls, model_dir, mode="fcfs", policy="fcfs", num_blocks=100, max_num_seqs=8, budget=256):
    """vLLM's scheduler class cls in vLLM's mode (fcfs or priority); the plug-in's policy
    goes where the engine's user puts it, in additional_config."""
    mc = ModelConfig(
        model=str(model_dir), skip_tokenizer_init=True, max_model_len=budget, dtype="float32"
    )
    sc = SchedulerConfig(
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=budget,
        max_model_len=budget,
        enable_chunked_prefill=True,
        policy=mode,
        is_encoder_decoder=False,
    )
    cc = CacheConfig(block_size=BLOCK, cache_dtype="auto", enable_prefix_caching=False)
    cc.num_gpu_blocks = num_blocks
    vc = VllmConfig(
        model_config=mc,
        scheduler_config=sc,
        cache_config=cc,
        additional_config={"ltrsched": {"policy": policy}},
    )
    spec = FullAttentionSpec(block_size=BLOCK, num_kv_heads=1, head_size=1, dtype=torch.float32)
    kv = KVCacheConfig(
        num_blocks=num_blocks,
        kv_cache_tensors=[],
        kv_cache_groups=[KVCacheGroupSpec(["layer"], spec)],
    )
    return cls(
        vllm_config=vc,
        kv_cache_config=kv,
        block_size=BLOCK,
        log_stats=False,
        structured_output_manager=StructuredOutputManager(vc),
    )


def request(rid, prompt, out, priority=0, arrival=0.0, extra=None):
    sp = SamplingParams(max_tokens=out, ignore_eos=True, extra_args=extra)
    return Request(rid, [1] * prompt, sp, None, arrival_time=arrival, priority=priority)


def step(s):
    """One schedule() and its output: a token for every request scheduled."""
    out = s.schedule()
    ids = list(out.num_scheduled_tokens)
    if ids:
        s.update_from_output(
            out,
            ModelRunnerOutput(
                req_ids=ids,
                req_id_to_index={r: i for i, r in enumerate(ids)},
                sampled_token_ids=[[5] for _ in ids],
            ),
        )
    return dict(out.num_scheduled_tokens), sorted(out.preempted_req_ids or ())


def replay(s, workload, changes, steps=40):
    """Add each request at its step, apply the priority changes to running requests,
    and return each step's (scheduled tokens, preempted ids) and the final priorities."""
    reqs, trace = {}, []
    for k in range(steps):
        for rid, at_step, prompt, out, prio, arrival in workload:
            if at_step == k:
                reqs[rid] = request(rid, prompt, out, prio, arrival)
                s.add_request(reqs[rid])
        for at_step, rid, prio in changes:
            if at_step == k and rid in reqs and reqs[rid] in s.running:
                reqs[rid].priority = prio  # the user's change, as vLLM's own tests make
        trace.append(step(s))
    return trace, {rid: r.priority for rid, r in reqs.items()}


@st.composite
def workloads(draw):
    """Requests arriving over a few steps (arrival_time never decreasing in the order they
    reach the engine, as in vLLM), small KV caches that force preemptions, and priority
    changes of running requests."""
    n = draw(st.integers(2, 8))
    steps = sorted(draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)))
    arrival, work = 0.0, []
    for i, k in enumerate(steps):
        arrival = max(arrival, k + draw(st.sampled_from([0.0, 0.5])))
        work.append(
            (
                f"r{i:02d}",
                k,
                draw(st.integers(1, 40)),
                draw(st.integers(1, 12)),
                draw(st.integers(0, 3)),
                arrival,
            )
        )
    changes = draw(
        st.lists(
            st.tuples(st.integers(0, 20), st.sampled_from([w[0] for w in work]), st.integers(0, 3)),
            max_size=3,
        )
    )
    limits = dict(
        num_blocks=draw(st.integers(6, 14)),
        budget=draw(st.sampled_from([32, 64, 256])),
        max_num_seqs=draw(st.integers(1, 6)),
    )
    return work, changes, limits


# Found by this test in CI: equal priorities and arrival times, where vLLM's priority mode
# preempts the first of the equals in its running list (r00), not the last admitted.
TIED = [("r00", 0, 10, 8, 0, 0.0), ("r01", 0, 1, 4, 0, 0.0), ("r02", 0, 1, 6, 0, 0.0),
        ("r03", 0, 14, 4, 0, 0.0), ("r04", 0, 16, 2, 0, 0.0), ("r05", 0, 1, 1, 0, 0.0),
        ("r06", 0, 1, 1, 0, 0.0)]


@settings(max_examples=30, deadline=None)
@given(w=workloads(), mode=st.sampled_from(["fcfs", "priority"]))
@example(w=(TIED, [], {"num_blocks": 6, "budget": 32, "max_num_seqs": 3}), mode="priority")
def test_fcfs_plugin_schedules_and_preempts_as_vllm_does(model_dir, w, mode):
    work, changes, limits = w
    theirs = replay(build(Scheduler, model_dir, mode, **limits), work, changes)
    ours = replay(build(PolicySyncScheduler, model_dir, mode, **limits), work, changes)
    assert ours == theirs  # the same steps, and the priorities only the user changed


@settings(max_examples=20, deadline=None)
@given(w=workloads())
def test_prompt_length_is_vllm_priority_scheduling_on_prompt_length(model_dir, w):
    """Shortest prompt first, in vLLM's fcfs mode, is vLLM's priority mode with priority =
    prompt length (admission and victims), while the token budget never binds and no two
    requests tie on (prompt length, arrival time): among such equals vLLM's priority mode
    preempts the first in its running list, the plug-in in fcfs mode the last by request
    id, as the simulator does (a 1,500-example run found such a case)."""
    work, _, limits = w
    assume(len({(p, a) for _, _, p, _, _, a in work}) == len(work))
    limits["budget"] = 256  # > 6 requests x 40 tokens: budget order cannot matter
    as_priority = [(rid, k, p, o, p, a) for rid, k, p, o, _, a in work]
    theirs, _ = replay(build(Scheduler, model_dir, "priority", **limits), as_priority, [])
    ours, prios = replay(
        build(PolicySyncScheduler, model_dir, "fcfs", "prompt-length", **limits), work, []
    )
    assert ours == theirs
    assert prios == {rid: prio for rid, _, _, _, prio, _ in work}  # never written


def test_priority_mode_orders_by_priority_then_the_policy(model_dir):
    s = build(PolicySyncScheduler, model_dir, "priority", "ltr:col=score_x", max_num_seqs=1)
    scores = {"a": 1.0, "b": 3.0, "c": 2.0, "d": 0.0}  # higher = sooner, within a priority
    prios = {"a": 0, "b": 0, "c": 0, "d": -1}
    for i, rid in enumerate("abcd"):
        s.add_request(
            request(rid, 4, 1, prios[rid], float(i), extra={FEATURE + "score_x": scores[rid]})
        )
    served = []
    for _ in range(8):
        scheduled, _ = step(s)
        served += [r for r in scheduled if r not in served]
    assert served == ["d", "b", "c", "a"]
    assert [s.requests.get(r) for r in "abcd"] == [None] * 4  # all finished


def test_ties_break_by_arrival_time_not_by_add_order(model_dir):
    s = build(PolicySyncScheduler, model_dir, "fcfs", "ltr:col=score_x", max_num_seqs=1)
    for rid, arrival in (("late", 3.0), ("early", 1.0), ("mid", 2.0)):
        s.add_request(request(rid, 4, 3, 0, arrival, extra={FEATURE + "score_x": 0.0}))
    step(s)  # orders the queue, admits the first
    assert [r.request_id for r in s.running] == ["early"]
    assert [r.request_id for r in s.waiting] == ["mid", "late"]
    assert s.waiting[0].request_id == "mid" and s.waiting[-1].request_id == "late"
    assert s.waiting[0] in s.waiting and len(s.waiting) == 2
