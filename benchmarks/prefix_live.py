"""Prefix caching and sessions, simulator against the CPU build of vLLM (issue 16).

Builds a shared-prefix trace (inference-perf's G system prompts x P questions, sent in a
cycle) and a multi-turn ShareGPT trace (sessions, closed loop), replays each on one vLLM
engine per block count (a tiny Llama with random weights, prefix caching on, the block
size and block count fixed: ample, then tight enough to evict), fits a step-time profile
on each engine's own runs (`ltrsched live calibrate`, so one engine's drift is not
charged to another), then simulates every run with the same block size and count
(less vLLM's null block), prefix caching on and off.
Prints, per case, the share of requests whose simulated cached_tokens equals vLLM's
num_cached_tokens (target >= 95%), and the simulation's error on mean latency and mean
TTFT with caching on and off; then the first requests whose hits differ.

    python benchmarks/prefix_live.py --out runs/prefix_live
    python benchmarks/prefix_live.py --out DIR --blocks 4096,64 -n 300 --skip-live
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
from pathlib import Path

from live.calibrate import calibrate
from live.engine import EngineOptions, LiveEngine
from live.models import write_tiny_llama
from live.run import RunSpec, read_replay_trace
from ltrsched.cli import main as ltrsched_main
from traces.results import read_run

NULL_BLOCKS = 1  # vLLM keeps block 0 as its null block: num_gpu_blocks - 1 hold KV


def build_traces(args, out: Path) -> dict[str, Path]:
    sp, mt = out / "trace_shared_prefix.parquet", out / "trace_multi_turn.parquet"
    with contextlib.redirect_stdout(io.StringIO()):
        ltrsched_main(
            [
                "trace",
                "build",
                "--source",
                "shared-prefix",
                "-n",
                str(args.n),
                "--num-groups",
                "4",
                "--prompts-per-group",
                "8",
                "--system-prompt-len",
                "256",
                "--question-len",
                "64",
                "--output-len",
                "32",
                "--rate",
                str(args.rate),
                "--seed",
                "1",
                "-o",
                str(sp),
            ]
        )
        ltrsched_main(
            [
                "trace",
                "build",
                "--source",
                "sharegpt",
                "--turns",
                "all",
                "-n",
                str(args.sessions),
                "--max-turns",
                str(args.max_turns),
                "--max-prompt-tokens",
                "768",
                "--max-output-tokens",
                "96",
                "--rate",
                str(args.session_rate),
                "--think-dist",
                "fixed:0.5",
                "--seed",
                "1",
                "--no-text",
                "-o",
                str(mt),
            ]
        )
    return {"shared-prefix": sp, "multi-turn": mt}


async def replay_all(args, traces: dict[str, Path], out: Path) -> dict[tuple[str, int], Path]:
    """One engine per block count, each trace replayed on it (the cache emptied first)."""
    model = write_tiny_llama(out / "tiny")
    runs = {}
    for blocks in args.blocks:
        engine = LiveEngine.start(
            EngineOptions(
                model=str(model),
                dummy_weights=True,
                enforce_eager=True,
                max_num_seqs=args.max_num_seqs,
                max_num_batched_tokens=args.max_batched_tokens,
                num_gpu_blocks=blocks,
                block_size=args.block_size,
                prefix_caching=True,
                max_model_len=args.max_model_len,
            )
        )
        try:
            await engine.warm_up(8)
            for name, path in traces.items():
                run = out / "live" / f"{name}_{blocks}"
                s = await engine.replay(
                    read_replay_trace(path), RunSpec(policy="fcfs", out=run, trace=str(path))
                )
                print(
                    f"live {name}, {blocks} blocks: {s['completed']}/{s['requests']} "
                    f"finished, mean latency {s['mean_latency_s']:.3f} s, prefix hit rate "
                    f"{s['prefix_hit_rate']:.1%}, preemptions {s['preemptions']}",
                    flush=True,
                )
                runs[(name, blocks)] = run
        finally:
            await engine.aclose()
    return runs


def simulate(trace: Path, profile: Path, live: dict, caching: bool, out: Path) -> Path:
    with contextlib.redirect_stdout(io.StringIO()):
        rc = ltrsched_main(
            [
                "simulate",
                "--trace",
                str(trace),
                "--profile",
                str(profile),
                "--max-num-seqs",
                str(live["max_num_seqs"]),
                "--max-batched-tokens",
                str(live["max_num_batched_tokens"]),
                "--block-size",
                str(live["block_size"]),
                "--num-gpu-blocks",
                str(live["num_gpu_blocks"] - NULL_BLOCKS),
                "--max-model-len",
                str(live["max_model_len"]),
                "--prefix-caching" if caching else "--no-prefix-caching",
                "--out",
                str(out),
            ]
        )
    if rc != 0:
        raise SystemExit(f"simulate {trace} failed (exit {rc})")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("-n", type=int, default=300, help="shared-prefix requests")
    ap.add_argument("--rate", type=float, default=8.0, help="shared-prefix req/s")
    ap.add_argument("--sessions", type=int, default=40, help="multi-turn sessions")
    ap.add_argument("--max-turns", type=int, default=4)
    ap.add_argument("--session-rate", type=float, default=2.0, help="sessions started per s")
    ap.add_argument(
        "--block-size",
        type=int,
        default=32,
        help="tokens per KV block (vLLM on CPU: a multiple of 32)",
    )
    ap.add_argument(
        "--blocks",
        default="4096,96,64",
        help="KV block counts, one engine each (ample first, then tighter)",
    )
    ap.add_argument("--max-num-seqs", type=int, default=8)
    ap.add_argument("--max-batched-tokens", type=int, default=512)
    ap.add_argument(
        "--max-model-len", type=int, default=1024, help="vLLM needs it to fit the tight block count"
    )
    ap.add_argument(
        "--skip-live",
        action="store_true",
        help="reuse the live runs already in --out (simulate and compare only)",
    )
    ap.add_argument("--show", type=int, default=5, help="mismatching requests to print")
    args = ap.parse_args()
    args.blocks = [int(b) for b in args.blocks.split(",")]
    out = args.out
    if args.skip_live:
        traces = {
            "shared-prefix": out / "trace_shared_prefix.parquet",
            "multi-turn": out / "trace_multi_turn.parquet",
        }
        runs = {(name, b): out / "live" / f"{name}_{b}" for b in args.blocks for name in traces}
    else:
        traces = build_traces(args, out)
        runs = asyncio.run(replay_all(args, traces, out))
    profiles = {}
    for blocks in args.blocks:
        profiles[blocks] = out / f"profile_{blocks}.yaml"
        prof = calibrate([runs[(name, blocks)] for name in traces], profiles[blocks])
        err = prof["fit_error"]
        print(
            f"profile of the {blocks}-block engine: MAPE {err['mape']:.1%} over "
            f"{err['steps']} steps"
        )
    print(
        f"\n{'case':<28}{'reqs':>5}{'cached ==':>10}{'hit live':>9}{'hit sim':>8}"
        f"{'evicted':>8}{'mean lat live':>14}{'sim on':>8}{'sim off':>8}"
        f"{'TTFT on':>9}{'TTFT off':>9}"
    )
    for (name, blocks), run in runs.items():
        live_req, _, live = read_run(run)
        sims = {
            c: simulate(
                traces[name],
                profiles[blocks],
                live,
                c,
                out / "sim" / f"{name}_{blocks}_{'on' if c else 'off'}",
            )
            for c in (True, False)
        }
        (on_req, _, on), (off_req, _, _) = read_run(sims[True]), read_run(sims[False])
        both = live_req.merge(on_req, on="request_id", suffixes=("_live", "_sim"))
        both = both[(both["status_live"] == "finished") & (both["status_sim"] == "finished")]
        same = both["cached_tokens_live"] == both["cached_tokens_sim"]
        done = live_req[live_req["status"] == "finished"]
        off_done = off_req[off_req["status"] == "finished"]

        def rel(sim_value: float, live_value: float) -> str:
            return f"{sim_value / live_value - 1:+.1%}"

        print(
            f"{name + f', {blocks} blocks':<28}{len(both):>5}{same.mean():>10.1%}"
            f"{live['prefix_hit_rate']:>9.1%}{on['prefix_hit_rate']:>8.1%}"
            f"{on['prefix_blocks_evicted']:>8}{done['latency_s'].mean():>14.3f}"
            f"{rel(on_req['latency_s'].mean(), done['latency_s'].mean()):>8}"
            f"{rel(off_done['latency_s'].mean(), done['latency_s'].mean()):>8}"
            f"{rel(on_req['ttft_s'].mean(), done['ttft_s'].mean()):>9}"
            f"{rel(off_done['ttft_s'].mean(), done['ttft_s'].mean()):>9}"
        )
        if (~same).any() and args.show:
            cols = [
                "request_id",
                "prompt_tokens_live",
                "cached_tokens_live",
                "cached_tokens_sim",
                "arrival_s_live",
                "arrival_s_sim",
            ]
            print(
                "    differing:",
                both.loc[~same, cols]
                .head(args.show)
                .to_string(index=False)
                .replace("\n", "\n    "),
            )


if __name__ == "__main__":
    main()
