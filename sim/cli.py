"""`ltrsched simulate`: run a trace under a policy on a modelled vLLM server."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from sim.config import ENGINE_MODES, EngineConfig

Opt = typer.Option


def simulate(
    trace: Annotated[Path, Opt("--trace", "-t", help="Trace file (ltrsched trace build).")],
    policy: Annotated[
        str, Opt("--policy", "-p", help="NAME[:key=value,...]; see `ltrsched policies list`.")
    ] = "fcfs",
    profile: Annotated[
        str | None,
        Opt(
            help="Step-time profile: a bundled name or a "
            "YAML/JSON file. Default: the Llama-3-8B/H100 "
            "first-principles estimate."
        ),
    ] = None,
    max_num_seqs: Annotated[int | None, Opt(help="vLLM max_num_seqs [256].")] = None,
    max_batched_tokens: Annotated[
        int | None, Opt(help="vLLM max_num_batched_tokens [8192].")
    ] = None,
    num_gpu_blocks: Annotated[
        int | None, Opt(help="KV cache blocks; default from the profile.")
    ] = None,
    block_size: Annotated[int | None, Opt(help="Tokens per KV block [16].")] = None,
    max_model_len: Annotated[
        int | None, Opt(help="Reject longer requests [the profile's, if it has one].")
    ] = None,
    chunked_prefill: Annotated[bool, Opt(help="Chunked prefill, as vLLM V1.")] = True,
    prefix_caching: Annotated[
        bool | None,
        Opt(
            "--prefix-caching/--no-prefix-caching",
            help="Automatic prefix caching over the trace's hash_ids [on in vllm-v1 mode, "
            "off in ltr-paper mode, as vLLM V1 and vLLM 0.4.1 ship].",
        ),
    ] = None,
    engine_mode: Annotated[str, Opt(help=f"One of {', '.join(ENGINE_MODES)}.")] = "vllm-v1",
    preemption: Annotated[
        str, Opt(help="default, recompute or swap (ltr-paper only).")
    ] = "default",
    stop_after: Annotated[
        int | None, Opt(help="Data-generation mode: stop once this many requests finished.")
    ] = None,
    step_by_step: Annotated[
        bool, Opt(help="One event per step (slow; for checking the fast mode).")
    ] = False,
    seed: Annotated[int, Opt(help="Seed for randomized policies.")] = 0,
    out: Annotated[
        Path | None,
        Opt("--out", "-o", help="Write requests.parquet, steps.parquet, summary.json here."),
    ] = None,
    as_json: Annotated[bool, Opt("--json", help="Print summary.json to stdout.")] = False,
    replicas: Annotated[
        int | None, Opt(help="A fleet of this many replicas behind --router [1].")
    ] = None,
    router: Annotated[
        str | None, Opt(help="NAME[:key=value,...]; see `ltrsched routers list`.")
    ] = None,
    router_refresh_s: Annotated[
        float | None, Opt(help="The router sees loads refreshed this often [0: exact].")
    ] = None,
    fleet: Annotated[
        Path | None, Opt(help="Fleet file (YAML/JSON): replicas with profiles and limits.")
    ] = None,
    replica_profile: Annotated[
        list[str] | None, Opt(help="One replica with this profile (repeat for more).")
    ] = None,
) -> None:
    """Simulate a trace under a scheduling policy; print the summary."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from sim.errors import SimError
    from sim.profile import load_profile
    from sim.run import simulate as run_sim
    from traces.io import read_trace
    from traces.outdir import out_dir_problem
    from traces.results import write_run
    from traces.schema import HASH_BLOCK_TOKENS_KEY

    if out is not None and (why := out_dir_problem(out)):
        raise SimError(f"--out {out}: {why}")
    df, meta = read_trace(trace)
    prof = load_profile(profile)
    defaults = EngineConfig()
    eng = {k: v for k, v in prof.engine.items() if k in EngineConfig.__dataclass_fields__}
    cfg = EngineConfig(
        max_num_seqs=_pick(max_num_seqs, eng.get("max_num_seqs"), defaults.max_num_seqs),
        max_num_batched_tokens=_pick(
            max_batched_tokens, eng.get("max_num_batched_tokens"), defaults.max_num_batched_tokens
        ),
        block_size=_pick(block_size, eng.get("block_size"), defaults.block_size),
        num_gpu_blocks=num_gpu_blocks,
        max_model_len=_pick(max_model_len, eng.get("max_model_len"), defaults.max_model_len),
        chunked_prefill=chunked_prefill,
        enable_prefix_caching=prefix_caching,
        engine_mode=engine_mode,
        preemption=preemption,
        stop_after=stop_after,
        fast_forward=not step_by_step,
        seed=seed,
    )
    from sim.fleet_file import cli_fleet

    limits = dict(
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_batched_tokens,
        block_size=block_size,
        num_gpu_blocks=num_gpu_blocks,
        max_model_len=max_model_len,
    )
    reps, router, refresh = cli_fleet(
        cfg, limits, profile, replicas, router, router_refresh_s, fleet, replica_profile
    )
    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=as_json or not console.is_terminal,
    ) as bar:
        task = bar.add_task("simulating", total=len(df))
        res = run_sim(
            df,
            policy,
            prof,
            cfg,
            progress=lambda done, total: bar.update(task, completed=done),
            hash_block_tokens=meta.get(HASH_BLOCK_TOKENS_KEY),
            replicas=reps,
            router=router,
            router_refresh_s=refresh,
        )
    res.summary["trace"] = str(trace)
    _warn(res.summary)
    if out is not None:
        write_run(out, res.requests, res.steps, res.summary)
    if as_json:
        sys.stdout.write(json.dumps(res.summary, indent=2, default=str) + "\n")
        return
    _print_summary(res.summary, Console())
    if out is not None:
        Console().print(f"wrote {out}/requests.parquet, steps.parquet, summary.json")


def _pick(*values):
    return next((v for v in values if v is not None), None)


def _warn(summary: dict) -> None:
    """The run's warnings (rejected requests), one line each on stderr, in every mode."""
    for w in summary.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)


def _print_summary(s: dict, console) -> None:
    from rich.table import Table

    from traces.results import completed_share

    over = completed_share(s)
    t = Table(title=f"policy {s['policy']}  |  profile {s['profile_label']}", show_header=False)
    t.add_column(style="bold")
    t.add_column(justify="right")
    rows = [
        (
            "requests (completed / rejected / unfinished)",
            f"{s['requests']} ({s['completed']} / {s['rejected']} / {s['unfinished']})",
        ),
        (
            "mean latency",
            f"{s['mean_latency_s']:.3f} s"
            + (f" over {s['completed']:,} of {s['requests']:,}" if over else ""),
        ),
        (
            "p50 / p90 / p99 latency",
            f"{s['p50_latency_s']:.3f} / {s['p90_latency_s']:.3f} / {s['p99_latency_s']:.3f} s",
        ),
        ("mean latency per output token", f"{s['mean_norm_latency_s_per_token']:.4f} s"),
        ("mean / p99 TTFT", f"{s['mean_ttft_s']:.3f} / {s['p99_ttft_s']:.3f} s"),
        ("mean TPOT", f"{s['mean_tpot_s'] * 1000:.1f} ms"),
        (
            "max waiting time p99 / max",
            f"{s['max_waiting_time_p99_s']:.3f} / {s['max_waiting_time_max_s']:.3f} s",
        ),
        (
            "throughput (makespan incl. drain)",
            f"{s['throughput_req_s']:.2f} req/s, {s['throughput_tok_s']:.0f} tok/s",
        ),
        ("preemptions", str(s["preemptions"])),
        (
            "prefix cache",
            f"{s['prefix_hit_rate']:.1%} of prompt tokens hit, "
            f"{s['prefix_blocks_evicted']} blocks evicted"
            if s["prefix_caching"]
            else "off",
        ),
        ("makespan", f"{s['makespan_s']:.2f} s"),
        ("KV blocks", f"{s['num_gpu_blocks']} ({s['num_gpu_blocks_how']})"),
        ("simulated in", f"{s['sim_wall_s']:.2f} s wall, {s['steps']} steps"),
    ]
    if "per_replica" in s:
        shares = " / ".join(str(p["requests"]) for p in s["per_replica"])
        rows.append(("fleet", f"{s['replicas']} replicas, router {s['router']}; requests {shares}"))
    for k, v in rows:
        t.add_row(k, v)
    if over:
        t.caption = f"latency, TTFT and throughput {over}"
    console.print(t)
