"""Traces a new user hands in by mistake: each a one-line error naming the file, the row
or the column, never a traceback or a complaint about something else."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ltrsched.cli import main
from traces.errors import TraceError, shown
from traces.io import read_trace, write_trace


def raw_trace(path, **columns):
    """A Parquet file written around the schema checks, as another tool would."""
    base = {
        "request_id": np.arange(3),
        "arrival_s": [0.0, 0.5, 1.0],
        "prompt_tokens": [10, 20, 30],
        "output_tokens": [5, 6, 7],
    }
    pq.write_table(pa.Table.from_pandas(pd.DataFrame({**base, **columns})), path)
    return path


@pytest.mark.parametrize(
    ("ids", "needle"),
    [
        (["a", "b", "c"], "row 0: column request_id must hold integers (int64), got 'a'"),
        ([0.0, 1.5, 2.0], "row 1: column request_id must hold integers (int64), got 1.5"),
        ([0.0, np.nan, 2.0], "row 1: column request_id must hold integers (int64), got nan"),
    ],
)
def test_a_non_integer_request_id_is_one_line_naming_file_and_column(tmp_path, capsys, ids, needle):
    path = raw_trace(tmp_path / "ids.parquet", request_id=ids)
    assert main(["simulate", "--trace", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and needle in err, err


def test_whole_float_request_ids_still_run(tmp_path, capsys):
    path = raw_trace(tmp_path / "ids.parquet", request_id=[0.0, 1.0, 2.0])
    assert main(["simulate", "--trace", str(path), "--json"]) == 0
    assert '"completed": 3' in capsys.readouterr().out


def test_a_zero_row_trace_says_it_has_no_rows(tmp_path, capsys):
    path = tmp_path / "empty.parquet"
    # An empty frame's list column has no element type: the old check read it as bad hash_ids.
    pd.DataFrame(
        {c: [] for c in ("request_id", "arrival_s", "prompt_tokens", "output_tokens", "hash_ids")}
    ).to_parquet(path)
    with pytest.raises(TraceError, match=r"empty.parquet: trace has no rows$"):
        read_trace(path)
    assert main(["simulate", "--trace", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {path}: trace has no rows\n"


def test_a_directory_given_as_a_trace_names_the_directory(tmp_path, capsys):
    folder = tmp_path / "runs"
    folder.mkdir()
    raw_trace(folder / "inside.parquet")
    assert main(["simulate", "--trace", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {folder}: is a directory, not a trace file\n"


def test_nan_values_print_as_nan(tmp_path):
    path = raw_trace(tmp_path / "nan.parquet", arrival_s=[0.0, np.nan, 1.0])
    with pytest.raises(TraceError, match=r"row 1: arrival_s must be a number >= 0, got nan$"):
        read_trace(path)
    df = pd.DataFrame(
        {
            "request_id": [0, 1],
            "arrival_s": [0.0, 1.0],
            "prompt_tokens": [5, 5],
            "output_tokens": [3, 3],
            "session_id": [0, 0],
            "turn": [0, 1],
            "think_s": [0.0, np.nan],
        }
    )
    with pytest.raises(TraceError, match=r"think_s must be a number >= 0, got nan"):
        write_trace(df, tmp_path / "s.parquet", {})
    assert [shown(v) for v in (np.float64("nan"), np.int64(5), "r0", 1.5)] == [
        "nan",
        "5",
        "'r0'",
        "1.5",
    ]


def test_an_ltr_score_that_is_nan_names_the_row_not_a_bare_number():
    from policies import make_policy
    from policies.base import PolicyError
    from policies.views import views_from_trace

    df = pd.DataFrame(
        {
            "request_id": [7, 5],
            "arrival_s": [0.0, 1.0],
            "prompt_tokens": [5, 5],
            "output_tokens": [3, 3],
            "score_m": [1.0, np.nan],
        }
    )
    # request_id 5 arrives second: row 1 in arrival order, which is what the view knows
    with pytest.raises(PolicyError, match=r"'score_m' is NaN in row 1 of the trace \(rows in"):
        make_policy("ltr").prepare(views_from_trace(df))
