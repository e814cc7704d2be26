"""gittins and serpt: the index by hand, against its definition, on point masses (SRPT),
its update given the age, the horizon, and the same policy object in both engines."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_engine import order, run, view

from live.tracker import RequestTracker
from live.xargs import RequestTag, RunTag, decode, encode
from policies import PolicyError, RequestCounters, make_policy, tie_key
from policies.dist_math import TAIL_RATIO, LengthDist, gittins_index, next_point, serpt
from policies.lengthdist import NUM_BINS, SUPPORT_TOKENS, bin_of, dist_columns
from policies.oracle_dist import oracle_dist
from policies.views import feature_columns, in_policy_order, views_from_trace
from sim.config import EngineConfig
from sim.profile import StepTimeProfile
from sim.run import simulate

S = SUPPORT_TOKENS.tolist()


def probs(masses: dict[int, float]) -> np.ndarray:
    """A distribution from {support point in tokens: probability}."""
    p = np.zeros(NUM_BINS)
    for tokens, q in masses.items():
        assert tokens in S, tokens
        p[S.index(tokens)] += q
    return p


def feats(p: np.ndarray, name: str = "a") -> dict[str, float]:
    return dict(zip(dist_columns(name), map(float, p), strict=True))


def dview(rid, masses, arrival=0.0, output=None, **kw):
    out = output if output is not None else max(masses)
    return view(rid, arrival, output=out, features=feats(probs(masses)), **kw)


# ---------------------------------------------------------------- the index by hand


def test_two_point_distribution_by_hand():
    # X = 1 or 4 tokens, 1/2 each.
    # age 0: threshold 1: P(X <= 1) = 1/2 over E[min(X, 1)] = 1      -> 1/2
    #        threshold 4: P = 1 over E[X] = 2.5                      -> 0.4;  G = 1/2
    # age 1: X = 4 surely, 3 tokens left                             -> G = 1/3
    # SERPT: E[X] = 2.5 at age 0; 3 at age 1 (no luck at 1: the remaining grows).
    p = probs({1: 0.5, 4: 0.5})
    assert gittins_index(p, 0) == pytest.approx(1 / 2)
    assert gittins_index(p, 1) == pytest.approx(1 / 3)
    assert (serpt(p, 0), serpt(p, 1)) == pytest.approx((2.5, 3.0))


def test_three_point_distribution_by_hand():
    # X = 2, 5, 8 tokens w.p. 1/4, 1/4, 1/2.
    # age 0: x=2: (1/4) / 2 = 1/8;  x=5: (1/2) / (1/4*2 + 3/4*5) = 2/17;
    #        x=8: 1 / E[X] = 1 / 5.75 = 4/23                          -> G = 4/23
    # age 1: x=2: (1/4) / 1 = 1/4;  x=8: 1 / 4.75                      -> G = 1/4
    #        (the same conditional, one token less to pay: the index rose)
    # age 2: X = 5 or 8 w.p. 1/3, 2/3: x=5: (1/3) / 3 = 1/9;
    #        x=8: 1 / (1/3*3 + 2/3*6) = 1/5                            -> G = 1/5
    # age 4: x=5: (1/3) / 1 = 1/3;  x=8: 1 / (1/3*1 + 2/3*4) = 1/3     -> G = 1/3
    # SERPT: 5.75, 4.75, 5, 3.
    p = probs({2: 0.25, 5: 0.25, 8: 0.5})
    for age, g in [(0, 4 / 23), (1, 1 / 4), (2, 1 / 5), (3, 1 / 4), (4, 1 / 3)]:
        assert gittins_index(p, age) == pytest.approx(g), age
    assert [serpt(p, a) for a in (0, 1, 2, 4)] == pytest.approx([5.75, 4.75, 5.0, 3.0])


def test_past_all_the_mass_the_next_bin_is_assumed():
    # X = 3 surely. At age 3 it has not finished: one more bin, the support point 4.
    # At age 8 the next support point is 11: 3 tokens left, G = 1/3.
    p = probs({3: 1.0})
    assert (gittins_index(p, 3), serpt(p, 3)) == (1.0, 1.0)
    assert (gittins_index(p, 8), serpt(p, 8)) == pytest.approx((1 / 3, 3.0))
    # Past the last support point the grid goes on geometrically: each time the guess
    # fails, the remaining length assumed is a fixed share of the age, about 30% (a
    # Pareto-like tail, where the mean remaining life grows with the age).
    age = S[-1]
    assert next_point(age) == round(age * TAIL_RATIO)
    for _ in range(12):
        remaining = next_point(age) - age
        assert serpt(p, age) == remaining and gittins_index(p, age) == 1 / remaining
        assert remaining == pytest.approx((TAIL_RATIO - 1) * age, rel=1e-3)
        assert serpt(p, age + remaining - 1) == 1  # and it counts down, as SRPT's
        age += remaining


def test_uniform_distribution_conditions_on_the_age():
    # X uniform on 1..8 (one bin per length): given X > a it is uniform on a+1..8. That
    # is an increasing-hazard law, whose index is 1 / E[remaining] = 2 / (n + 1), n = 8 - a
    # (threshold x = a + j gives 1 / (n - (j - 1)/2), best at j = n).
    d = LengthDist.from_probs(probs({k: 1 / 8 for k in range(1, 9)}))
    for a in range(8):
        n = 8 - a
        cond = d.conditional(a)
        assert cond[:a] == pytest.approx(np.zeros(a))
        assert cond[a:8] == pytest.approx(np.full(n, 1 / n))
        assert d.gittins(a) == pytest.approx(2 / (n + 1))
        assert d.serpt(a) == pytest.approx((n + 1) / 2)


def test_geometric_distribution_is_memoryless_until_its_cut():
    # P(X = k) = (1/2)^k for k = 1..7 and the rest, (1/2)^7, at 8. Given X > a the law is
    # the same geometric, cut at 8: with n = 8 - a steps left, every threshold short of 8
    # gives the hazard 1/2, the whole rest gives 1 / E[min] = (1/2) / (1 - (1/2)^n).
    masses = {k: 0.5**k for k in range(1, 8)}
    masses[8] = 0.5**7
    d = LengthDist.from_probs(probs(masses))
    for a in range(8):
        n = 8 - a
        expected = [0.5**i for i in range(1, n)] + [0.5 ** (n - 1)]
        assert d.conditional(a)[a:8] == pytest.approx(expected)
        assert d.gittins(a) == pytest.approx(0.5 / (1 - 0.5**n))


def reference_gittins(p: np.ndarray, age: int) -> float:
    """The definition, term by term."""
    s = SUPPORT_TOKENS.astype(float)
    q = np.where(s > age, p / p.sum(), 0.0)
    if q.sum() == 0:
        return 1.0 / (next_point(age) - age)
    q = q / q.sum()
    return max(q[s <= x].sum() / (q * (np.minimum(s, x) - age)).sum() for x in s[s > age])


def reference_serpt(p: np.ndarray, age: int) -> float:
    s = SUPPORT_TOKENS.astype(float)
    q = np.where(s > age, p, 0.0)
    if q.sum() == 0:
        return float(next_point(age) - age)
    return float((q * (s - age)).sum() / q.sum())


@st.composite
def distributions(draw):
    support = draw(st.lists(st.integers(0, NUM_BINS - 1), min_size=1, max_size=6, unique=True))
    p = np.zeros(NUM_BINS)
    for k in support:
        p[k] = draw(st.floats(1e-6, 1.0))
    return p


@settings(max_examples=300, deadline=None)
@given(p=distributions(), age=st.one_of(st.integers(0, 40), st.integers(0, 40000)))
def test_fast_index_matches_the_definition(p, age):
    d = LengthDist.from_probs(p)
    assert d.gittins(age) == pytest.approx(reference_gittins(p, age), rel=1e-9)
    assert d.serpt(age) == pytest.approx(reference_serpt(p, age), rel=1e-9)
    # the tables the horizon reads hold exactly what a key at that age computes
    assert d.gittins_at_support().tolist() == [d.gittins(s) for s in S]
    assert d.serpt_at_support().tolist() == [d.serpt(s) for s in S]


@settings(max_examples=200, deadline=None)
@given(p=distributions(), m=st.integers(0, NUM_BINS - 2))
def test_between_support_points_the_index_only_rises(p, m):
    d = LengthDist.from_probs(p)
    ages = range(S[m], S[m + 1])
    g = [d.gittins(a) for a in ages]
    r = [d.serpt(a) for a in ages]
    assert g == sorted(g) and r == sorted(r, reverse=True)


# ---------------------------------------------------------------- point masses are SRPT


@st.composite
def point_mass_requests(draw):
    n = draw(st.integers(1, 8))
    out = []
    for rid in range(n):
        length = draw(st.sampled_from(S[:20]))
        out.append(
            dview(
                rid,
                {length: 1.0},
                arrival=draw(st.sampled_from([0.0, 0.5, 1.0])),
                tokens_generated=draw(st.integers(0, length - 1)),
                running=draw(st.booleans()),
            )
        )
    return out


@settings(max_examples=200, deadline=None)
@given(views=point_mass_requests())
def test_on_point_masses_gittins_and_serpt_order_is_srpt(views):
    srpt = order(make_policy("srtf-oracle"), views)
    for spec in ("gittins", "serpt"):
        policy = make_policy(spec)
        policy.prepare(views)
        assert order(policy, views) == srpt


# ---------------------------------------------------------------- the policies


def test_default_distribution_describe_and_wrapper_spec():
    views = [dview(0, {5: 1.0}), dview(1, {2: 0.5, 72: 0.5}, output=72)]
    p = make_policy("gittins")
    p.prepare(views)
    assert p.describe() == "gittins:dist=a"
    assert p.requires == ("features:dist_a_*",)
    assert p.static_keys is True
    assert order(p, views) == [1, 0]  # 1/4 beats 1/5
    assert order(make_policy("serpt"), views) == [0, 1]  # 5 beats 37
    wrapped = make_policy("gittins:dist=a,starvation=200,quantum=10")
    assert wrapped.describe() == "gittins:dist=a,starvation=200,quantum=10,order=age"
    wrapped.prepare(views)
    assert order(wrapped, views) == [1, 0]


def test_distribution_errors_name_the_request_and_the_choices():
    two = {**feats(probs({5: 1.0}), "a"), **feats(probs({11: 1.0}), "b")}
    views = [view(0, features=two)]
    with pytest.raises(PolicyError, match=r"give dist=, .* 2 complete distributions .*: a, b"):
        make_policy("gittins").prepare(views)
    p = make_policy("serpt:dist=b")
    p.prepare(views)
    assert p.key(views[0], 0.0) == 11.0
    with pytest.raises(PolicyError, match=r"'zz' missing \(request 0\); distributions: a, b"):
        make_policy("gittins:dist=zz").prepare(views)
    with pytest.raises(PolicyError, match="0 complete distributions"):
        make_policy("serpt").prepare([view(0, features={"dist_a_00": 1.0})])
    bad = feats(probs({5: 1.0}))
    bad["dist_a_03"] = math.nan
    with pytest.raises(PolicyError, match="'a' of request 7: probabilities must be finite"):
        make_policy("gittins").prepare([view(7, features=bad)])
    zero = feats(np.zeros(NUM_BINS))
    with pytest.raises(PolicyError, match="request 3: .*not all 0"):
        make_policy("gittins").key(view(3, features=zero), 0.0)


def test_unprepared_policy_reads_the_distribution_from_the_first_request():
    # live mode without a trace file: no prepare()
    p = make_policy("gittins")
    views = [dview(0, {8: 1.0}), dview(1, {4: 1.0})]
    assert order(p, views) == [1, 0] and p.describe() == "gittins:dist=a"


def test_cache_follows_the_features_not_just_the_id():
    p = make_policy("serpt")
    assert p.key(dview(0, {8: 1.0}), 0.0) == 8.0
    assert p.key(dview(0, {4: 1.0}), 0.0) == 4.0  # same id, another request's features


def test_horizon_ends_where_a_running_request_falls_behind_a_waiting_one():
    # A (running) is 2 or 72 tokens, B (waiting) 19 for sure. A leads, 1/4 to 1/19; when
    # A reaches age 2 without finishing, it is 72 for sure: 1/70 < 1/19, and B leads.
    a = dview(0, {2: 0.5, 72: 0.5}, running=True)
    b = dview(1, {19: 1.0})
    p = make_policy("gittins")
    p.prepare([a, b])
    assert order(p, [a, b]) == [0, 1]
    assert p.horizon([b], [a], 0.0) == (2, math.inf)
    a.tokens_generated = 1
    assert order(p, [a, b]) == [0, 1] and p.horizon([b], [a], 0.0) == (1, math.inf)
    a.tokens_generated = 2
    assert order(p, [a, b]) == [1, 0]
    # nothing waiting, or a running request that never falls behind: no horizon
    assert p.horizon([], [a], 0.0) == (math.inf, math.inf)
    c = dview(2, {72: 1.0}, running=True)
    p.key(c, 0.0)
    assert p.horizon([dview(3, {28774: 1.0})], [c], 0.0)[0] > 28774 - 72


def test_running_requests_may_swap_inside_the_horizon_waiting_ones_stay_behind():
    # i: 33 tokens for sure, at age 3: 1/30. k: 11 tokens w.p. 0.2, else 4664, at age 1:
    # 0.2/10 = 1/50. Seven tokens on, i has 1/23 and k 0.2/3 = 1/15: k passed i. The
    # waiting w (4664 for sure, 1/4664) stays behind both well past that.
    i = dview(0, {33: 1.0}, tokens_generated=3, running=True)
    k = dview(1, {11: 0.2, 4664: 0.8}, tokens_generated=1, running=True)
    w = dview(2, {4664: 1.0})
    p = make_policy("gittins")
    p.prepare([i, k, w])
    assert order(p, [i, k, w]) == [0, 1, 2]
    steps, _ = p.horizon([w], [i, k], 0.0)
    assert steps >= 10  # k's drop at 11 leaves it at 1/4653, still ahead of w
    i.tokens_generated += 7
    k.tokens_generated += 7
    assert order(p, [i, k, w]) == [1, 0, 2]


def test_starvation_prevention_serves_the_long_request():
    # A long request and a one-token request every step: gittins alone starves it,
    # wrapped in starvation prevention it is promoted after 5 waited steps.
    def trace():
        return [dview(0, {94: 1.0})] + [dview(i, {1: 1.0}, float(i - 1)) for i in range(1, 81)]

    log = run(make_policy("gittins"), trace(), max_steps=80)
    assert all(0 not in step for step in log)
    log = run(make_policy("gittins:starvation=5,quantum=2"), trace(), max_steps=80)
    assert any(0 in step for step in log)


@settings(max_examples=150, deadline=None)
@given(
    masses=st.lists(
        st.dictionaries(st.sampled_from(S[:18]), st.floats(0.05, 1.0), min_size=1, max_size=3),
        min_size=1,
        max_size=6,
    ),
    arrivals=st.lists(st.sampled_from([0.0, 0.5, 1.5, 3.0]), min_size=6, max_size=6),
    batch=st.integers(1, 3),
    spec=st.sampled_from(["gittins", "serpt", "gittins:starvation=3,quantum=2"]),
)
def test_skipping_to_the_horizon_runs_the_same_steps(masses, arrivals, batch, spec):
    """Requests longer than their distribution says, too (the tail rule)."""

    def trace():
        return [dview(i, m, arrivals[i], output=max(m) + (i % 3) * 7) for i, m in enumerate(masses)]

    every_step = run(make_policy(spec), trace(), batch=batch, dt=0.5)
    skipping = run(make_policy(spec), trace(), batch=batch, dt=0.5, skip=True)
    assert skipping == every_step


# ---------------------------------------------------------------- both engines

PROFILE = StepTimeProfile(
    name="unit",
    source="first-principles",
    c0_s=1.0,
    prefill_token_s=0.0,
    prefill_sq_s=0.0,
    decode_req_s=0.0,
    decode_ctx_token_s=0.0,
)


def dist_trace(n: int, seed: int, burst: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "request_id": np.arange(100, 100 + n),
            "arrival_s": np.zeros(n) if burst else np.sort(rng.uniform(0, 30, n)),
            "prompt_tokens": rng.integers(4, 40, n),
            "output_tokens": rng.integers(1, 120, n),
        }
    )
    out, _ = oracle_dist(df, sigma=0.8, noise=0.6, seed=seed)
    return out


@pytest.mark.parametrize("spec", ["gittins", "serpt"])
def test_simulator_with_one_seat_serves_in_index_order(spec):
    df = dist_trace(12, seed=4)
    res = simulate(df, spec, PROFILE, EngineConfig(max_num_seqs=1, num_gpu_blocks=1000))
    req = res.requests
    assert (req["status"] == "finished").all()
    assert (req["tokens_generated"] == req["output_tokens"]).all()
    # One seat, vLLM V1: the head of the waiting queue by its key at age 0 runs to the end.
    policy = make_policy(spec)
    views = views_from_trace(df)
    policy.prepare(views)
    expected = [views[i].request_id for i in order(policy, views)]
    ids = in_policy_order(df)["request_id"].to_numpy()
    served = req.sort_values("first_scheduled_s", kind="stable")["request_id"].tolist()
    assert served == [int(ids[i]) for i in expected]


def test_paper_mode_preempts_at_the_support_point_and_fast_forward_agrees():
    # A: 2 or 72 tokens (really 72), B: 19. One seat, all sorted every step (vllm-ltr).
    # A runs first; at age 2 its index falls to 1/70 < 1/19 and B takes the seat.
    df = pd.DataFrame(
        {
            "request_id": [0, 1],
            "arrival_s": [0.0, 0.0],
            "prompt_tokens": [8, 8],
            "output_tokens": [72, 19],
        }
    )
    for col, a, b in zip(
        dist_columns("a"), probs({2: 0.5, 72: 0.5}), probs({19: 1.0}), strict=True
    ):
        df[col] = [a, b]
    runs = [
        simulate(
            df,
            "gittins",
            PROFILE,
            EngineConfig(
                max_num_seqs=1, num_gpu_blocks=100, engine_mode="ltr-paper", fast_forward=ff
            ),
        )
        for ff in (True, False)
    ]
    pd.testing.assert_frame_equal(runs[0].requests, runs[1].requests)
    r = runs[0].requests.set_index("request_id")
    # step 0: A's prefill and first token; step 1: A's 2nd token; steps 2-20: B.
    assert r.loc[0, "first_token_s"] == 1.0
    assert r.loc[1, "first_scheduled_s"] == 2.0 and r.loc[1, "finish_s"] == 21.0
    assert r.loc[0, "finish_s"] == 21.0 + 70 and r.loc[0, "max_token_gap_s"] == 20.0


@pytest.mark.parametrize("mode", ["vllm-v1", "ltr-paper"])
@pytest.mark.parametrize("spec", ["gittins", "serpt:starvation=20,quantum=4"])
def test_simulator_fast_forward_changes_nothing(mode, spec):
    df = dist_trace(40, seed=7, burst=False)
    cfg = {
        "max_num_seqs": 4,
        "max_num_batched_tokens": 64,
        "num_gpu_blocks": 40,
        "engine_mode": mode,
    }
    a = simulate(df, spec, PROFILE, EngineConfig(fast_forward=True, **cfg)).requests
    b = simulate(df, spec, PROFILE, EngineConfig(fast_forward=False, **cfg)).requests
    pd.testing.assert_frame_equal(a, b)
    assert (a["status"] == "finished").all()


@dataclass(eq=False)
class StandInRequest:
    """The attributes of vllm.v1.request.Request that live's tracker reads."""

    request_id: str
    num_prompt_tokens: int = 10
    num_output_tokens: int = 0
    priority: int = 0
    sampling_params: object | None = None
    finished: bool = False
    extra: dict = field(default_factory=dict)

    def is_finished(self) -> bool:
        return self.finished


@pytest.mark.parametrize("spec", ["gittins", "serpt", "gittins:starvation=3,quantum=2"])
def test_live_tracker_ranks_as_the_simulator_does(spec):
    """Tags made as live.run makes them (feature_columns, through the extra_args codec),
    a tracker over stand-in requests, and the simulator's views of the same trace: the
    same policy spec orders them the same, step after step, ages and all."""
    df = in_policy_order(dist_trace(10, seed=11, burst=False))
    sim_views = views_from_trace(df)
    sim_policy, live_policy = make_policy(spec), make_policy(spec)
    sim_policy.prepare(sim_views)  # live without a trace file: no prepare
    tracker = RequestTracker()
    reqs = {}
    cols = feature_columns(df)
    assert set(dist_columns("oracle")) <= set(cols)
    for i, row in enumerate(df.itertuples(index=False)):
        tag = RequestTag(
            i,
            float(row.arrival_s),
            int(row.output_tokens),
            {c: float(getattr(row, c)) for c in cols},
        )
        tag, _ = decode(encode(tag, RunTag(run="r")))
        reqs[str(i)] = StandInRequest(str(i), int(row.prompt_tokens))
        tracker.add(reqs[str(i)], tag, float(row.arrival_s))
    rng = np.random.default_rng(0)
    running: set[str] = set()
    for step in range(60):
        now = float(step)
        keys, _ = tracker.rank_keys(live_policy, now)
        live_order = sorted(keys, key=keys.__getitem__)
        sim_order = sorted(
            (v for v in sim_views if str(v.request_id) in keys),
            key=lambda v: (sim_policy.key(v, now), tie_key(v)),
        )
        assert live_order == [str(v.request_id) for v in sim_order]
        # a step: the best two run a token, the others wait; the views move alike
        chosen = live_order[:2]
        for vid in chosen:
            reqs[vid].num_output_tokens += 1
            v = sim_views[int(vid)]
            RequestCounters.on_scheduled(v, 1, now + 1.0, 1.0)
            v.tokens_generated += 1
            if v.tokens_generated >= v.output_tokens or rng.random() < 0.02:
                reqs[vid].finished = True
        for vid in keys:
            if vid not in chosen:
                v = sim_views[int(vid)]
                if v.running:
                    RequestCounters.on_preempted(v, now)
                RequestCounters.on_skipped(v, 1)
        running = {vid for vid in chosen if not reqs[vid].finished}
        tracker.after_step({vid: 1 for vid in chosen}, (), now, now + 1.0, running)
        for vid in chosen:
            if reqs[vid].finished:
                sim_views[int(vid)].running = False
        if not tracker.entries:
            break
    assert not tracker.entries or step == 59


def test_oracle_bins_hold_the_true_length():
    df = dist_trace(5, seed=1)
    exact, _ = oracle_dist(df, sigma=1e-6, noise=0.0)
    p = exact[dist_columns("oracle")].to_numpy()
    assert (p.argmax(axis=1) == bin_of(df["output_tokens"].to_numpy())).all()
