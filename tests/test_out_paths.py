"""Every command that writes a directory says, in one line and before any work, that the
path it was given is a file (it ended in a FileExistsError traceback)."""

import numpy as np
import pandas as pd
import pytest

from ltrsched.cli import main
from traces.io import write_trace


@pytest.fixture
def paths(tmp_path):
    trace = tmp_path / "t.parquet"
    n = 20
    write_trace(
        pd.DataFrame(
            {
                "request_id": np.arange(n),
                "arrival_s": np.arange(n) * 0.1,
                "prompt_tokens": 10,
                "output_tokens": 5,
            }
        ),
        trace,
        {"source": "test"},
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: x\ntrace: {source: synthetic, n: 10}\npolicies: [fcfs]\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    return trace, spec, blocker


COMMANDS = {
    "simulate": lambda t, s, out: ["simulate", "--trace", str(t), "--out", str(out)],
    "sweep": lambda t, s, out: ["sweep", str(s), "-o", str(out)],
    "demo": lambda t, s, out: ["demo", "--train-records", "0", "-o", str(out)],
    "live replay": lambda t, s, out: [
        "live",
        "replay",
        "--trace",
        str(t),
        "--out",
        str(out),
        "--model",
        "none",
    ],
    "live tiny-model": lambda t, s, out: ["live", "tiny-model", str(out)],
    "predictor train": lambda t, s, out: [
        "predictor",
        "train",
        "--trace",
        str(t),
        "--out",
        str(out),
    ],
    "report --png": lambda t, s, out: [
        "report",
        str(t.parent),
        "-o",
        str(t.parent / "r.html"),
        "--png",
        str(out),
    ],
}


@pytest.mark.parametrize("name", list(COMMANDS))
@pytest.mark.parametrize("below", [False, True])
def test_an_output_directory_that_is_a_file_is_one_line(paths, capsys, name, below):
    trace, spec, blocker = paths
    out = blocker / "sub" if below else blocker
    rc = main(COMMANDS[name](trace, spec, out))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and str(blocker) in err, err
    assert "is a file, not a directory" in err and "Traceback" not in err
    assert blocker.read_text() == "not a directory"


def test_a_file_output_that_is_a_directory_is_one_line_naming_it(paths, capsys, tmp_path):
    trace, _, _ = paths
    (tmp_path / "adir").mkdir()
    rc = main(["trace", "show", str(trace)])  # a readable trace
    capsys.readouterr()
    run = tmp_path / "run"
    assert main(["simulate", "--trace", str(trace), "--out", str(run)]) == 0 and rc == 0
    capsys.readouterr()
    rc = main(["compare", "--sim", str(run), "--live", str(run), "--html", str(tmp_path / "adir")])
    err = capsys.readouterr().err
    assert rc == 2 and err == f"error: {tmp_path / 'adir'}: is a directory\n"
