"""benchmarks/gpu_curves.py without a Vidur checkout: per-rank GEMM shapes of a measured row
by hand, the curve fit recovering a known curve, the all-reduce fit recovering a known
latency and bandwidth, and a one-line error for a folder that is not a checkout."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "gpu_curves_bench", ROOT / "benchmarks/gpu_curves.py"
)
gc = importlib.util.module_from_spec(_spec)
sys.modules["gpu_curves_bench"] = gc
_spec.loader.exec_module(gc)


def _row(tp, n, **times_ms):
    row = {"num_tensor_parallel_workers": tp, "num_tokens": n, "n_embd": 8192, "n_head": 64,
           "n_kv_head": 8, "n_expanded_embd": 28672, "use_gated_mlp": True}
    for op in gc.OPS:
        row[f"time_stats.{op}.median"] = times_ms.get(op, 1.0)
    return row


def test_per_rank_shapes_of_a_measured_row():
    ops = gc.operators(pd.DataFrame([_row(8, 16, mlp_up_proj=2.0)]), "m").set_index("op")
    # 64 heads of 128 over 8 ranks: 8 query heads and 1 KV head each
    assert (ops.loc["attn_pre_proj", "k"], ops.loc["attn_pre_proj", "m"]) == (8192, (8 + 2) * 128)
    assert (ops.loc["attn_post_proj", "k"], ops.loc["attn_post_proj", "m"]) == (1024, 8192)
    assert (ops.loc["mlp_up_proj", "k"], ops.loc["mlp_up_proj", "m"]) == (8192, 2 * 3584)
    assert (ops.loc["mlp_down_proj", "k"], ops.loc["mlp_down_proj", "m"]) == (3584, 8192)
    assert ops.loc["mlp_up_proj", "t"] == pytest.approx(2e-3)  # Vidur records milliseconds
    # 16 ranks for 8 KV heads: replicated, one per rank
    wide = gc.operators(pd.DataFrame([_row(16, 1)]), "m").set_index("op")
    assert wide.loc["attn_pre_proj", "m"] == (4 + 2) * 128


def test_the_fit_recovers_a_known_curve():
    truth = gc.LinearCurve(gc.KNOTS, tuple(1e14 * (1 + np.arange(13)) ** 1.5), 2e12, 5e-6)
    rows = [{"n": n, "k": k, "m": m} for n in (1, 4, 16, 64, 256, 1024, 4096)
            for k, m in ((4096, 12288), (4096, 4096), (11008, 4096), (8192, 1024))]
    ops = pd.DataFrame(rows)
    ops["t"] = truth.gemm_s(ops["n"].to_numpy(float), ops["k"].to_numpy(float),
                            ops["m"].to_numpy(float))
    got = gc.fit_linear(ops, 1e15, 3e12)
    pred = got.gemm_s(ops["n"].to_numpy(float), ops["k"].to_numpy(float), ops["m"].to_numpy(float))
    assert np.median(gc.abs_err_pct(pred, ops["t"].to_numpy())) < 1.0
    assert got.weight_bandwidth_bytes_s == pytest.approx(2e12, rel=0.02)


def test_the_all_reduce_fit_recovers_latency_and_bandwidth():
    sizes = np.array([2048, 1 << 16, 1 << 20, 1 << 24, 1 << 26, 1 << 28])
    rows = [{"collective": "all_reduce", "num_workers": tp, "devices_per_node": 8, "size": b,
             "time_stats.all_reduce.median": (20e-6 + b / 1e11) * 1e3}
            for tp in (2, 4) for b in sizes]
    # a two-node row is left out
    rows.append({**rows[0], "num_workers": 16, "time_stats.all_reduce.median": 99.0})
    curves, errors = gc.fit_allreduce(pd.DataFrame(rows))
    assert set(curves) == {2, 4}
    assert curves[2].latency_s == pytest.approx(20e-6, rel=1e-3)
    assert curves[2].bandwidth_bytes_s == pytest.approx(1e11, rel=1e-3)
    assert errors[4] < 0.1


def test_not_a_checkout_is_one_line(tmp_path, capsys):
    assert gc.main(["--vidur", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --vidur") and len(err.splitlines()) == 1
