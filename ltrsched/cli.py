"""The `ltrsched` command. Each package contributes its own subcommands; this module
only composes them and turns user mistakes into one-line errors with a non-zero exit.
A command imports only its own package: `ltrsched simulate` never loads plotly or torch."""

from __future__ import annotations

import importlib
import sys

import click
import typer

try:  # typer 0.2x ships its own copy of click; its exceptions are not click's.
    from typer import _click as typer_click
except ImportError:  # pragma: no cover
    typer_click = click

_CLICK_ERRORS = (click.ClickException, typer_click.ClickException)
_ABORTS = (click.exceptions.Abort, getattr(typer_click.exceptions, "Abort", click.exceptions.Abort))

app = typer.Typer(
    name="ltrsched",
    help="A workbench for LLM request scheduling: build traces, simulate a vLLM server "
    "under a policy, train the learning-to-rank predictor, replay on real vLLM, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help, for every subcommand (they inherit it): it wraps at the
    # terminal's width; rich's panels cut option names at 80 columns (--max-batched-tok…)
    # and keep a docstring's line breaks mid-sentence.
    rich_markup_mode=None,
)


@app.callback()
def _root() -> None:
    # A callback keeps the app a group when only one subcommand is registered (main()
    # registers just the one asked for); typer would otherwise run that one as the app.
    pass


# (module, attribute, name): a Typer sub-app or a command function, registered under name.
_SUBCOMMANDS = [
    ("traces.cli", "app", "trace"),
    ("policies.cli", "app", "policies"),
    ("policies.routing.cli", "app", "routers"),
    ("sim.cli", "simulate", "simulate"),
    ("sim.profile_cli", "app", "profile"),
    ("predictor.cli", "app", "predictor"),
    ("ltrsched.demo", "demo", "demo"),
    ("live.cli", "app", "live"),
    ("live.cli", "serve", "serve"),
    ("analysis.compare", "compare", "compare"),
    ("analysis.sweep_cli", "sweep", "sweep"),
    ("analysis.report_cli", "report", "report"),
    ("analysis.paper_cli", "paper", "paper"),
]

# Each package's exception for user mistakes, caught once here.
_USER_ERRORS = [
    ("traces.errors", "TraceError"),
    ("policies.base", "PolicyError"),
    ("sim.errors", "SimError"),
    ("predictor.errors", "PredictorError"),
    ("analysis.errors", "AnalysisError"),
    ("live.errors", "LiveError"),
]


def _register(names: set[str] | None = None) -> None:
    """Add the subcommands named (all by default) to the app, each once."""
    have = {g.name for g in app.registered_groups} | {c.name for c in app.registered_commands}
    for module, attr, name in _SUBCOMMANDS:
        if name in have or (names is not None and name not in names):
            continue
        try:
            obj = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as e:  # a package not built yet, or an optional extra
            if e.name and e.name.split(".")[0] == module.split(".")[0]:
                continue
            raise
        if isinstance(obj, typer.Typer):
            app.add_typer(obj, name=name)
        else:
            app.command(name, context_settings=getattr(obj, "context_settings", None))(obj)


def _user_errors() -> tuple[type[BaseException], ...]:
    """The user-mistake exceptions of the packages loaded so far: a package that was
    never imported raised none, and importing it here would cost every command."""
    found = []
    for module, attr in _USER_ERRORS:
        if module.split(".")[0] not in sys.modules:
            continue
        try:
            found.append(getattr(importlib.import_module(module), attr))
        except (ModuleNotFoundError, AttributeError):
            pass
    return tuple(found)


def _plain_metavars(command) -> None:
    """Names for click's plain help where typer has none of its own: MODEL for an
    argument (not {model}), <path> for a repeatable option (not <list[Path]>)."""
    for p in command.params:
        if p.metavar is not None:
            continue
        if p.param_type_name == "argument":
            p.metavar = p.name.upper()
        elif getattr(p, "multiple", False):
            element = p.bare_type().removeprefix("list[").removesuffix("]")
            p.metavar = f"<{element.lower()}>"
    for sub in getattr(command, "commands", {}).values():
        _plain_metavars(sub)


def _asked_for(argv: list[str]) -> set[str] | None:
    """The subcommand the command line names, when it names a known one; else None
    (top-level help, a typo), and then every subcommand is loaded to list them."""
    first = next((a for a in argv if not a.startswith("-")), None)
    known = {name for _, _, name in _SUBCOMMANDS}
    return {first} if first in known else None


def main(argv: list[str] | None = None) -> int:
    _register(_asked_for(sys.argv[1:] if argv is None else argv))
    command = typer.main.get_command(app)
    _plain_metavars(command)
    try:
        rv = command.main(args=argv, prog_name="ltrsched", standalone_mode=False)
    except _CLICK_ERRORS as e:
        e.show()
        return e.exit_code
    except _ABORTS:
        print("aborted", file=sys.stderr)
        return 130
    except Exception as e:
        code = _one_line(e)
        if code is None:  # a bug: trace back
            raise
        return code
    return rv if isinstance(rv, int) else 0


def _one_line(e: Exception) -> int | None:
    """Print a user mistake as one line and return the exit status (2); None otherwise."""
    if isinstance(e, _user_errors()):
        print(f"error: {e}", file=sys.stderr)
    elif isinstance(e, FileNotFoundError):
        print(f"error: no such file: {e.filename}", file=sys.stderr)
    elif isinstance(e, (FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)):
        # An output path the command's own check did not foresee: still one line. A
        # rename onto the target (traces.io.atomic_write) names the target second.
        print(f"error: {e.filename2 or e.filename}: {e.strerror.lower()}", file=sys.stderr)
    else:
        return None
    return 2


if __name__ == "__main__":
    sys.exit(main())
