"""`ltrsched live`: replay traces on a real vLLM, fit the simulator's step-time model."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from live.errors import LiveError
from traces.outdir import out_dir_problem

Opt = typer.Option
app = typer.Typer(
    help="Replay traces on a real vLLM with the ltrsched scheduler plug-in; calibrate the "
    "simulator from its step log.",
    no_args_is_help=True,
)


@app.command()
def replay(
    trace: Annotated[Path, Opt("--trace", "-t", help="Trace file (ltrsched trace build).")],
    out: Annotated[Path, Opt("--out", "-o", help="Run directory to write (one per policy "
                                                 "and replicate below it when several).")],
    policy: Annotated[list[str], Opt("--policy", "-p", help="NAME[:key=value,...]; repeat "
                                     "to replay several policies on one engine.")] = ["fcfs"],  # noqa: B006
    model: Annotated[str | None, Opt(
        help="Model directory (config.json; weights unless --dummy-weights). Server mode: "
        "the served model name [the server's first].")] = None,
    dummy_weights: Annotated[bool, Opt(help="Random weights (load_format=dummy).")] = False,
    max_num_seqs: Annotated[int | None, Opt(help="vLLM max_num_seqs.")] = None,
    max_batched_tokens: Annotated[int | None, Opt(help="vLLM max_num_batched_tokens.")] = None,
    gpu_memory_utilization: Annotated[float | None, Opt(
        help="vLLM's share of GPU memory (on CPU: of RAM, for KV) [0.3 on CPU].")] = None,
    enforce_eager: Annotated[bool, Opt(help="No CUDA graphs / compilation: faster start.")] = False,
    num_gpu_blocks: Annotated[int | None, Opt(help="Override vLLM's KV block count.")] = None,
    block_size: Annotated[int | None, Opt(help="Tokens per KV block [vLLM's: 16 on GPU, "
                                               "128 on CPU].")] = None,
    max_model_len: Annotated[int | None, Opt(help="vLLM max_model_len.")] = None,
    prefix_caching: Annotated[bool, Opt(help="vLLM's automatic prefix caching (vLLM V1's "
                                             "default); each run starts with it empty.")
                              ] = True,
    server: Annotated[str | None, Opt(help="Replay against this running vLLM server "
                                           "(http://host:port) instead.")] = None,
    step_log: Annotated[Path | None, Opt(help="Server mode: the step log its plug-in writes "
                                              "(LTRSCHED_STEP_LOG on the server).")] = None,
    vocab_size: Annotated[int, Opt(help="Server mode: ids of synthetic prompts stay below "
                                        "this.")] = 32000,
    warmup: Annotated[int, Opt(help="Warm-up requests before the first run (in-process).")] = 8,
    stall_timeout: Annotated[float, Opt(help="Give up after this many seconds without "
                                             "progress.")] = 120.0,
    repeats: Annotated[int, Opt(
        help="Replay every policy this many times, in rounds (A, B, A, B, ...), into "
        "OUT/<policy>_r<k>: replicates for `compare --live` and `calibrate --run`.")] = 1,
    seed: Annotated[int, Opt(help="Seed of synthetic prompt ids and vLLM.")] = 0,
    predictor: Annotated[Path | None, Opt(
        help="In-process: a predictor directory the plug-in loads to score requests that "
        "carry no score, as `ltrsched serve` does (needs a model with a tokenizer).")] = None,
    predictor_device: Annotated[str, Opt(help="auto, cpu, cuda or cuda:N.")] = "auto",
    predictor_mode: Annotated[str, Opt(help="overlap or sync (see ltrsched serve).")
                              ] = "overlap",
    replicas: Annotated[int, Opt(help="In-process: a fleet of this many vLLM engines behind "
                                      "--router (each with the --num-gpu-blocks etc. above).")
                        ] = 1,
    router: Annotated[list[str] | None, Opt(
        help="NAME[:key=value,...] placing each request on a replica (`ltrsched routers "
        "list`); repeat it to replay each router in turn, into OUT/<router>.")] = None,
    router_refresh_s: Annotated[float, Opt(help="The router sees replica loads refreshed "
                                                "this often [0: exact].")] = 0.0,
    as_json: Annotated[bool, Opt("--json", help="Print the summaries as JSON.")] = False,
) -> None:
    """Replay a trace open-loop on vLLM under one or more policies; write the run(s)."""
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")  # stdout: results
    from dataclasses import replace

    from live.run import RunSpec, read_replay_trace

    if server is not None and predictor is not None:
        raise LiveError("--predictor is for the in-process engine; a server loads its own "
                        "(ltrsched serve --predictor, or LTRSCHED_PREDICTOR)")
    routers = list(router or [])
    fleet = replicas > 1 or bool(routers)
    if replicas < 1:
        raise LiveError(f"--replicas {replicas}: must be at least 1")
    if replicas > 1 and not routers:
        raise LiveError(f"--replicas {replicas} needs a --router (see `ltrsched routers list`)")
    if fleet and server is not None:
        raise LiveError("--replicas/--router: a fleet runs in-process engines, not --server")
    if fleet:
        from policies.routing import RouterError, make_router

        for spec in routers:
            try:
                make_router(spec)
            except RouterError as e:
                raise LiveError(f"--router {spec}: {e}") from None
        if len({slug(r) for r in routers}) < len(routers):
            raise LiveError("--router: a router given twice")
    if repeats < 1:
        raise LiveError(f"--repeats {repeats}: must be at least 1")
    if why := out_dir_problem(out):
        raise LiveError(f"--out {out}: {why}")
    names = [slug(p) for p in policy]
    if len(set(names)) < len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise LiveError(f"--policy {twice} given twice: pass it once, with --repeats N "
                        "for replicates")
    df = read_replay_trace(trace)
    if repeats > 1:
        plan = [(p, out / f"{n}_r{k}") for k in range(repeats)
                for p, n in zip(policy, names, strict=True)]
    else:
        plan = list(zip(policy, [out] if len(policy) == 1 else [out / n for n in names],
                        strict=True))
    specs = [RunSpec(policy=p, out=o, trace=str(trace), seed=seed,
                     stall_timeout_s=stall_timeout, scored_in_server=predictor is not None)
             for p, o in plan]
    spec_routers = [routers[0] if routers else None] * len(specs)
    if len(routers) > 1:  # each router in turn, below each policy's directory
        spec_routers = [r for _ in specs for r in routers]
        specs = [replace(s, out=s.out / slug(r)) for s in specs for r in routers]
    if server is not None:
        summaries = asyncio.run(_replay_server(server, model, df, specs, step_log, vocab_size))
    else:
        if model is None:
            raise LiveError("--model is required (a model directory; "
                            "`ltrsched live tiny-model DIR` makes one)")
        from live.engine import EngineOptions, replay_on_new_engine

        opts = EngineOptions(
            model=model, dummy_weights=dummy_weights, max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_batched_tokens,
            gpu_memory_utilization=gpu_memory_utilization, enforce_eager=enforce_eager,
            num_gpu_blocks=num_gpu_blocks, block_size=block_size, max_model_len=max_model_len,
            prefix_caching=prefix_caching, seed=seed,
            predictor=str(predictor) if predictor else None, predictor_device=predictor_device,
            predictor_mode=predictor_mode,
        )
        if fleet:
            from live.fleet import replay_on_new_fleet

            summaries = asyncio.run(replay_on_new_fleet(
                opts, replicas, df, list(zip(specs, spec_routers, strict=True)),
                router_refresh_s, warmup))
        else:
            summaries = asyncio.run(replay_on_new_engine(opts, df, specs, warmup))
    if as_json:
        sys.stdout.write(json.dumps(summaries if len(summaries) > 1 else summaries[0],
                                    indent=2, default=str) + "\n")
        return
    for spec, s in zip(specs, summaries, strict=True):
        print(one_line(s) + f"  -> {spec.out}")


async def _replay_server(url, model, df, specs, step_log: Path | None,
                         vocab_size: int) -> list[dict]:
    from dataclasses import replace

    from live.run import run_trace
    from live.server import ServerBackend, is_local

    stall = specs[0].stall_timeout_s
    backend, info = await ServerBackend.connect(url, model, stall)
    local = is_local(url)
    try:
        out = []
        for spec in specs:
            spec = replace(spec, step_log=step_log, send_run_config=local)
            reset = await backend.reset_prefix_cache()
            out.append(await run_trace(backend, df, spec, {**info, "prefix_cache_reset": reset},
                                       vocab_size, max_model_len=info.get("max_model_len")))
        return out
    finally:
        await backend.close()


@app.command()
def calibrate(
    run: Annotated[list[Path], Opt("--run", help="A live run directory (ltrsched live "
                                   "replay); repeat it to pool several runs of one engine.")],
    out: Annotated[Path, Opt("--out", "-o", help="Profile YAML to write.")],
    name: Annotated[str | None, Opt(help="Profile name (default from model and device).")] = None,
) -> None:
    """Fit the simulator's step-time model to live runs' steps; write a profile."""
    from live.calibrate import calibrate as fit

    profile = fit(list(run), out, name)
    err = profile["fit_error"]
    coeffs = ", ".join(f"{k}={v:.4g}" for k, v in profile["coefficients"].items())
    print(f"{profile['name']}: {coeffs}")
    print(f"fit over {err['steps']} steps: MAPE {err['mape']:.1%}, R^2 {err['r2']:.3f}, "
          f"|error| p50 {err['p50_abs_error_s'] * 1e3:.2f} ms, p90 "
          f"{err['p90_abs_error_s'] * 1e3:.2f} ms -> {out}")
    for warning in profile.get("fit_warnings", ()):
        print(f"warning: {warning}", file=sys.stderr)


def serve(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model directory or name, as for vllm serve.")],
    predictor: Annotated[Path | None, Opt(
        help="Predictor directory (ltrsched predictor train): the plug-in scores each "
        "request that arrives without a score.")] = None,
    policy: Annotated[str, Opt(help="Policy spec the plug-in orders requests by.")
                      ] = "ltr:starvation=200,quantum=10",
    predictor_device: Annotated[str, Opt(help="auto, cpu, cuda or cuda:N.")] = "auto",
    predictor_mode: Annotated[str, Opt(help="overlap: score while the model runs a step; "
                                            "sync: before ordering each step.")] = "overlap",
    step_log: Annotated[Path | None, Opt(help="JSONL the plug-in logs each step to.")] = None,
    host: Annotated[str, Opt(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, Opt(help="Port to listen on.")] = 8000,
    dummy_weights: Annotated[bool, Opt(help="Random weights (load_format=dummy).")] = False,
    dry_run: Annotated[bool, Opt(help="Print the vLLM command line and exit.")] = False,
) -> None:
    """Start vLLM's OpenAI-compatible server with the ltrsched plug-in (and a predictor).

    Arguments after `--` go to vLLM as they are. The plain vLLM command line it stands
    for is printed first."""
    from live.device import is_cpu_platform
    from live.serve import ServeOptions, check

    opts = ServeOptions(cpu=is_cpu_platform(), model=model, policy=policy,
                        predictor=str(predictor) if predictor else None,
                        predictor_device=predictor_device, predictor_mode=predictor_mode,
                        step_log=str(step_log) if step_log else None, host=host, port=port,
                        dummy_weights=dummy_weights, vllm_args=list(ctx.args))
    check(opts)
    print(f"plain vLLM: {opts.plain_command()}", flush=True)
    if dry_run:
        return
    argv = opts.argv()
    print(f"running: {shlex.join(argv)}", flush=True)
    os.execv(argv[0], argv)


serve.context_settings = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command("tiny-model")
def tiny_model(
    directory: Annotated[Path, typer.Argument(help="Directory to write config.json into.")],
    tokenizer_from: Annotated[Path | None, Opt(
        help="Copy this directory's tokenizer in (e.g. a predictor's), so the model takes "
        "text prompts; vocab_size grows to cover it.")] = None,
) -> None:
    """Write a tiny Llama config.json (hidden 256, 2 layers) to run with --dummy-weights."""
    from live.models import copy_tokenizer, write_tiny_llama

    if why := out_dir_problem(directory):
        raise LiveError(f"{directory}: {why}")
    path = write_tiny_llama(directory)
    if tokenizer_from is not None:
        size = copy_tokenizer(tokenizer_from, path)
        print(f"tokenizer of {tokenizer_from} ({size} tokens) copied in")
    print(f"wrote {path / 'config.json'}; run it with --model {path} --dummy-weights")


def slug(spec: str) -> str:
    """A directory name for a policy spec."""
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", spec).strip("_")


def one_line(s: dict) -> str:
    router = f" [{s['router']}, {s['replicas']} replicas]" if s.get("router") else ""
    return (f"{s['policy']}{router}: {s['completed']}/{s['requests']} finished, "
            f"{s['rejected']} rejected, {s.get('failed', 0)} failed; mean latency "
            f"{s['mean_latency_s']:.3f} s, p90 {s['p90_latency_s']:.3f} s, "
            f"{s['throughput_tok_s']:.0f} tok/s")


if __name__ == "__main__":  # `python -m live.cli`; vLLM's engine starts subprocesses
    app()
