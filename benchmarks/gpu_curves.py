"""Per-GPU curves from public kernel measurements (microsoft/vidur's data/profiling): derive
each GPU's linear-layer curve (achieved GEMM FLOP/s by token count, weight bandwidth, fixed
kernel time) from some models, predict a held-out model's measured operator times, derive
all-reduce latency and bandwidth per interconnect and TP size, and print the errors.

    python benchmarks/gpu_curves.py --vidur CHECKOUT [--write]

CHECKOUT: a clone of microsoft/vidur (a work tree, or a bare git directory: files are read
at HEAD). --write: write sim/data/gpu_curves.json atomically with the provenance (repo, the
commit read, paths). Exit 0; bad input: one line, exit 2.

Linear operators (mlp.csv): the QKV and output projections and the gated MLP's up and down
projections of each (tokens, TP) row, with per-rank shapes from the row's n_head,
n_kv_head, n_embd, n_expanded_embd; their median times. Model of one GEMM (sim/gpu_curves.py):
kernel_s + max(2nKN / F(n), bytes / BW), F monotone in n, knots at powers of two; fitted by
least squares on log time. Attention (attention.csv) is not in the snapshot this was derived
from (large files absent), so attention keeps the datasheet roofline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from sim.gpu_curves import FACTS, AllreduceCurve, LinearCurve
from sim.hardware import load_gpu
from sim.roofline import load_factors
from traces.io import atomic_write

REPO = "microsoft/vidur"
OUT = Path(__file__).resolve().parents[1] / "sim" / "data" / FACTS
# Vidur's device names -> the GPU table's (Vidur's A100 is the 80 GB part; its H100 the SXM).
GPUS = {"h100": "H100-SXM", "a100": "A100-80GB", "a40": "A40"}
TRAIN = ("meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-70b-hf")
HELD_OUT = "codellama/CodeLlama-34b-Instruct-hf"
# Single-node all-reduce measurements per GPU (DGX: NVSwitch).
NETWORK = {"H100-SXM": "h100_dgx", "A100-80GB": "a100_dgx"}
OTHER_NETWORKS = ("h100_pairwise_nvlink", "a100_pairwise_nvlink")
KNOTS = tuple(float(2**i) for i in range(13))  # 1 .. 4096 tokens, Vidur's range
OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
MAX_ALLREDUCE_BYTES = 64 * 2**20


class CurvesError(ValueError):
    """Bad checkout or file."""


class Checkout:
    """Files of a Vidur clone, from a work tree or (bare) git directory at HEAD."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tree = (root / "data" / "profiling").is_dir()
        if not self.tree and not (root / "HEAD").is_file():
            raise CurvesError(f"--vidur {root}: neither a vidur work tree nor a git directory")
        git = ["git", "-C", str(root)] if self.tree else ["git", f"--git-dir={root}"]
        self.git = git
        try:
            self.commit = subprocess.run(
                [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            self.commit = "unknown (not a git checkout)"

    def csv(self, path: str) -> pd.DataFrame:
        if self.tree:
            try:
                return pd.read_csv(self.root / path)
            except OSError as e:
                raise CurvesError(f"--vidur {self.root}: {path}: {e.strerror}") from None
        r = subprocess.run([*self.git, "show", f"HEAD:{path}"], capture_output=True, text=True)
        if r.returncode != 0:
            raise CurvesError(f"--vidur {self.root}: {path}: not in HEAD")
        return pd.read_csv(io.StringIO(r.stdout))


def mlp_path(gpu: str, model: str) -> str:
    return f"data/profiling/compute/{gpu}/{model}/mlp.csv"


def operators(df: pd.DataFrame, model: str) -> pd.DataFrame:
    """One row per (tokens, TP, operator): per-rank GEMM shape and measured median time."""
    n_rows = []
    for r in df.to_dict("records"):
        tp, n = int(r["num_tensor_parallel_workers"]), float(r["num_tokens"])
        h, nh, nkv = r["n_embd"], r["n_head"], r["n_kv_head"]
        inter, hd = r["n_expanded_embd"], r["n_embd"] / r["n_head"]
        gates = 2 if str(r["use_gated_mlp"]).lower() == "true" else 1
        kv = max(nkv // tp, 1)  # KV heads are replicated when fewer than ranks
        shapes = {
            "attn_pre_proj": (h, (nh // tp + 2 * kv) * hd),
            "attn_post_proj": (nh // tp * hd, h),
            "mlp_up_proj": (h, gates * inter / tp),
            "mlp_down_proj": (inter / tp, h),
        }
        for op, (k, m) in shapes.items():
            t = float(r[f"time_stats.{op}.median"]) * 1e-3  # Vidur records milliseconds
            n_rows.append({"model": model, "tp": tp, "n": n, "op": op, "k": k, "m": m, "t": t})
    return pd.DataFrame(n_rows)


def _curve(p: np.ndarray) -> LinearCurve:
    # F at the knots: rising (softplus steps) from the first, so the fit cannot bend it down
    # where decode is memory-bound and the data say nothing about F.
    steps = np.log1p(np.exp(p[3:]))
    logf = p[2] + np.concatenate([[0.0], np.cumsum(steps)])
    return LinearCurve(KNOTS, tuple(np.exp(logf)), float(np.exp(p[1])), float(np.exp(p[0])))


def fit_linear(ops: pd.DataFrame, peak_flops: float, bandwidth: float) -> LinearCurve:
    """Least squares on log time over the given operators."""
    n, k, m, t = (ops[c].to_numpy(float) for c in ("n", "k", "m", "t"))
    p0 = np.r_[np.log(5e-6), np.log(0.8 * bandwidth), np.log(0.3 * peak_flops), np.full(12, -3.0)]

    def resid(p):
        return np.log(_curve(p).gemm_s(n, k, m)) - np.log(t)

    return _curve(least_squares(resid, p0, x_scale="jac").x)


def datasheet_times(ops: pd.DataFrame, gpu: str) -> np.ndarray:
    """The datasheet roofline's time for each operator (peaks x the global shares)."""
    spec, f = load_gpu(gpu), load_factors().factors
    n, k, m = (ops[c].to_numpy(float) for c in ("n", "k", "m"))
    flops = 2 * n * k * m / (spec.flops("bf16") * f["gemm_flops_share"])
    nbytes = (
        2 * (k * m + n * k + n * m) / (spec.memory_bandwidth_bytes_s * f["memory_bandwidth_share"])
    )
    return np.maximum(flops, nbytes)


def abs_err_pct(pred: np.ndarray, actual: np.ndarray) -> np.ndarray:
    return 100.0 * np.abs(pred / actual - 1.0)


def fit_allreduce(df: pd.DataFrame) -> tuple[dict[int, AllreduceCurve], dict[int, float]]:
    """Per TP size (single node only): latency and bandwidth, and the median |error| %."""
    df = df[(df["collective"] == "all_reduce") & (df["num_workers"] <= df["devices_per_node"])]
    df = df[df["size"] <= MAX_ALLREDUCE_BYTES]
    curves, errors = {}, {}
    for tp, g in df.groupby("num_workers"):
        g = g.groupby("size")["time_stats.all_reduce.median"].median().reset_index()
        b, t = g["size"].to_numpy(float), g["time_stats.all_reduce.median"].to_numpy(float) * 1e-3

        def resid(p, b=b, t=t):
            return np.log(np.exp(p[0]) + b / np.exp(p[1])) - np.log(t)

        p = least_squares(resid, np.log([2e-5, 1e11])).x
        c = AllreduceCurve(int(tp), float(np.exp(p[0])), float(np.exp(p[1])))
        curves[int(tp)] = c
        errors[int(tp)] = float(np.median(abs_err_pct(c.time_s(b), t)))
    return curves, errors


def derive(co: Checkout) -> tuple[dict, list[dict]]:
    """The facts file's content and the rows of the printed table."""
    gpus, rows, datasheet = {}, [], []
    paths = []
    for vidur_gpu, name in GPUS.items():
        spec = load_gpu(name)
        train = pd.concat([operators(co.csv(mlp_path(vidur_gpu, m)), m) for m in TRAIN])
        held = operators(co.csv(mlp_path(vidur_gpu, HELD_OUT)), HELD_OUT)
        paths += [mlp_path(vidur_gpu, m) for m in (*TRAIN, HELD_OUT)]
        curve = fit_linear(train, spec.flops("bf16"), spec.memory_bandwidth_bytes_s)
        pred = curve.gemm_s(
            held["n"].to_numpy(float), held["k"].to_numpy(float), held["m"].to_numpy(float)
        )
        err = abs_err_pct(pred, held["t"].to_numpy(float))
        ds = abs_err_pct(datasheet_times(held, name), held["t"].to_numpy(float))
        datasheet.append(ds)
        decode, prefill = held["n"] <= 64, held["n"] >= 512
        entry = {
            "vidur_device": vidur_gpu,
            "derived_from": list(TRAIN),
            "linear": {
                "tokens": list(curve.tokens),
                "flops_s": [round(x, -6) for x in curve.flops_s],
                "gemm_share_of_peak": [round(x / spec.flops("bf16"), 4) for x in curve.flops_s],
                "weight_bandwidth_bytes_s": round(curve.weight_bandwidth_bytes_s, -6),
                "bandwidth_share_of_peak": round(
                    curve.weight_bandwidth_bytes_s / spec.memory_bandwidth_bytes_s, 4
                ),
                "kernel_s": round(curve.kernel_s, 9),
            },
            "held_out": {
                "model": HELD_OUT,
                "operators": int(len(held)),
                "median_abs_error_pct": round(float(np.median(err)), 2),
                "p90_abs_error_pct": round(float(np.quantile(err, 0.9)), 2),
                "decode_median_abs_error_pct": round(float(np.median(err[decode])), 2),
                "prefill_median_abs_error_pct": round(float(np.median(err[prefill])), 2),
                "datasheet_median_abs_error_pct": round(float(np.median(ds)), 2),
            },
        }
        net = NETWORK.get(name)
        if net:
            path = f"data/profiling/network/{net}/all_reduce.csv"
            paths.append(path)
            ar, ar_err = fit_allreduce(co.csv(path))
            entry["interconnect"] = f"{net} (Vidur's node type)"
            entry["allreduce"] = {
                str(tp): {
                    "latency_s": round(c.latency_s, 9),
                    "bandwidth_bytes_s": round(c.bandwidth_bytes_s, -6),
                    "median_abs_error_pct": round(ar_err[tp], 2),
                }
                for tp, c in ar.items()
            }
        gpus[name] = entry
        h = entry["held_out"]
        rows.append(
            {
                "gpu": name,
                "what": f"linear ops of {HELD_OUT.split('/')[1]} (held out)",
                "n": h["operators"],
                "median |err| %": h["median_abs_error_pct"],
                "p90 |err| %": h["p90_abs_error_pct"],
                "decode (<=64 tok) %": h["decode_median_abs_error_pct"],
                "prefill (>=512 tok) %": h["prefill_median_abs_error_pct"],
                "datasheet roofline %": h["datasheet_median_abs_error_pct"],
            }
        )
        for tp, v in entry.get("allreduce", {}).items():
            rows.append(
                {
                    "gpu": name,
                    "what": f"all-reduce TP {tp}: {v['latency_s'] * 1e6:.1f} us + "
                    f"bytes / {v['bandwidth_bytes_s'] / 1e9:.0f} GB/s",
                    "median |err| %": v["median_abs_error_pct"],
                }
            )
    for net in OTHER_NETWORKS:
        path = f"data/profiling/network/{net}/all_reduce.csv"
        ar, ar_err = fit_allreduce(co.csv(path))
        for tp, c in ar.items():
            rows.append(
                {
                    "gpu": f"({net})",
                    "what": f"all-reduce TP {tp}: {c.latency_s * 1e6:.1f} us + "
                    f"bytes / {c.bandwidth_bytes_s / 1e9:.0f} GB/s (not shipped)",
                    "median |err| %": round(ar_err[tp], 2),
                }
            )
    all_ds = np.concatenate(datasheet)
    facts = {
        "_comment": "Derived facts, not Vidur's files: per-GPU curves fitted to Vidur's "
        "measured kernel times. Regenerate: python benchmarks/gpu_curves.py --vidur CHECKOUT "
        "--write. Times in s, rates in FLOP/s and bytes/s (16-bit GEMMs).",
        "source": {"repo": REPO, "commit": co.commit, "path": "data/profiling", "files": paths},
        "derived": dt.date.today().isoformat(),
        "gpus": gpus,
        "datasheet_only": {
            "what": "median |error| of the datasheet roofline (peaks x global shares of "
            "sim/data/roofline_factors.yaml) on the held-out model's linear operators, "
            "over the measured GPUs: what a GPU without measurements should expect",
            "median_abs_error_pct": round(float(np.median(all_ds)), 2),
        },
    }
    return facts, rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vidur", type=Path, required=True, help="a microsoft/vidur clone")
    ap.add_argument("--write", action="store_true", help=f"write {OUT.name}")
    args = ap.parse_args(argv)
    try:
        facts, rows = derive(Checkout(args.vidur))
    except CurvesError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(f"{REPO} @ {facts['source']['commit']}: curves from {', '.join(TRAIN)}")
        print(pd.DataFrame(rows).astype(object).fillna("").to_string(index=False))
    print(
        "datasheet only (no measurements), expected median |error| on linear operators: "
        f"{facts['datasheet_only']['median_abs_error_pct']:.1f}%"
    )
    if args.write:
        text = json.dumps(facts, indent=1) + "\n"
        atomic_write(OUT, lambda tmp: Path(tmp).write_text(text))
        print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
