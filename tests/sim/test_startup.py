"""`ltrsched simulate` loads only what it uses: no plotting, deep learning or cluster
libraries on its path, and not even pandas to print its help."""

import json
import subprocess
import sys
from pathlib import Path

from tests.sim.conftest import make_trace
from traces.io import write_trace

HEAVY = ("plotly", "torch", "transformers", "ray", "scipy", "vllm")
ROOT = Path(__file__).resolve().parents[2]


def loaded_after(argv: list[str]) -> set[str]:
    """Top-level modules in sys.modules after `ltrsched ARGV` in a fresh interpreter."""
    code = (
        "import sys, json\n"
        "from ltrsched.cli import main\n"
        f"rc = main({argv!r})\n"
        "print(json.dumps([rc, sorted({m.split('.')[0] for m in sys.modules})]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    rc, mods = json.loads(out.strip().splitlines()[-1])
    assert rc == 0
    return set(mods)


def test_simulate_help_loads_no_heavy_library_nor_pandas():
    mods = loaded_after(["simulate", "--help"])
    assert not mods & {*HEAVY, "pandas", "pyarrow"}, mods & {*HEAVY, "pandas", "pyarrow"}


def test_simulate_loads_no_plotly_torch_ray_or_scipy(tmp_path):
    trace = tmp_path / "t.parquet"
    write_trace(make_trace(20, 5.0, seed=1), trace, {"source": "test"})
    mods = loaded_after(["simulate", "--trace", str(trace), "--json", "--out", str(tmp_path / "r")])
    assert "simpy" in mods  # it did simulate
    assert not mods & set(HEAVY), mods & set(HEAVY)
