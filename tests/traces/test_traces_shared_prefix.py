"""--source shared-prefix: G system prompts x P questions, shuffled once, sent in a cycle."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_traces_cli import one_error_line

from traces.build import build_trace
from traces.config import BuildConfig
from traces.io import read_trace
from traces.prefix import hash_ids_from_token_ids, token_ids_from_hash_ids
from traces.summary import summarize


def build(**kw):
    return build_trace(BuildConfig(source="shared-prefix", **{"burst": True, **kw}))


def leading_common(a, b) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def test_lengths_ids_and_group_sharing():
    res = build(num_requests=12, num_groups=3, prompts_per_group=4, system_prompt_len=40,
                question_len=9, output_len=7)  # fmt: skip
    df = res.df
    assert (df["prompt_tokens"] == 49).all() and (df["output_tokens"] == 7).all()
    assert sorted(df["record_id"]) == sorted(f"g{g}-p{p}" for g in range(3) for p in range(4))
    assert (df["hash_ids"].map(len) == 4).all()  # ceil(49 / 16)
    group = df["record_id"].str.split("-").str[0]
    for i in range(12):
        for j in range(i + 1, 12):
            common = leading_common(df["hash_ids"][i], df["hash_ids"][j])
            # the system prompt's 2 full blocks (32 of its 40 tokens) within a group, else none
            assert common == (2 if group[i] == group[j] else 0)
    assert res.meta["synthetic"] is True and res.meta["hash_block_tokens"] == 16
    assert res.meta["shared_prefix"]["num_groups"] == 3 and res.meta["source"] == "shared-prefix"


def test_the_shuffled_prompts_are_sent_in_a_cycle():
    df = build(num_requests=25, num_groups=2, prompts_per_group=5).df
    ids = df["record_id"].tolist()
    assert len(set(ids[:10])) == 10  # every prompt once per cycle
    assert ids[10:20] == ids[:10] and ids[20:] == ids[:5]
    assert ids[:10] != sorted(ids[:10], key=lambda r: (int(r[1]), int(r.split("p")[1])))
    assert [list(h) for h in df["hash_ids"][10:20]] == [list(h) for h in df["hash_ids"][:10]]


def test_each_stage_starts_the_cycle_over():
    df = build(burst=False, stages="3x2,1x4", num_groups=2, prompts_per_group=2).df
    ids = df["record_id"].tolist()
    assert df["stage"].tolist() == [0] * 6 + [1] * 4
    assert ids[:4] == ids[6:10] and ids[4:6] == ids[:2]


def test_seeded_and_the_defaults_are_inference_perfs():
    a, b = build(num_requests=100, seed=1).df, build(num_requests=100, seed=1).df
    assert a["record_id"].tolist() == b["record_id"].tolist()
    other = build(num_requests=100, seed=2).df
    assert a["record_id"].tolist() != other["record_id"].tolist()
    assert a["hash_ids"][0][0] != other["hash_ids"][0][0]  # other token ids too
    assert (a["prompt_tokens"] == 150).all() and (a["output_tokens"] == 50).all()
    assert a["record_id"].nunique() == 100


def test_token_ids_rebuilt_from_hash_ids_share_what_the_trace_shares():
    df = build(num_requests=8, num_groups=2, prompts_per_group=4, hash_block_tokens=8,
               system_prompt_len=20, question_len=5).df  # fmt: skip
    rebuilt = [
        hash_ids_from_token_ids(token_ids_from_hash_ids(list(h), int(n), 8, 128_000), 8)
        for h, n in zip(df["hash_ids"], df["prompt_tokens"], strict=True)
    ]
    for i in range(8):
        for j in range(8):
            assert leading_common(rebuilt[i], rebuilt[j]) == leading_common(
                df["hash_ids"][i], df["hash_ids"][j]
            )


def test_reuse_share_is_the_cached_system_prompts_and_repeats(tmp_path):
    res = build(num_requests=30, num_groups=2, prompts_per_group=5)
    s = summarize(res.df, res.meta)
    # 10 distinct prompts of 150 tokens, 20 repeats; a group's first prompt hits nothing,
    # its other 4 hit the system prompt's 6 full blocks (96 tokens)
    assert s.prefix_reuse_share == pytest.approx((20 * 150 + 8 * 96) / (30 * 150))


def test_through_the_cli(run_cli, tmp_path):
    out = tmp_path / "t.parquet"
    r = run_cli("build", "-s", "shared-prefix", "--stages", "2x5", "--num-groups", "2", "-o", out)
    assert r.rc == 0, r.err
    df, meta = read_trace(out)
    assert len(df) == 10 and "prompt" not in df.columns
    shown = json.loads(run_cli("show", out, "--json").out)
    assert shown["synthetic"] and shown["hash_block_tokens"] == 16
    assert np.isclose(shown["prefix_reuse_share"], (0 * 150 + 8 * 96) / 1500)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-s", "shared-prefix", "--burst"], "--source shared-prefix needs -n or --stages"),
        (["-s", "shared-prefix", "--burst", "-n", "5", "--num-groups", "0"], "--num-groups must"),
        (["-s", "shared-prefix", "--burst", "-n", "5", "--offset", "3"], "--offset/--limit do"),
        (["-s", "shared-prefix", "--burst", "-n", "5", "--tokenizer", "llama3"], "--tokenizer:"),
        (["--burst", "--question-len", "5"], "--question-len does not apply to --source sharegpt"),
    ],
)
def test_mistakes_are_one_line_errors(run_cli, tmp_path, args, message):
    one_error_line(run_cli("build", *args, "-o", tmp_path / "t.pq"), message)
