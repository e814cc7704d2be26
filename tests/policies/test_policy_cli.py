"""`ltrsched policies list` and `show`."""

from __future__ import annotations

from typer.testing import CliRunner

from policies import available
from policies.cli import app


def test_list_prints_every_policy():
    result = CliRunner().invoke(app, ["list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in available():
        assert name in result.output
    assert "starvation" in result.output
    text = " ".join(result.output.split())
    for says in ("order=age (default)", "order=paper (vllm-ltr's rule)", "vllm-v1", "ltr-paper"):
        assert says in text


def test_show_prints_the_canonical_spec():
    result = CliRunner().invoke(app, ["show", "ltr:starvation=200"])
    assert result.exit_code == 0, result.output
    assert "ltr:starvation=200,quantum=10,order=age" in result.output
    assert "static_keys=False" in result.output
