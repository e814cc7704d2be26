"""Predictor overhead: requests scored per second on this machine's CPU.

Usage: python benchmarks/predictor_overhead.py --trace T MODEL_DIR [MODEL_DIR ...]
       [--rows 256] [--batch-sizes 1,32] [--threads 0]

Scores the first --rows prompts of a trace with each trained model at each batch size
(tokenization included, model loading not) and prints requests/s and seconds per
request, to be set against a request's service time from the simulator.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="model directories")
    parser.add_argument("--trace", type=Path, required=True, help="a trace with prompt text")
    parser.add_argument("--rows", type=int, default=256, help="prompts to score per run")
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()

    import torch

    from predictor.checkpoint import load_predictor
    from predictor.data import read_prompts
    from predictor.scoring import score_prompts

    if args.threads:
        torch.set_num_threads(args.threads)
    df, _ = read_prompts(args.trace)
    prompts = df["prompt"].tolist()[: args.rows]
    table = Table(
        title=f"scoring {len(prompts)} prompts of {args.trace.name} on CPU "
        f"({torch.get_num_threads()} threads, {os.cpu_count()} cores)"
    )
    for col in ("model", "backbone", "max prompt tokens", "batch", "requests/s", "ms/request"):
        table.add_column(col, justify="left" if col in ("model", "backbone") else "right")
    for model_dir in args.models:
        predictor = load_predictor(model_dir)
        score_prompts(predictor, prompts[:8])  # warm-up
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            started = time.perf_counter()
            score_prompts(predictor, prompts, batch_size=batch_size)
            seconds = time.perf_counter() - started
            table.add_row(
                model_dir.name,
                predictor.info["backbone"],
                str(predictor.max_prompt_tokens),
                str(batch_size),
                f"{len(prompts) / seconds:.1f}",
                f"{1000 * seconds / len(prompts):.2f}",
            )
    Console().print(table)


if __name__ == "__main__":
    main()
