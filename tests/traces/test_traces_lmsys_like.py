"""The lmsys-like source: records fixed by (seed, index), its mix and means, its labels."""

from __future__ import annotations

import json
import string

import numpy as np
import pytest

from traces import lmsys_like as lm
from traces.build import build_trace
from traces.config import BuildConfig
from traces.io import read_trace, write_trace
from traces.lmsys_like import CATEGORIES, OUTPUT_CAP_TOKENS, PUBLISHED_MEANS, generate_record
from traces.lmsys_like_text import LENGTH_SLOTS

COMPARED = ["record_id", "prompt", "prompt_tokens", "output_tokens", "category", "len_mu"]


def build(**kw):
    return build_trace(BuildConfig(source="lmsys-like", **{"burst": True, **kw}))


@pytest.fixture(scope="module")
def big():
    """3,000 records: enough for shares and means, quick to make and count."""
    return build(num_requests=3000, seed=0)


def test_a_record_depends_on_seed_and_index_only():
    assert generate_record(0, 17) == generate_record(0, 17)
    assert generate_record(0, 17).prompt != generate_record(1, 17).prompt
    assert generate_record(0, 17).prompt != generate_record(0, 18).prompt


def test_every_template_has_a_median_or_asks_for_a_length():
    asks = set(LENGTH_SLOTS)
    plain = (lm._CHITCHAT, lm._FACTUAL_QA, lm._CODING, lm._CREATIVE, lm._ROLEPLAY)
    for text, median, sigma in [
        t for table in (*plain, lm._LISTS, lm._MATH, lm._BUSINESS) for t in table
    ]:
        slots = {s for _, s, _, _ in string.Formatter().parse(text) if s}
        assert (median is None) == bool(slots & asks), text
        assert median is None or (median > 0 and sigma > 0), text
    for text, ratio, floor, sigma in (*lm._SUMMARIZE, *lm._CODING_PASTED, *lm._TRANSLATE):
        slots = {s for _, s, _, _ in string.Formatter().parse(text) if s}
        assert bool(slots & asks) or (max(ratio, floor) > 0 and sigma > 0), text


def test_same_seed_same_bytes(tmp_path):
    paths = []
    for name in ("a", "b"):
        res = build(num_requests=200, seed=4, rate=3.0, burst=False)
        paths.append(tmp_path / f"{name}.parquet")
        write_trace(res.df, paths[-1], res.meta)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    other = build(num_requests=200, seed=5).df
    assert (other["prompt"] != read_trace(paths[0])[0]["prompt"]).mean() > 0.8


def test_offset_and_limit_give_the_same_records_as_a_longer_build():
    full = build(limit=300, seed=2).df
    part = build(offset=120, limit=60, seed=2).df
    expected = full.iloc[120:180].reset_index(drop=True)
    assert part[COMPARED].equals(expected[COMPARED])
    by_n = build(offset=120, num_requests=60, seed=2).df  # -n without --limit: same records
    assert by_n[COMPARED].equals(expected[COMPARED])


def test_disjoint_ranges_are_disjoint_records():
    train = build(offset=0, limit=400, seed=0).df
    test = build(offset=400, limit=400, seed=0).df
    assert not set(train["record_id"]) & set(test["record_id"])
    long_train = set(train.loc[train["prompt_tokens"] > 40, "prompt"])
    long_test = set(test.loc[test["prompt_tokens"] > 40, "prompt"])
    assert long_train and long_test and not long_train & long_test


def test_category_mix_and_means_match_the_published_targets(big):
    df = big.df
    shares = df["category"].value_counts(normalize=True)
    for category in CATEGORIES:
        assert abs(shares[category.name] - category.share) < 0.025, category.name
    for column, target in PUBLISHED_MEANS.items():
        mean = df[column].mean()
        assert abs(mean - target) < 0.1 * target, (column, mean, target)
    out = df["output_tokens"].to_numpy()
    p50, p99 = np.percentile(out, [50, 99])
    assert p99 > 5 * p50  # heavy-tailed
    assert out.min() >= 1 and out.max() <= OUTPUT_CAP_TOKENS


def test_len_mu_and_sigma_are_the_parameters_of_each_draw(big):
    df = big.df
    assert str(df["len_mu"].dtype) == "float64" and str(df["len_sigma"].dtype) == "float64"
    z = (np.log(df["output_tokens"]) - df["len_mu"]) / df["len_sigma"]
    for name, zs in z.groupby(df["category"]):
        assert len(zs) > 100
        assert abs(zs.mean()) < 0.15, name  # log(output) centred on mu, in units of sigma
        assert 0.8 < zs.std() < 1.2, name
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.06
    # the prompt says what it is about: every coding prompt names code, a language or an error
    coding = df.loc[df["category"] == "coding", "prompt"].str.lower()
    cues = "|".join(["code", "program", "function", "def ", "error", "sql", "bash"])
    cues += "|python|javascript|java|c\\+\\+|go|rust|typescript|c#|php"
    assert coding.str.contains(cues).all()


def test_metadata_and_columns_say_synthetic(big):
    df, meta = big.df, big.meta
    assert meta["source"] == "lmsys-like" and meta["synthetic"] is True
    assert meta["tokenizer"] == "cl100k_base" and meta["path"] is None
    params = meta["lmsys_like"]
    assert params["output_cap_tokens"] == OUTPUT_CAP_TOKENS
    assert params["category_shares"] == {c.name: c.share for c in CATEGORIES}
    assert "response" not in df.columns  # output lengths are drawn, there is no reply text
    assert (df["source"] == "lmsys-like").all() and str(df["category"].dtype) == "string"
    assert abs(sum(c.share for c in CATEGORIES) - 1) < 1e-12


def test_filters_drop_by_record_and_keep_numbering():
    res = build(limit=200, max_output_tokens=100, seed=1)
    kept = res.df
    assert (kept["output_tokens"] <= 100).all()
    assert res.meta["rows_read"] == 200
    assert res.meta["rows_dropped"]["output_too_long"] == 200 - len(kept)
    full = build(limit=200, seed=1).df
    assert kept[COMPARED].equals(
        full[full["output_tokens"] <= 100].reset_index(drop=True)[COMPARED]
    )


def test_build_and_show_through_the_cli(run_cli, tmp_path):
    out = tmp_path / "t.parquet"
    args = ["build", "--source", "lmsys-like", "-n", 50, "--rate", 4, "--seed", 3, "-o", out]
    r = run_cli(*args)
    assert r.rc == 0, r.err
    df, meta = read_trace(out)
    assert len(df) == 50 and meta["synthetic"] is True
    shown = run_cli("show", out)
    assert shown.rc == 0 and "YES" in shown.out and "requests per category" in shown.out
    summary = json.loads(run_cli("show", out, "--json").out)
    assert summary["synthetic"] is True and abs(sum(summary["categories"].values()) - 1) < 1e-9


def one_error_line(result, *fragments: str) -> None:
    assert result.rc == 2, (result.rc, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "2"], "--source lmsys-like needs -n or --limit"),
        (["-n", "5"], "--source lmsys-like has no timestamps: give --rate"),
        (["-n", "5", "--rate", "2", "--path", "x.json"], "reads no file: drop --path"),
        (["-n", "5", "--rate", "2", "--model", "m"], "--model does not apply"),
        (["-n", "5", "--rate", "2", "--prompt-dist", "fixed:1"], "--prompt-dist does not apply"),
        (["-n", "5", "--time-scale", "2"], "--time-scale scales a source's own timestamps"),
        (["-n", "5", "--rate", "2", "--offset", "-1"], "--offset must be >= 0"),
        (["-n", "5", "--rate", "2", "--limit", "0"], "--limit must be >= 1"),
        (["-n", "10", "--limit", "5", "--rate", "2"], "-n 10: only 5 requests remain"),
        (["-n", "5", "--rate", "2", "--tokenizer", "bert"], "unknown tokenizer 'bert'"),
    ],
)
def test_bad_flags_are_one_line_errors(run_cli, tmp_path, args, message):
    r = run_cli("build", "-s", "lmsys-like", *args, "-o", tmp_path / "t.parquet")
    one_error_line(r, message)


def test_synthetic_source_still_refuses_offset(run_cli, tmp_path):
    r = run_cli(
        "build", "-s", "synthetic", "-n", 5, "--rate", 2, "--prompt-dist", "fixed:1",
        "--output-dist", "fixed:1", "--offset", 3, "-o", tmp_path / "t.parquet",
    )  # fmt: skip
    one_error_line(r, "--offset/--limit do not apply to --source synthetic")
