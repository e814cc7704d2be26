"""Training: one plain loop (batch, loss, step, evaluate, save).

Each step is one list of `list_size` prompts for ListMLE (the paper: lists of 32, one
list per batch) or a batch of `batch_size` prompts for the other losses. AdamW with
linear warm-up and decay, gradient clipping. After each epoch: Kendall's tau on the
held-out last rows of the trace (and, for a distributional head, their mean
log-likelihood), then the model directory is (re)written. predictor.json keeps the
training lengths' histogram over the shared bins, the prompt-blind baseline of `eval`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from policies.lengthdist import histogram
from predictor.backbone import (
    build_from_config,
    load_pretrained,
    pooling_for,
    resolve_backbone,
)
from predictor.checkpoint import Predictor, load_predictor, save_predictor
from predictor.config import TrainConfig
from predictor.data import provenance, read_prompts, split_train_val
from predictor.errors import PredictorError
from predictor.eta import Eta
from predictor.losses import (
    MARGINAL_PSEUDO_COUNT,
    LossSpec,
    Objective,
    fit_buckets,
    parse_loss,
)
from predictor.metrics import distribution_metrics, ranking_metrics
from predictor.model import LengthRanker, forward_grouped
from predictor.scoring import predict_ids
from predictor.tokenizer import encode, format_prompt, train_bpe_tokenizer


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def train(
    cfg: TrainConfig,
    trace: str | Path,
    out_dir: str | Path,
    console: Console | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """Train a predictor on trace as cfg says; write it to out_dir; return a summary.
    After the first steps it prints how long the rest will take (by `clock`)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    cfg.validate()
    console = console or Console(stderr=True)
    out_dir = Path(out_dir)
    spec = parse_loss(cfg.loss)
    if not cfg.init_from:
        resolve_backbone(cfg.backbone)  # fail on a bad name before reading the trace
    df, meta = read_prompts(trace)
    lengths = df["output_tokens"].to_numpy(np.int64)
    train_idx, val_idx = split_train_val(len(df), cfg.val_fraction)
    spec = fit_buckets(spec, lengths[train_idx])

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    device = pick_device(cfg.device)

    texts = [format_prompt(cfg.template, p) for p in df["prompt"]]
    predictor = build_predictor(
        cfg, spec, [texts[i] for i in train_idx], lengths[train_idx], console
    )
    predictor.info["trace"] = provenance(trace, df, meta)
    predictor.info["train_marginal"] = {
        "bin_counts": histogram(lengths[train_idx]).tolist(),
        "pseudo_count": MARGINAL_PSEUDO_COUNT,
    }
    model, tokenizer = predictor.model.to(device).train(), predictor.tokenizer
    ids = encode(tokenizer, texts, predictor.max_prompt_tokens)

    step_prompts = cfg.list_size if spec.kind == "listmle" else cfg.batch_size
    steps_per_epoch = max(1, len(train_idx) // step_prompts)
    total_steps = steps_per_epoch * cfg.epochs
    warmup = max(1, round(cfg.warmup_frac * total_steps)) if cfg.warmup_frac > 0 else 0
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(
            (s + 1) / warmup if warmup else 1.0, (total_steps - s) / max(1, total_steps - warmup)
        ),
    )

    log: dict[str, list] = {"steps": [], "epochs": []}
    running = math.nan
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  val tau {task.fields[tau]}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[left]}"),
    ]
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("train", total=total_steps, loss=math.nan, tau="-", left="")
        eta = Eta(total_steps, clock)
        for epoch in range(cfg.epochs):
            order = rng.permutation(train_idx)
            for b in range(steps_per_epoch):
                batch = order[b * step_prompts : (b + 1) * step_prompts]
                outputs = forward_grouped(
                    model,
                    [ids[i] for i in batch],
                    tokenizer.pad_token_id,
                    device,
                    cfg.tokens_per_forward,
                )
                loss = predictor.objective.loss(outputs, lengths[batch], generator)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()

                value = float(loss.detach())
                running = value if math.isnan(running) else 0.95 * running + 0.05 * value
                log["steps"].append(
                    {
                        "step": len(log["steps"]) + 1,
                        "epoch": epoch + 1,
                        "loss": value,
                        "lr": scheduler.get_last_lr()[0],
                    }
                )
                first = eta.step()
                progress.update(task, advance=1, loss=running, left=eta.left())
                if first:
                    console.print(f"{first} (epoch {epoch + 1} of {cfg.epochs})", soft_wrap=True)
                step = len(log["steps"])
                if not console.is_terminal and step % max(1, total_steps // 50) == 0:
                    console.print(
                        f"step {step}/{total_steps} epoch {epoch + 1} loss "
                        f"{running:.4f} {time.perf_counter() - started:.0f} s, {eta.left()}",
                        soft_wrap=True,
                    )

            val_scores, val_dists = predict_ids(predictor, [ids[i] for i in val_idx], 64)
            val = ranking_metrics(val_scores, lengths[val_idx])
            entry = {
                "epoch": epoch + 1,
                "val_kendall_tau": val["kendall_tau"],
                "val_spearman": val["spearman"],
            }
            if val_dists is not None:
                fit = distribution_metrics(val_dists, lengths[val_idx])
                entry["val_log_lik"] = fit["log_lik"]
            log["epochs"].append({**entry, "wall_s": time.perf_counter() - started})
            progress.update(task, tau=f"{val['kendall_tau']:.3f}")
            if not console.is_terminal:
                extra = f", log-lik {entry['val_log_lik']:.3f}" if val_dists is not None else ""
                console.print(
                    f"epoch {epoch + 1}: validation tau {val['kendall_tau']:.3f}{extra}",
                    soft_wrap=True,
                )
            predictor.info["train"] = {
                "epochs_done": epoch + 1,
                "steps": len(log["steps"]),
                "rows_train": len(train_idx),
                "rows_val": len(val_idx),
                **{k: v for k, v in entry.items() if k.startswith("val_")},
                "wall_s": round(time.perf_counter() - started, 1),
                "cpu_s": round(time.process_time() - cpu_started, 1),
            }
            save_predictor(out_dir, predictor)
            cfg.save(out_dir / "hparams.json")
            (out_dir / "train_log.json").write_text(json.dumps(log) + "\n")
    return {
        "out": str(out_dir),
        **predictor.info["train"],
        "loss": predictor.objective.spec.describe(),
    }


def build_predictor(
    cfg: TrainConfig,
    spec: LossSpec,
    train_texts: list[str],
    train_lengths: np.ndarray,
    console: Console,
) -> Predictor:
    """The untrained predictor: backbone (with a BPE tokenizer learned on train_texts when
    built from config) and a fresh head (a distributional one starts at train_lengths'
    marginal distribution)."""
    if cfg.init_from:
        return _continue_from(cfg, spec)
    backbone_spec = resolve_backbone(cfg.backbone)
    if backbone_spec.pretrained:
        backbone, tokenizer = load_pretrained(backbone_spec.path)
    else:
        tokenizer = train_bpe_tokenizer(train_texts, cfg.vocab_size, cfg.max_prompt_tokens)
        backbone = build_from_config(backbone_spec, tokenizer, cfg.max_prompt_tokens)
    # Encoders have a hard limit (MiniLM: 512 positions).
    max_tokens = cfg.max_prompt_tokens
    limit = getattr(backbone.config, "max_position_embeddings", None)
    if limit and max_tokens > limit:
        console.print(f"[yellow]max prompt tokens cut to {limit}, the backbone's limit")
        max_tokens = limit
    model = LengthRanker(backbone, pooling_for(backbone.config.model_type), spec.num_outputs)
    objective = Objective(spec, cfg.label_bin_tokens)
    objective.init_head(model.head, train_lengths)
    info = {
        "backbone": backbone_spec.name,
        "backbone_pretrained": backbone_spec.pretrained,
        "pooling": model.pooling,
        "template": cfg.template,
        "max_prompt_tokens": max_tokens,
        "versions": {"torch": torch.__version__, "transformers": _version("transformers")},
    }
    return Predictor(model, tokenizer, objective, info)


def _continue_from(cfg: TrainConfig, spec: LossSpec) -> Predictor:
    """A trained predictor to train further (its weights, tokenizer, and bucket edges)."""
    start = load_predictor(cfg.init_from)
    if start.objective.spec.kind != spec.kind:
        raise PredictorError(
            f"{cfg.init_from} was trained with "
            f"{start.objective.spec.describe()}, not {spec.describe()}"
        )
    if spec.kind == "classify":
        spec = start.objective.spec  # the head's buckets
    info = {
        **start.info,
        "init_from": Path(cfg.init_from).name,
        "max_prompt_tokens": min(cfg.max_prompt_tokens, start.max_prompt_tokens),
    }
    info.pop("train", None)
    return Predictor(start.model, start.tokenizer, Objective(spec, cfg.label_bin_tokens), info)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
