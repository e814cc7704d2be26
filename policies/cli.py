"""`ltrsched policies`: list the scheduling policies, check a policy spec, add oracle
length distributions to a trace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from policies.base import format_param
from policies.lengthdist import NUM_BINS
from policies.registry import available, first_line, make_policy, params_of, policy_class
from policies.starvation import GUARANTEES, StarvationPrevention

app = typer.Typer(
    name="policies",
    help="Scheduling policies: list them, check a --policy spec, add oracle distributions.",
    no_args_is_help=True,
    add_completion=False,
)


def params_help(cls: type) -> str:
    """A spec class's parameters, one `name=default: help` line each."""
    return "\n".join(
        f"{name}={format_param(f.default)}: {f.metadata['help']}"
        for name, f in params_of(cls).items()
    )


def spec_table(things: str, option: str) -> Table:
    """The name / what it does / parameters table of `policies list` and `routers list`."""
    table = Table(title=f"{things} ({option} NAME[:key=value,...])", show_lines=True)
    table.add_column("name", style="bold")
    table.add_column("what it does")
    table.add_column("parameters (default: meaning)")
    return table


@app.command("list")
def list_policies() -> None:
    """Print every policy with its parameters (spec: NAME[:key=value,...])."""
    table = spec_table("policies", "--policy")
    for name, doc in available().items():
        table.add_row(name, doc, params_help(policy_class(name)))
    table.add_row(
        "NAME:starvation=..",
        "Starvation prevention, on any policy: "
        + first_line(StarvationPrevention)
        + "\n"
        + GUARANTEES,
        params_help(StarvationPrevention),
    )
    Console().print(table)


@app.command("show")
def show(spec: str = typer.Argument(..., help="a policy spec, e.g. ltr:starvation=200")) -> None:
    """Parse a spec and print its canonical form (errors name the bad key or value)."""
    policy = make_policy(spec)
    typer.echo(policy.describe())
    typer.echo(f"static_keys={policy.static_keys} requires={','.join(policy.requires) or '-'}")


@app.command("oracle-dist")
def oracle_dist_cmd(
    trace: Annotated[Path, typer.Option("--trace", help="Input trace (Parquet).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output trace (may be the input).")],
    name: Annotated[
        str, typer.Option("--name", help="Writes dist_<name>_NN and score_<name>.")
    ] = "oracle",
    sigma: Annotated[
        float | None,
        typer.Option(
            "--sigma",
            help="Log-space spread (default: the trace's len_sigma, else "
            "0.5); given, it overrides len_sigma.",
        ),
    ] = None,
    noise: Annotated[
        float, typer.Option("--noise", help="Log-space noise on each request's median (0: exact).")
    ] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the per-request noise.")] = 0,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-tokens",
            help="Cut the distributions at this length (default: the cap a synthetic "
            "source records in the trace's metadata, else none).",
        ),
    ] = None,
) -> None:
    """Add a log-normal length distribution per request, centred on the true length (or
    the trace's len_mu/len_sigma) with seeded noise: an oracle for gittins and serpt."""
    from policies.oracle_dist import oracle_dist, output_cap
    from traces.io import read_trace, write_trace

    df, meta = read_trace(trace)
    cap = output_cap(meta) if max_tokens is None else max_tokens
    df, info = oracle_dist(df, name=name, sigma=sigma, noise=noise, seed=seed, max_tokens=cap)
    meta = {**meta, "oracle_dist": {**meta.get("oracle_dist", {}), name: info}}
    write_trace(df, out, meta)
    typer.echo(
        f"wrote {out}: dist_{name}_00..{NUM_BINS - 1:02d} and score_{name} for {len(df)} "
        f"requests ({info['family']}, sigma={info['sigma']}, noise={noise}, seed={seed}"
        + (f", cut at {cap} tokens)" if cap is not None else ")")
    )
