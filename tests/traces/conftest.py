"""Fixtures for the traces tests: tiny source files made in tmp_path, and a CLI runner."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bundled: reads the data file bundled by a package")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


@pytest.fixture
def sharegpt_file(tmp_path: Path):
    """Write a list of records as a ShareGPT JSON file; returns its path."""

    def make(records: list, name: str = "sharegpt.json") -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(records, indent=1), encoding="utf-8")
        return path

    return make


@pytest.fixture
def jsonl_file(tmp_path: Path):
    """Write dicts (or raw strings) one per line; returns the path."""

    def make(rows: list, name: str = "trace.jsonl") -> Path:
        path = tmp_path / name
        lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return make


@pytest.fixture
def burstgpt_file(tmp_path: Path):
    """Write BurstGPT CSV rows (timestamp, model, request, response); returns the path."""

    def make(rows: list[tuple], name: str = "burstgpt.csv") -> Path:
        header = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"
        lines = [header]
        for ts, model, req, resp in rows:
            total = "" if not all(isinstance(x, int) for x in (req, resp)) else req + resp
            lines.append(f"{ts},{model},{req},{resp},{total},Conversation log")
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return make


@dataclass
class CliResult:
    rc: int
    out: str
    err: str


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """Run `ltrsched trace ARGS...` through ltrsched.cli.main with only traces registered."""
    import ltrsched.cli as cli

    monkeypatch.setattr(cli, "_SUBCOMMANDS", [("traces.cli", "app", "trace")])

    def run(*args) -> CliResult:
        fresh = typer.Typer(name="ltrsched", no_args_is_help=True, add_completion=False)
        monkeypatch.setattr(cli, "app", fresh)
        capsys.readouterr()
        rc = cli.main(["trace", *map(str, args)])
        out, err = capsys.readouterr()
        return CliResult(rc, out, err)

    return run
