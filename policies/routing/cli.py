"""`ltrsched routers`: list the routers of a fleet, check a router spec."""

from __future__ import annotations

import typer
from rich.console import Console

from policies.base import format_param
from policies.cli import params_help, spec_table
from policies.routing import available_routers, make_router
from policies.routing.registry import router_class

app = typer.Typer(
    name="routers",
    help="Routers of a fleet of replicas: list them, check a --router spec.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command("list")
def list_routers() -> None:
    """Print every router with its parameters (spec: NAME[:key=value,...])."""
    table = spec_table("routers", "--router")
    for name, doc in available_routers().items():
        table.add_row(name, doc, params_help(router_class(name)) or "-")
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
