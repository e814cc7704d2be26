"""Help at 80 columns: every option named whole, nothing cut, no line too long."""

import pytest
import typer

from ltrsched.cli import _register, app, main


def commands():
    """(argv prefix, click command) of every command and subcommand."""
    _register()
    root = typer.main.get_command(app)
    todo, out = [((), root)], []
    while todo:
        path, cmd = todo.pop()
        subs = getattr(cmd, "commands", None)
        if subs:
            todo += [((*path, name), sub) for name, sub in subs.items()]
        else:
            out.append((path, cmd))
    return sorted(out, key=lambda x: x[0])


@pytest.mark.parametrize(
    ("path", "cmd"), commands(), ids=lambda x: " ".join(x) if isinstance(x, tuple) else ""
)
def test_help_fits_80_columns_and_names_every_option(path, cmd, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    assert main([*path, "--help"]) == 0
    text = capsys.readouterr().out
    assert "…" not in text and "list[" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    for p in cmd.params:
        for opt in p.opts if p.param_type_name == "option" else ():
            assert opt in text, opt


def test_simulate_help_names_max_batched_tokens(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    main(["simulate", "--help"])
    assert "--max-batched-tokens <int>" in capsys.readouterr().out
