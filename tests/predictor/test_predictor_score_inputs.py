"""`predictor score` refuses bad inputs before it imports torch (which takes seconds)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.predictor.conftest import synthetic_trace

PROBE = """
import sys
from ltrsched.cli import main
rc = main(sys.argv[1:])
print("rc", rc, "torch", "torch" in sys.modules)
"""


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PROBE, "predictor", "score", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("no-model", "no such model directory"),
        ("empty-model", "not a predictor model directory (no predictor.json)"),
        ("bare-trace", "the trace has no prompt text"),
        ("bad-name", "score name 'a b': use letters"),
    ],
)
def test_bad_inputs_fail_in_one_line_without_torch(tmp_path, case, needle):
    trace = synthetic_trace(tmp_path / "t.parquet", n=5, prompts=case != "bare-trace")
    model = tmp_path / "model"
    if case != "no-model":
        model.mkdir()
    if case in ("bare-trace", "bad-name"):  # a directory that looks like a model
        for name in ("predictor.json", "model.safetensors", "config.json"):
            (model / name).write_text("{}")
    extra = ["--name", "a b"] if case == "bad-name" else []
    r = run("--model", str(model), "--trace", str(trace), "-o", str(tmp_path / "o.parquet"), *extra)
    assert r.stdout.split() == ["rc", "2", "torch", "False"], (r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1 and needle in r.stderr, r.stderr
