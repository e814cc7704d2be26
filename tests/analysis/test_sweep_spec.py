"""A sweep spec is checked before anything runs: each mistake is one line naming the key,
and the grid it describes has stable run_ids."""

from __future__ import annotations

import pytest

from analysis.errors import AnalysisError
from analysis.grid import expand
from analysis.spec import parse_spec
from ltrsched.cli import main


def _set(spec: dict, dotted: str, value) -> dict:
    *path, last = dotted.split(".")
    node = spec
    for key in path:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return spec


_DELETE = object()

BAD = [
    ("engin", {"max_num_seqs": 8}, "engin: unknown key (did you mean engine?)"),
    ("engine.max_num_seq", 8, "engine.max_num_seq: unknown key (did you mean max_num_seqs?)"),
    ("trace.rat", [1, 2], "trace.rat: unknown key"),
    ("policy", [], "policy: empty list"),
    ("seeds", [], "seeds: empty list"),
    ("trace.rate", [], "trace.rate: empty list"),
    ("engine.max_num_seqs", "many", "engine.max_num_seqs: expected an integer, got 'many'"),
    ("engine.chunked_prefill", "yes", "engine.chunked_prefill: expected true/false"),
    ("trace.rate", ["fast"], "trace.rate: expected a number"),
    ("seeds", [0.5], "seeds: expected an integer"),
    ("policy_params.tau", {"a": 1}, "policy_params.tau: expected"),
    ("policy_params.quantum", [10], "policy_params.quantum: no policy spec uses {quantum}"),
    ("policy_params.starvation", _DELETE, "policy[1]: {starvation} has no values"),
    ("engine.seed", 3, "engine.seed: not allowed here (use the top-level `seeds` list)"),
    ("trace.seed", 3, "trace.seed: not allowed here"),
    (
        "policy",
        ["fcfs", "sjf-oracle:starvation={starvation}", "approx-oracle:tau={tau}", "nosuch"],
        "policy 'nosuch': unknown policy 'nosuch'",
    ),
    (
        "policy",
        ["fcfs", "sjf-oracle:starvation={starvation}", "approx-oracle:tau={tau}x"],
        "policy 'approx-oracle:tau=0.2x'",
    ),
    ("trace.rate", [-1], "trace: --rate must be a number > 0"),
    ("engine.max_num_seqs", 100000, "engine: --max-batched-tokens"),
    ("profile", "no-such-profile", "profile: --profile: no such file or bundled profile"),
    ("trace", _DELETE, "trace: missing"),
    ("engine.engine_mode", ["vllm-v1", "vllm-v1"], "engine.engine_mode: value 'vllm-v1' listed"),
]


@pytest.mark.parametrize(
    "key,value,message", BAD, ids=[b[0] + ":" + str(i) for i, b in enumerate(BAD)]
)
def test_bad_spec_is_one_line_naming_the_key(
    key, value, message, small_spec, write_spec, tmp_path, capsys
):
    path = write_spec(_set(small_spec, key, value))
    rc = main(["sweep", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert message in err, err
    assert not (tmp_path / "out").exists()


def test_not_a_mapping_and_bad_yaml(write_spec, tmp_path, capsys):
    for text, message in [("- fcfs\n", "expected a mapping"), ("trace: [\n", "not valid YAML")]:
        rc = main(["sweep", str(write_spec(text)), "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and message in err, err


def test_grid_size_and_stable_ids(small_spec):
    grid = expand(parse_spec(small_spec))
    # per seed and rate: fcfs + 2 starvation thresholds + 2 taus
    assert len(grid.runs) == 2 * 2 * 5 and len(grid.traces) == 4
    shuffled = dict(small_spec, policy=small_spec["policy"][::-1], seeds=[1, 0])
    shuffled["trace"] = dict(small_spec["trace"], rate=[90, 30])
    again = expand(parse_spec(shuffled))
    assert {r.run_id for r in grid.runs} == {r.run_id for r in again.runs}


def test_one_policy_two_spellings_is_one_run(small_spec):
    small_spec.update(
        policy=["approx-oracle:tau=0.5", "approx-oracle:seed=0,tau=0.50"],
        policy_params={},
        seeds=[0],
    )
    assert len(expand(parse_spec(small_spec)).runs) == 2  # one per rate


def test_trace_file_is_identified_by_content(small_spec, tmp_path):
    from traces.build import build_trace
    from traces.config import BuildConfig
    from traces.io import write_trace

    opts = {k: v for k, v in small_spec["trace"].items() if k != "rate"}
    res = build_trace(BuildConfig(**opts, rate=30.0))
    for name in ("a.parquet", "b.parquet"):
        write_trace(res.df, tmp_path / name, res.meta)
    ids = [
        expand(parse_spec(dict(small_spec, trace={"path": str(tmp_path / n)}))).runs[0].run_id
        for n in ("a.parquet", "b.parquet")
    ]
    assert ids[0] == ids[1]
    with pytest.raises(AnalysisError, match="trace.path: no such file"):
        expand(parse_spec(dict(small_spec, trace={"path": str(tmp_path / "c.parquet")})))


def test_defaults_spelled_out_are_the_same_run(small_spec):
    small_spec.update(seeds=[0])
    plain = {r.run_id for r in expand(parse_spec(small_spec)).runs}
    small_spec["engine"] = dict(small_spec["engine"], max_num_seqs=256, engine_mode="vllm-v1")
    assert {r.run_id for r in expand(parse_spec(small_spec)).runs} == plain
