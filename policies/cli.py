"""`ltrsched policies`: list the scheduling policies and check a policy spec."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from policies.base import format_param
from policies.registry import available, first_line, make_policy, params_of, policy_class
from policies.starvation import StarvationPrevention

app = typer.Typer(
    name="policies",
    help="Scheduling policies: list them, check a --policy spec.",
    no_args_is_help=True,
    add_completion=False,
)


def _params(cls: type) -> str:
    return "\n".join(
        f"{name}={format_param(f.default)}: {f.metadata['help']}"
        for name, f in params_of(cls).items()
    )


@app.command("list")
def list_policies() -> None:
    """Print every policy with its parameters (spec: NAME[:key=value,...])."""
    table = Table(title="policies (--policy NAME[:key=value,...])", show_lines=True)
    table.add_column("name", style="bold")
    table.add_column("what it does")
    table.add_column("parameters (default: meaning)")
    for name, doc in available().items():
        table.add_row(name, doc, _params(policy_class(name)))
    table.add_row(
        "NAME:starvation=..",
        "Starvation prevention, on any policy: " + first_line(StarvationPrevention),
        _params(StarvationPrevention),
    )
    Console().print(table)


@app.command("show")
def show(spec: str = typer.Argument(..., help="a policy spec, e.g. ltr:starvation=200")) -> None:
    """Parse a spec and print its canonical form (errors name the bad key or value)."""
    policy = make_policy(spec)
    typer.echo(policy.describe())
    typer.echo(f"static_keys={policy.static_keys} requires={','.join(policy.requires) or '-'}")
