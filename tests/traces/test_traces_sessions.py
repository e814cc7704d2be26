"""Sessions (--turns all): one request per user turn, its prompt the conversation so far."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_traces_cli import one_error_line

from traces.build import build_trace
from traces.config import BuildConfig
from traces.errors import TraceError
from traces.io import read_trace, write_trace
from traces.prefix import hash_ids_from_token_ids
from traces.summary import summarize
from traces.tokenize import get_tokenizer
from traces.turns import all_exchanges


def msg(role: str, text: str) -> dict:
    return {"from": role, "value": text}


def talk(cid: str, *pairs: tuple[str, str]) -> dict:
    turns = [msg(r, t) for pair in pairs for r, t in zip(("human", "gpt"), pair, strict=True)]
    return {"id": cid, "conversations": turns}


A = talk(
    "A",
    ("What is a prefix cache?", "It keeps the KV blocks of prompts " * 6),
    ("Why chain the hashes?", "So that a block means the same thing only after the same blocks."),
    ("Thanks!", "You are welcome."),
)
B = {
    "id": "B",
    "conversations": [
        msg("gpt", "Hello, how can I help?"),
        msg("human", "Tell me a joke."),
        msg("gpt", "Why did the GPU cross the road? " * 3),
        msg("human", "Another one"),  # no reply: not a turn
    ],
}
C = {"id": "C", "conversations": [msg("human", "x"), msg("human", "y"), msg("gpt", "z")]}
D = {
    "id": "D",
    "conversations": [
        msg("human", "q0"),
        msg("gpt", "r0"),
        msg("system", "a system message breaks the alternation"),
        msg("human", "q1"),
        msg("gpt", "r1"),
    ],
}
E = talk("E", ("one", "uno"), ("two", "dos"))


@pytest.fixture
def chats(sharegpt_file):
    return str(sharegpt_file([A, B, C, D, E]))


def build(chats: str, **kw):
    return build_trace(BuildConfig(path=chats, turns="all", **{"rate": 1.0, **kw}))


def ids(texts: list[str]) -> list[list[int]]:
    return [i.tolist() for i in get_tokenizer("cl100k").encode_batch(texts)]


def test_all_exchanges_from_the_first_user_message_while_roles_alternate():
    pairs = all_exchanges(B["conversations"], "from", "value")
    assert [(p.prompt, p.response) for p in pairs] == [
        ("Tell me a joke.", B["conversations"][2]["value"])
    ]
    assert all_exchanges(C["conversations"], "from", "value") == "no_response"
    assert len(all_exchanges(D["conversations"], "from", "value")) == 1
    assert all_exchanges([msg("gpt", "hi")], "from", "value") == "no_user_turn"


def test_one_request_per_turn_with_the_conversation_so_far(chats):
    res = build(chats)
    df = res.df.sort_values(["session_id", "turn"]).reset_index(drop=True)
    assert df["record_id"].tolist() == ["A", "A", "A", "B", "D", "E", "E"]
    assert df["turn"].tolist() == [0, 1, 2, 0, 0, 0, 1]
    assert res.meta["rows_dropped"] == {"no_response": 1} and res.meta["rows_read"] == 5
    a = A["conversations"]
    assert df["prompt"][:3].tolist() == [a[0]["value"], a[2]["value"], a[4]["value"]]
    assert df["response"][:3].tolist() == [a[1]["value"], a[3]["value"], a[5]["value"]]
    message_ids = ids([m["value"] for m in a])
    for k in range(3):
        stream = [t for m in message_ids[: 2 * k + 1] for t in m]
        assert df["prompt_tokens"][k] == len(stream)
        assert df["output_tokens"][k] == len(message_ids[2 * k + 1])
        assert list(df["hash_ids"][k]) == hash_ids_from_token_ids(stream, 16)
        if k:
            user = len(message_ids[2 * k])
            assert df["prompt_tokens"][k] == (
                df["prompt_tokens"][k - 1] + df["output_tokens"][k - 1] + user
            )


def test_turns_arrive_think_s_after_the_previous_turn(chats):
    res = build(chats, seed=3)
    df = res.df
    assert np.all(np.diff(df["arrival_s"]) >= 0)
    assert df.loc[df["turn"] == 0, "think_s"].eq(0).all()
    assert df.loc[df["turn"] > 0, "think_s"].eq(5.0).all()  # the default, fixed:5
    for _, session in df.groupby("session_id"):
        t = session["arrival_s"].to_numpy()
        np.testing.assert_array_equal(t[1:], t[:-1] + session["think_s"].to_numpy()[1:])
    starts = df.loc[df["turn"] == 0].sort_values("session_id")["arrival_s"].to_numpy()
    assert np.all(np.diff(starts) > 0)  # sessions numbered by their first arrival
    assert res.meta["sessions"]["think_dist"] == "fixed:5"
    assert res.meta["sessions"]["num_sessions"] == 4


def test_think_dist_is_seeded_and_bytes_repeat(chats, tmp_path):
    paths = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    for path in paths:
        res = build(chats, think_dist="exponential:mean=2", seed=1)
        write_trace(res.df, path, res.meta)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    think = res.df.loc[res.df["turn"] > 0, "think_s"]
    assert think.nunique() == len(think) and (think > 0).all()
    other = build(chats, think_dist="exponential:mean=2", seed=2).df
    assert not np.array_equal(other.loc[other["turn"] > 0, "think_s"], think)


def test_n_shuffle_and_max_turns_count_sessions(chats):
    first_two = build(chats, num_requests=2).df
    assert sorted(set(first_two["record_id"])) == ["A", "B"] and len(first_two) == 4
    capped = build(chats, max_turns=1).df
    assert (capped["turn"] == 0).all() and len(capped) == 4
    shuffled = build(chats, num_requests=2, shuffle=True, seed=5).df
    assert shuffled["session_id"].nunique() == 2


def test_a_session_ends_at_its_first_dropped_turn(sharegpt_file):
    words = lambda k: " ".join(["word"] * k)  # noqa: E731 - k cl100k tokens
    f = talk("F", ("a", words(3)), ("b", words(30)), ("c", words(3)))
    res = build(str(sharegpt_file([f, E])), max_output_tokens=10)
    assert res.df.loc[res.df["record_id"] == "F", "turn"].tolist() == [0]
    assert res.df.loc[res.df["record_id"] == "E", "turn"].tolist() == [0, 1]
    assert res.meta["rows_dropped"] == {"output_too_long": 1, "session_cut": 1}


def test_stages_and_duration_time_sessions(chats):
    staged = build(chats, rate=None, stages="0.2x10,0.1x20").df
    first = staged[staged["turn"] == 0].sort_values("session_id")
    assert first["stage"].tolist() == [0, 0, 1, 1]  # 2 sessions a stage; turns follow
    for _, session in staged.groupby("session_id"):
        assert session["stage"].nunique() == 1
    full = build(chats, seed=4).df
    starts = np.sort(full.loc[full["turn"] == 0, "arrival_s"].to_numpy())
    cut = (starts[1] + starts[2]) / 2
    short = build(chats, duration_s=cut, seed=4).df
    kept = full[full["session_id"] < 2]  # whole sessions, their later turns past the cut too
    pd.testing.assert_frame_equal(short, kept.reset_index(drop=True).assign(
        request_id=np.arange(len(kept))))  # fmt: skip


def test_no_hash_ids_gives_the_same_counts(chats):
    hashed, plain = build(chats).df, build(chats, hash_ids=False).df
    assert "hash_ids" not in plain.columns
    pd.testing.assert_frame_equal(hashed.drop(columns="hash_ids"), plain)


def test_lmsys_turns_all(jsonl_file):
    conv = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "bye"},
        {"role": "assistant", "content": "goodbye"},
    ]
    path = jsonl_file([{"conversation_id": "x", "conversation": conv, "model": "m"}])
    res = build_trace(BuildConfig(source="lmsys", path=str(path), turns="all", burst=True))
    assert res.df["turn"].tolist() == [0, 1] and res.df["prompt"].tolist() == ["hi", "bye"]
    assert res.df["prompt_tokens"].tolist() == [1, 3]  # "hi" | "hello" "bye"


def test_show_reports_sessions_and_reuse(run_cli, chats, tmp_path):
    out = tmp_path / "t.parquet"
    r = run_cli("build", "--path", chats, "--turns", "all", "--rate", "1", "-o", out)
    assert r.rc == 0, r.err
    df, meta = read_trace(out)
    s = json.loads(run_cli("show", out, "--json").out)
    assert s["sessions"] == {"count": 4, "turns_mean": 1.75, "turns_max": 3}
    # a later turn reuses the earlier conversation's complete blocks, its output included
    prompt, output = df["prompt_tokens"].to_numpy(), df["output_tokens"].to_numpy()
    expected = 0
    for _, g in df.groupby("session_id"):
        idx = g.index.to_numpy()
        expected += sum((prompt[p] + output[p]) // 16 * 16 for p in idx[:-1])
    assert s["prefix_reuse_share"] == pytest.approx(expected / prompt.sum())
    assert summarize(df, meta).sessions["count"] == 4
    assert "sessions" in run_cli("show", out).out


# --- the contract on read and write ---


@pytest.fixture
def session_trace(chats):
    res = build(chats)
    return res.df, res.meta


def broken(df: pd.DataFrame, meta: dict, tmp_path, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        write_trace(df, tmp_path / "t.parquet", meta)


def test_turns_out_of_order_fail(session_trace, tmp_path):
    df, meta = session_trace
    df = df.copy()
    row = int(df.index[df["turn"] == 1][0])
    df.loc[row, "turn"] = 2
    broken(df, meta, tmp_path, rf"row {row} \(request_id {row}\): session \d+: turn 2 where turn 1")


def test_think_s_of_a_first_turn_and_negative_think_s_fail(session_trace, tmp_path):
    df, meta = session_trace
    first = df.copy()
    first.loc[0, "think_s"] = 1.0
    broken(first, meta, tmp_path, r"row 0 \(request_id 0\): turn 0 has think_s 1.0, not 0")
    negative = df.copy()
    negative.loc[df.index[df["turn"] == 1][0], "think_s"] = -1.0
    broken(negative, meta, tmp_path, "think_s must be a number >= 0")


def test_a_turn_shorter_than_the_conversation_before_it_fails(session_trace, tmp_path):
    df, meta = session_trace
    df = df.drop(columns="hash_ids")
    meta = {k: v for k, v in meta.items() if k != "hash_block_tokens"}
    row = int(df.index[df["turn"] == 1][0])
    df.loc[row, "prompt_tokens"] = 1
    broken(df, meta, tmp_path, rf"row {row} .*prompt_tokens 1 < \d+, the previous turn's")


def test_hash_ids_that_do_not_extend_the_previous_turn_fail(session_trace, tmp_path):
    df, meta = session_trace
    df = df.copy()
    row = int(df.index[(df["turn"] == 2) & (df["record_id"] == "A")][0])  # turn 1 has 3 blocks
    cells = df["hash_ids"].tolist()
    cells[row] = np.r_[cells[row][:1] + 1, cells[row][1:]]
    df["hash_ids"] = pd.Series(cells, dtype=object)
    broken(df, meta, tmp_path, rf"row {row} .*hash_ids do not start with the previous turn's")


def test_session_columns_come_together(session_trace, tmp_path):
    df, meta = session_trace
    broken(df.drop(columns="think_s"), meta, tmp_path, "missing think_s")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--turns", "some"], "--turns must be one of first, all, got 'some'"),
        (["--max-turns", "2"], "--max-turns needs --turns all"),
        (["--think-dist", "fixed:1"], "--think-dist needs --turns all"),
        (["--turns", "all", "--max-turns", "0"], "--max-turns must be >= 1"),
        (["--turns", "all", "--think-dist", "normal:1"], "--think-dist: unknown distribution"),
        (["--turns", "all", "--think-dist", "fixed:-1"], "--think-dist: fixed: s must be >= 0"),
        (["--turns", "all", "--think-dist", "exponential:mean=inf"], "must be finite"),
        (["-s", "lmsys-like", "-n", "5", "--turns", "all"], "--turns does not apply"),
    ],
)
def test_session_flag_mistakes(run_cli, tmp_path, args, message):
    one_error_line(run_cli("build", "--rate", "1", *args, "-o", tmp_path / "t.pq"), message)
