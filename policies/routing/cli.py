"""`ltrsched routers`: list the routers of a fleet, check a router spec."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from policies.base import format_param
from policies.registry import params_of
from policies.routing import available_routers, make_router
from policies.routing.registry import router_class

app = typer.Typer(
    name="routers",
    help="Routers of a fleet of replicas: list them, check a --router spec.",
    no_args_is_help=True,
    add_completion=False,
)


def _params(cls: type) -> str:
    return "\n".join(
        f"{name}={format_param(f.default)}: {f.metadata['help']}"
        for name, f in params_of(cls).items()
    )


@app.command("list")
def list_routers() -> None:
    """Print every router with its parameters (spec: NAME[:key=value,...])."""
    table = Table(title="routers (--router NAME[:key=value,...])", show_lines=True)
    table.add_column("name", style="bold")
    table.add_column("what it does")
    table.add_column("parameters (default: meaning)")
    for name, doc in available_routers().items():
        table.add_row(name, doc, _params(router_class(name)) or "-")
    Console().print(table)


@app.command("show")
def show(
    spec: str = typer.Argument(..., help="a router spec, e.g. weighted:prefix=3,queue=2"),
) -> None:
    """Parse a spec and print its canonical form (errors name the bad key or value)."""
    router = make_router(spec)
    typer.echo(router.describe())
    typer.echo(
        f"requires={','.join(router.requires) or '-'} "
        f"uses_prefix_cache={format_param(router.uses_prefix_cache)}"
    )
