"""`ltrsched profile`: write a first-principles (roofline) step-time profile for any model
and GPU, and calibrate a profile from `vllm bench serve` results."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table

from sim.errors import SimError

Opt = typer.Option
app = typer.Typer(
    help="Step-time profiles: estimate one from a model config and a GPU (roofline), or fit "
    "one to your vllm bench serve results.",
    no_args_is_help=True,
)

# Batches the summary prices: (label, prefill tokens, decode requests, context per request).
_SAMPLES = (
    ("decode 1 x 1k ctx", 0, 1, 1024),
    ("decode 64 x 1k ctx", 0, 64, 1024),
    ("decode 256 x 1k ctx", 0, 256, 1024),
    ("prefill 2048 tokens", 2048, 0, 0),
    ("prefill 8192 tokens", 8192, 0, 0),
)


@app.command()
def roofline(
    model: Annotated[
        str,
        Opt(
            "--model",
            "-m",
            help="A Hugging Face config.json, a directory holding one, or a bundled model "
            "(see `ltrsched profile models`).",
        ),
    ],
    gpu: Annotated[
        str, Opt("--gpu", "-g", help="A GPU of the shipped table, or a YAML file of your own.")
    ],
    out: Annotated[Path, Opt("--out", "-o", help="Profile YAML to write.")],
    tp: Annotated[int, Opt("--tp", help="Tensor-parallel GPUs.")] = 1,
    dtype: Annotated[
        str | None,
        Opt(help="bf16, fp16 or fp8 (weights) [the config's dtype or quantization]."),
    ] = None,
    gpu_memory_utilization: Annotated[float, Opt(help="vLLM's share of GPU memory.")] = 0.9,
    max_model_len: Annotated[
        int | None, Opt(help="vLLM max_model_len [the config's max_position_embeddings].")
    ] = None,
    block_size: Annotated[int, Opt(help="Tokens per KV block.")] = 16,
    max_num_seqs: Annotated[int, Opt(help="vLLM max_num_seqs.")] = 256,
    max_num_batched_tokens: Annotated[
        int, Opt(help="vLLM max_num_batched_tokens (sizes the activation peak).")
    ] = 8192,
    factors: Annotated[
        Path | None, Opt(help="Efficiency factors file [sim/data/roofline_factors.yaml].")
    ] = None,
    name: Annotated[str | None, Opt(help="Profile name [model_gpu_tpN_dtype_roofline].")] = None,
    datasheet_only: Annotated[
        bool,
        Opt(
            "--datasheet-only",
            help="Price even a GPU with measured kernel curves at its datasheet peaks.",
        ),
    ] = False,
    measured_allreduce: Annotated[
        bool,
        Opt(
            "--measured-allreduce",
            help="Price all-reduces on the GPU's measured NCCL collective (where measured) "
            "instead of the fitted latency and the link's datasheet rate.",
        ),
    ] = False,
) -> None:
    """Estimate a step-time profile from FLOPs and bytes (an estimate, not a measurement)."""
    from sim.profile import profile_from_dict
    from sim.roofline import build_roofline, load_factors, profile_header, write_profile

    prof = build_roofline(
        model,
        gpu,
        tp=tp,
        dtype=dtype,
        gpu_memory_utilization=gpu_memory_utilization,
        max_model_len=max_model_len,
        block_size=block_size,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens,
        factors=load_factors(factors) if factors else None,
        name=name,
        measured_curves=not datasheet_only,
        measured_allreduce=measured_allreduce,
    )
    # Every option spelled out, so the header's command remakes the file whatever the defaults.
    given = [
        ("--model", model),
        ("--gpu", gpu),
        ("--tp", tp),
        ("--dtype", dtype),
        ("--gpu-memory-utilization", f"{gpu_memory_utilization:g}"),
        ("--max-model-len", max_model_len),
        ("--block-size", block_size),
        ("--max-num-seqs", max_num_seqs),
        ("--max-num-batched-tokens", max_num_batched_tokens),
        ("--factors", factors),
        ("--name", name),
        ("--datasheet-only", "" if datasheet_only else None),
        ("--measured-allreduce", "" if measured_allreduce else None),
        ("-o", out),
    ]
    command = " ".join(
        ["ltrsched profile roofline"]
        + [
            f"{flag} {shlex.quote(str(v))}" if v != "" else flag
            for flag, v in given
            if v is not None
        ]
    )
    factors_note = "" if factors else " (factors: sim/data/roofline_factors.yaml)"
    write_profile(prof, out, header=f"{profile_header(prof)}# made by: {command}{factors_note}\n")
    loaded = profile_from_dict(prof, str(out))
    est = prof["estimate"]
    console = Console()
    console.print(f"wrote {out}: {loaded.label}")
    console.print(f"  GPU: {est['grounding']}")
    console.print(
        f"  {est['params'] / 1e9:.2f}B parameters, {est['weights_gib_per_gpu']:.2f} GiB weights "
        f"and {est['activation_peak_gib_per_gpu']:.2f} GiB activation peak per GPU; "
        f"num_gpu_blocks {est['num_gpu_blocks']} ({est['kv_cache_tokens']} tokens of KV)"
    )
    t = Table(title="estimated step times", show_header=True)
    t.add_column("batch")
    t.add_column("step", justify="right")
    for label, pre, dec, ctx in _SAMPLES:
        s = loaded.step_time(pre, pre * pre, dec, dec * ctx)
        t.add_row(label, f"{float(s) * 1e3:.2f} ms")
    console.print(t)


@app.command()
def models() -> None:
    """The bundled model configs and GPUs."""
    from sim.hardware import known_gpus
    from sim.models import bundled_models, load_model_config, total_params

    for n in bundled_models():
        a = load_model_config(n)
        kind = f"MoE {a.num_experts}x top-{a.experts_per_token}" if a.is_moe else "dense"
        print(f"{n:24s} {total_params(a) / 1e9:7.2f}B  {kind:16s} {a.source}")
    print("GPUs: " + ", ".join(known_gpus()))


@app.command()
def fit(
    bench: Annotated[
        list[Path], Opt("--bench", "-b", help="A vllm bench serve result JSON; repeat.")
    ],
    trace: Annotated[
        Path,
        Opt("--trace", "-t", help="The requests the benches sent, in order (trace file)."),
    ],
    source: Annotated[str, Opt("--from", help="The profile to start from (bundled or file).")],
    out: Annotated[Path, Opt("--out", "-o", help="Fitted profile YAML to write.")],
    holdout: Annotated[
        list[Path] | None,
        Opt(help="Bench results to score the fitted profile on, not fit; repeat."),
    ] = None,
    metric: Annotated[
        list[str] | None,
        Opt(
            help="Bench keys to fit; repeat [mean and median TTFT, TPOT, E2EL; mean ITL]. "
            "Tails are reported, not fitted."
        ),
    ] = None,
    max_evals: Annotated[int, Opt(help="Simulations the search may spend.")] = 80,
    max_num_seqs: Annotated[int | None, Opt(help="The server's max_num_seqs.")] = None,
    max_batched_tokens: Annotated[
        int | None, Opt(help="The server's max_num_batched_tokens.")
    ] = None,
    num_gpu_blocks: Annotated[int | None, Opt(help="The server's KV block count.")] = None,
    seed: Annotated[int, Opt(help="Seed of the simulated arrival times.")] = 0,
) -> None:
    """Fit a profile's global knobs so the simulator reproduces your bench aggregates."""
    from sim.fit import (
        DEFAULT_METRICS,
        engine_config_for,
        fit_profile,
        fitted_profile_dict,
        read_bench,
        summarize_errors,
    )
    from sim.profile import load_profile, profile_from_dict
    from sim.roofline import write_profile
    from traces.io import read_trace

    if max_evals < 1:
        raise SimError("--max-evals: must be >= 1")
    benches = [read_bench(p) for p in bench]
    held = [read_bench(p) for p in holdout or []]
    df, _meta = read_trace(trace)
    prof = load_profile(source)
    cfg = engine_config_for(
        prof,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_batched_tokens,
        num_gpu_blocks=num_gpu_blocks,
    )
    metrics = tuple(metric) if metric else DEFAULT_METRICS
    result = fit_profile(prof, benches, df, cfg, metrics, held, max_evals=max_evals, seed=seed)
    raw = _raw_profile(prof.path)
    fitted = fitted_profile_dict(raw, result, benches, held, metrics)
    profile_from_dict(fitted, str(out))  # what we write must load
    header = (
        "# FIRST-PRINCIPLES ESTIMATE fitted to vllm bench serve aggregates by "
        "`ltrsched profile fit`\n"
        if prof.source != "measured"
        else "# Fitted to vllm bench serve aggregates by `ltrsched profile fit`.\n"
    )
    write_profile(fitted, out, header=header)
    _report(result, metrics, summarize_errors, out, profile_from_dict(fitted, str(out)).label)


def _raw_profile(path: str) -> dict:
    p = Path(path)
    text = p.read_text()
    return json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)


def _report(result, metrics, summarize, out: Path, label: str) -> None:
    console = Console()
    console.print(f"wrote {out}: {label}")
    console.print(
        "  knobs: "
        + ", ".join(f"{k} {v:.4g}" for k, v in result.values.items())
        + f" ({result.evaluations} simulations)"
    )
    for title, errors in (("fitted", result.errors), ("held out", result.holdout_errors)):
        if not errors:
            continue
        t = Table(title=f"{title} benches: (simulated - bench) / bench")
        t.add_column("metric")
        for path in errors:
            t.add_column(Path(path).name, justify="right")
        t.add_column("median |error|", justify="right")
        med = summarize(errors)
        keys = sorted({k for e in errors.values() for k in e}, key=lambda k: (k not in metrics, k))
        for k in keys:
            t.add_row(
                k + (" *" if k in metrics else ""),
                *(_pct(e.get(k)) for e in errors.values()),
                _pct(med.get(k), sign=False),
            )
        console.print(t)
    console.print("  * fitted metric")


def _pct(v: float | None, sign: bool = True) -> str:
    if v is None or not math.isfinite(v):
        return ""
    return f"{v * 100:+.1f}%" if sign else f"{v * 100:.1f}%"
