"""Small sweep specs for the analysis tests: synthetic traces of a few hundred requests,
so a whole grid runs in a second or two."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

SMALL = {
    "name": "small",
    "trace": {
        "source": "synthetic",
        "num_requests": 150,
        "prompt_dist": "uniform:low=10,high=600",
        "output_dist": "uniform:low=1,high=500",
        "rate": [30, 90],
    },
    "policy": [
        "fcfs",
        "sjf-oracle:starvation={starvation},quantum=10",
        "approx-oracle:tau={tau},seed={seed}",
    ],
    "policy_params": {"starvation": [20, 200], "tau": [0.2, 0.8]},
    "engine": {"num_gpu_blocks": 800},
    "seeds": [0, 1],
}


@pytest.fixture(scope="session")
def small_spec_template() -> dict:
    """The small spec, for fixtures wider than one test (do not change it)."""
    return copy.deepcopy(SMALL)


@pytest.fixture
def small_spec() -> dict:
    """A fresh copy of the small spec (20 runs over 4 traces), for a test to change."""
    return copy.deepcopy(SMALL)


@pytest.fixture
def write_spec(tmp_path):
    """write_spec(dict or text) -> path of a YAML spec in tmp_path."""

    def write(spec, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec))
        return path

    return write


# A sweep folder with every kind of run the report draws: rates x policies, starvation
# thresholds, approx-oracle taus, data generation, and one live run.
REPORT_SPECS = [
    {
        "name": "report-rates",
        "trace": dict(SMALL["trace"], num_requests=120, rate=[30, 90]),
        "policy": [
            "fcfs",
            "sjf-oracle",
            "sjf-oracle:starvation={starvation},quantum=10",
            "approx-oracle:tau={tau}",
        ],
        "policy_params": {"starvation": [20, 100], "tau": [0.3, 0.7]},
        "engine": {"num_gpu_blocks": 800},
    },
    {
        "name": "report-datagen",
        "trace": {k: v for k, v in SMALL["trace"].items() if k != "rate"} | {"burst": True},
        "policy": ["fcfs", "sjf-oracle"],
        "engine": {"num_gpu_blocks": 800, "stop_after": 40},
    },
]


@pytest.fixture(scope="session")
def report_sweep(tmp_path_factory) -> Path:
    """The sweep folder described by REPORT_SPECS, with a live run matched to fcfs at 90."""
    import json

    from analysis.dataset import read_results
    from analysis.spec import parse_spec
    from analysis.sweep import run_sweep

    out = tmp_path_factory.mktemp("report") / "sweep"
    for spec in REPORT_SPECS:
        run_sweep(parse_spec(copy.deepcopy(spec)), out, "serial")
    df = read_results(out)
    fcfs = df[(df["policy"] == "fcfs") & (df["trace_rate"] == 90)].iloc[0]
    live = out / "live" / "replay-fcfs-90"
    live.mkdir(parents=True)
    measured = {
        k: float(fcfs[k]) * 1.1
        for k in ("mean_latency_s", "p90_latency_s", "mean_ttft_s", "throughput_req_s")
    }
    live.joinpath("summary.json").write_text(
        json.dumps({"engine": "live", "policy": "fcfs", "trace": "copy-of-the-trace.parquet",
                    "trace_fingerprint": fcfs["trace_fingerprint"], **measured})
    )
    return out


@pytest.fixture(scope="session")
def report_html(report_sweep, tmp_path_factory) -> Path:
    """The report of report_sweep, written by `ltrsched report`."""
    from ltrsched.cli import main

    html = tmp_path_factory.mktemp("html") / "report.html"
    assert main(["report", str(report_sweep), "-o", str(html)]) == 0
    return html
