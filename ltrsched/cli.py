"""The `ltrsched` command. Each package contributes its own subcommands; this module
only composes them and turns user mistakes into one-line errors with a non-zero exit."""

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


def _register() -> None:
    for module, attr, name in _SUBCOMMANDS:
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
    found = []
    for module, attr in _USER_ERRORS:
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


def main(argv: list[str] | None = None) -> int:
    _register()
    command = typer.main.get_command(app)
    _plain_metavars(command)
    user_errors = _user_errors()
    try:
        rv = command.main(args=argv, prog_name="ltrsched", standalone_mode=False)
    except _CLICK_ERRORS as e:
        e.show()
        return e.exit_code
    except _ABORTS:
        print("aborted", file=sys.stderr)
        return 130
    except user_errors as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"error: no such file: {e.filename}", file=sys.stderr)
        return 2
    except (FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError) as e:
        # An output path the command's own check did not foresee: still one line. A
        # rename onto the target (traces.io.atomic_write) names the target second.
        print(f"error: {e.filename2 or e.filename}: {e.strerror.lower()}", file=sys.stderr)
        return 2
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
