"""`ltrsched trace build` and `ltrsched trace show`.

User mistakes raise TraceError; ltrsched.cli prints them as `error: ...` and exits 2.
Warnings go to stderr as `warning: ...`, one line each; progress bars to stderr too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from traces.build import build_trace
from traces.config import BuildConfig
from traces.errors import TraceError
from traces.io import read_trace, write_trace
from traces.progress import RichReporter
from traces.sources import SOURCES
from traces.summary import TraceSummary, summarize

app = typer.Typer(
    help="Build request traces (Parquet) from ShareGPT, LMSYS, BurstGPT, timed traces, "
    "distributions, a synthetic LMSYS-like or shared-prefix workload, and summarize them.",
    no_args_is_help=True,
)

_RANGE = "Records are numbered in source order, before any filtering."


@app.command()
def build(
    output: Annotated[Path, typer.Option("--output", "-o", help="Trace file to write.")],
    source: Annotated[
        str, typer.Option("--source", "-s", help=f"One of: {', '.join(SOURCES)}.")
    ] = "sharegpt",
    path: Annotated[
        str | None,
        typer.Option(
            help="Input file (sharegpt: default is the bundled copy; lmsys: also a folder of "
            "Parquet shards)."
        ),
    ] = None,
    num_requests: Annotated[
        int | None, typer.Option("--num-requests", "-n", help="Requests wanted after filtering.")
    ] = None,
    offset: Annotated[int, typer.Option(help=f"First record to read. {_RANGE}")] = 0,
    limit: Annotated[int | None, typer.Option(help=f"Records to read. {_RANGE}")] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of arrivals, --shuffle, lengths, generated records.")
    ] = 0,
    tokenizer: Annotated[
        str | None,
        typer.Option(help="cl100k (default), llama3, or a path to a tokenizer.json."),
    ] = None,
    max_prompt_tokens: Annotated[int | None, typer.Option(help="Drop longer prompts.")] = None,
    max_output_tokens: Annotated[int | None, typer.Option(help="Drop longer outputs.")] = None,
    rate: Annotated[float | None, typer.Option(help="Poisson arrivals, requests/s.")] = None,
    cv: Annotated[
        float | None, typer.Option(help="With --rate: gamma gaps with this coeff. of variation.")
    ] = None,
    burst: Annotated[bool, typer.Option("--burst", help="All requests arrive at t=0.")] = False,
    duration: Annotated[
        float | None, typer.Option(help="Keep requests arriving before this many seconds.")
    ] = None,
    time_scale: Annotated[
        float | None, typer.Option(help="Multiply the source's own inter-arrival times.")
    ] = None,
    shuffle: Annotated[
        bool, typer.Option("--shuffle", help="Pick a seeded random -n of the filtered records.")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail on a malformed record instead of skipping it.")
    ] = False,
    text: Annotated[bool, typer.Option(help="Keep prompt and response text columns.")] = True,
    model: Annotated[
        str | None, typer.Option(help="lmsys, burstgpt: keep this model's rows only.")
    ] = None,
    timestamp_unit: Annotated[
        str | None, typer.Option(help="vllm-timed: ms (default) or s.")
    ] = None,
    prompt_dist: Annotated[
        str | None, typer.Option(help="synthetic: e.g. lognormal:mu=5,sigma=1.")
    ] = None,
    output_dist: Annotated[
        str | None, typer.Option(help="synthetic: e.g. uniform:low=1,high=512.")
    ] = None,
    hash_block_tokens: Annotated[
        int | None,
        typer.Option(
            help="Prompt tokens per hash_ids block (text sources, shared-prefix: 16, vLLM's "
            "block; vllm-timed: 512, Mooncake's)."
        ),
    ] = None,
    hash_ids: Annotated[
        bool, typer.Option(help="Write hash_ids (prefix identity) where the source has it.")
    ] = True,
    turns: Annotated[
        str | None,
        typer.Option(
            help="sharegpt, lmsys: first (default: each conversation's first exchange) or all "
            "(one request per user turn; sessions)."
        ),
    ] = None,
    max_turns: Annotated[
        int | None, typer.Option(help="With --turns all: at most this many turns a session.")
    ] = None,
    think_dist: Annotated[
        str | None,
        typer.Option(
            help="With --turns all: think time before a turn, s (default fixed:5; or e.g. "
            "exponential:mean=5)."
        ),
    ] = None,
    stages: Annotated[
        str | None,
        typer.Option(
            help="Back-to-back stages RATExSECONDS,...: exactly round(rate x duration) "
            "requests each (e.g. 8x600,20x600)."
        ),
    ] = None,
    num_groups: Annotated[
        int | None, typer.Option(help="shared-prefix: system prompts (default 10).")
    ] = None,
    prompts_per_group: Annotated[
        int | None, typer.Option(help="shared-prefix: questions per system prompt (10).")
    ] = None,
    system_prompt_len: Annotated[
        int | None, typer.Option(help="shared-prefix: system prompt tokens (100).")
    ] = None,
    question_len: Annotated[
        int | None, typer.Option(help="shared-prefix: question tokens (50).")
    ] = None,
    output_len: Annotated[
        int | None, typer.Option(help="shared-prefix: output tokens (50).")
    ] = None,
) -> None:
    """Build a trace: first turns (or sessions), token counts, hash ids, filters, arrivals."""
    if output.is_dir():
        raise TraceError(f"--output {output}: is a directory")
    cfg = BuildConfig(
        source=source,
        path=path,
        num_requests=num_requests,
        offset=offset,
        limit=limit,
        seed=seed,
        tokenizer=tokenizer,
        max_prompt_tokens=max_prompt_tokens,
        max_output_tokens=max_output_tokens,
        rate=rate,
        cv=cv,
        burst=burst,
        duration_s=duration,
        time_scale=time_scale,
        shuffle=shuffle,
        strict=strict,
        keep_text=text,
        model=model,
        timestamp_unit=timestamp_unit,
        prompt_dist=prompt_dist,
        output_dist=output_dist,
        hash_block_tokens=hash_block_tokens,
        hash_ids=hash_ids,
        turns=turns,
        max_turns=max_turns,
        think_dist=think_dist,
        stages=stages,
        num_groups=num_groups,
        prompts_per_group=prompts_per_group,
        system_prompt_len=system_prompt_len,
        question_len=question_len,
        output_len=output_len,
    )
    result = build_trace(cfg, RichReporter(Console(stderr=True)))
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    write_trace(result.df, output, result.meta)
    s = summarize(result.df, result.meta)
    rate_text = f", {s.mean_rate_per_s:.2f} req/s" if s.mean_rate_per_s else ""
    typer.echo(
        f"wrote {output}: {plural(s.count, 'request')} over {s.span_s:.1f} s{rate_text}, "
        f"tokenizer {s.tokenizer}{dropped_text(s)}"
    )


def plural(n: int, noun: str) -> str:
    """'1 request', '2,000 requests'."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def dropped_text(s) -> str:
    """'; 2 of 3 records dropped (malformed 2)' when the build dropped any, else ''."""
    dropped = sum(s.rows_dropped.values())
    if not dropped:
        return ""
    reasons = ", ".join(f"{k} {v:,}" for k, v in s.rows_dropped.items())
    of = f" of {s.rows_read:,}" if s.rows_read else ""
    noun = "record" if dropped == 1 and not of else "records"
    return f"; {dropped:,}{of} {noun} dropped ({reasons})"


@app.command()
def show(
    file: Annotated[Path, typer.Argument(help="Trace file (Parquet).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Summarize a trace: size, span, rate, token percentiles, provenance."""
    df, meta = read_trace(file)
    summary = summarize(df, meta, str(file))
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
        return
    console = Console()
    console.print(_overview_table(file, summary))
    console.print(_lengths_table(summary))
    if summary.categories:
        console.print(_categories_table(summary))
    if summary.stages:
        console.print(_stages_table(summary))


def _overview_table(file: Path, s: TraceSummary) -> Table:
    table = Table(title=str(file), show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rate = f"{s.mean_rate_per_s:.3f} req/s" if s.mean_rate_per_s else "- (burst)"
    arrival = ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in s.arrival.items()
        if k != "stages"
    )
    dropped = ", ".join(f"{k} {v:,}" for k, v in s.rows_dropped.items()) or "none"
    rows = [
        ("requests", f"{s.count:,}"),
        ("span", f"{s.span_s:.2f} s"),
        ("mean rate", rate),
        ("inter-arrival cv", "-" if s.interarrival_cv is None else f"{s.interarrival_cv:.3f}"),
        ("arrivals", arrival or "-"),
        ("source", str(s.source)),
        ("synthetic", "YES: generated requests, not recorded traffic" if s.synthetic else "no"),
        ("path", str(s.path or "-")),
        ("tokenizer", str(s.tokenizer)),
        ("records read", "-" if s.rows_read is None else f"{s.rows_read:,}"),
        ("dropped", dropped),
        ("source truncated", "yes" if s.truncated else "no"),
    ]
    if s.hash_block_tokens is not None:
        rows.append(("hash block", f"{s.hash_block_tokens} tokens"))
        rows.append(
            (
                "prefix reuse",
                f"{s.prefix_reuse_share:.1%} of prompt tokens (infinite cache, at most)",
            )
        )
    if s.sessions:
        turns = f"{s.sessions['turns_mean']:.2f} turns each (max {s.sessions['turns_max']})"
        rows.append(("sessions", f"{s.sessions['count']:,}, {turns}"))
    for key, value in rows:
        table.add_row(key, value)
    return table


def _lengths_table(s: TraceSummary) -> Table:
    table = Table(title="tokens per request")
    for name in ("", "mean", "p50", "p90", "p99", "max"):
        table.add_column(name, justify="left" if not name else "right")
    for name, stats in (("prompt", s.prompt_tokens), ("output", s.output_tokens)):
        table.add_row(
            name,
            f"{stats.mean:.1f}",
            f"{stats.p50:.0f}",
            f"{stats.p90:.0f}",
            f"{stats.p99:.0f}",
            f"{stats.max:,}",
        )
    return table


def _stages_table(s: TraceSummary) -> Table:
    table = Table(title="stages")
    for name in ("stage", "rate", "duration", "start", "requests"):
        table.add_column(name, justify="right")
    for i, stage in enumerate(s.stages):
        table.add_row(
            str(i),
            f"{stage['rate']:g} req/s",
            f"{stage['duration_s']:g} s",
            f"{stage['start_s']:g} s",
            f"{stage.get('in_trace', stage['requests']):,}",
        )
    return table


def _categories_table(s: TraceSummary) -> Table:
    table = Table(title="requests per category")
    table.add_column("category")
    table.add_column("share", justify="right")
    for name, share in s.categories.items():
        table.add_row(name, f"{share:.1%}")
    return table
