"""Spec parsing, the registry, describe() round trips."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

import policies
from policies import Policy, PolicyError, available, make_policy, register, registry
from policies.registry import param, parse_spec
from policies.starvation import StarvationPrevention

NAMES = {
    "fcfs",
    "sjf-oracle",
    "srtf-oracle",
    "ltr",
    "classify",
    "prompt-length",
    "uncached-prefill",
    "approx-oracle",
    "mlfq",
    "gittins",
    "serpt",
}


def test_available_lists_every_policy_with_a_doc():
    docs = available()
    assert set(docs) == NAMES
    assert all(doc and "\n" not in doc for doc in docs.values())


def test_exports():
    for name in ["Policy", "RequestView", "RequestCounters", "PolicyError", "tie_key"]:
        assert hasattr(policies, name)
    assert set(policies.__all__) >= {"make_policy", "available", "register"}


def test_parse_spec():
    assert parse_spec("ltr") == ("ltr", {})
    assert parse_spec(" ltr : col = score_a , starvation=200 ") == (
        "ltr",
        {"col": "score_a", "starvation": "200"},
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", "unknown policy 'nope'; available: approx-oracle, classify, fcfs"),
        ("ltr:foo=1", "no parameter 'foo'; valid: col, starvation, quantum, max_wait_s, order"),
        ("sjf", "unknown policy 'sjf' (did you mean sjf-oracle?); available: approx-oracle"),
        ("fcf", "unknown policy 'fcf' (did you mean fcfs?)"),
        ("gitins:dist=x", "unknown policy 'gitins' (did you mean gittins?)"),
        ("ltr:starvaton=200", "no parameter 'starvaton' (did you mean starvation?); valid:"),
        ("mlfq:level=2", "no parameter 'level' (did you mean levels?)"),
        ("mlfq:growth=fast", "bad value 'fast' for growth (expected float)"),
        ("mlfq:levels=2.5", "bad value '2.5' for levels (expected int)"),
        ("classify:percentile=maybe", "bad value 'maybe' for percentile (expected bool)"),
        ("ltr:col=a,col=b", "parameter 'col' given twice"),
        ("fcfs:novalue", "expected key=value"),
        (":x=1", "empty policy name"),
        ("fcfs:quantum=3", "quantum= and order= need starvation= or max_wait_s="),
        ("fcfs:order=paper", "quantum= and order= need starvation= or max_wait_s="),
        ("fcfs:starvation=5,order=fifo", "order must be one of age, paper, got 'fifo'"),
        ("fcfs:starvation=0", "starvation must be >= 1"),
        ("fcfs:starvation=5,quantum=0", "quantum must be >= 1"),
        ("fcfs:max_wait_s=-1", "max_wait_s must be > 0"),
        ("mlfq:growth=1", "growth must be > 1"),
        ("approx-oracle", "needs tau="),
        ("approx-oracle:tau=1.5", "needs tau="),
        ("classify:percentile=true", "needs buckets="),
        ("classify:percentile=true,buckets=4,width=10", "not both"),
        ("classify:width=0", "width must be > 0"),
    ],
)
def test_bad_specs_name_the_problem(spec, message):
    with pytest.raises(PolicyError, match=re.escape(message)):
        make_policy(spec)


def test_typed_values():
    p = make_policy("mlfq:quantum_s=0.5,growth=4,levels=3,prefill_s_per_token=0")
    assert (p.quantum_s, p.growth, p.levels, p.prefill_s_per_token) == (0.5, 4.0, 3, 0.0)
    assert make_policy("classify:percentile=TRUE,buckets=2").percentile is True
    assert make_policy("mlfq:levels=none").levels is None


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("fcfs", "fcfs"),
        ("sjf-oracle:max_wait_s=5", "sjf-oracle:quantum=10,max_wait_s=5.0,order=age"),
        (
            "ltr:col=score_a,starvation=200,order=paper",
            "ltr:col=score_a,starvation=200,quantum=10,order=paper",
        ),
        (
            "classify:buckets=10,width=820",
            "classify:width=820.0,buckets=10,percentile=false,col=output_tokens",
        ),
        ("mlfq", "mlfq:quantum_s=0.03,growth=10.0,prefill_s_per_token=0.0001"),
        ("approx-oracle:tau=0.5", "approx-oracle:tau=0.5,seed=0"),
        ("prompt-length:starvation=3,quantum=2", "prompt-length:starvation=3,quantum=2,order=age"),
    ],
)
def test_describe_is_canonical_and_rebuilds(spec, canonical):
    p = make_policy(spec)
    assert p.describe() == canonical
    assert make_policy(canonical) == p
    assert make_policy(canonical).describe() == canonical


def test_wrapper_keys_make_a_wrapper():
    p = make_policy("sjf-oracle:starvation=200,quantum=10")
    assert isinstance(p, StarvationPrevention)
    assert p.name == "sjf-oracle" and p.static_keys is False
    assert p.requires == ("output_tokens",)
    assert make_policy("sjf-oracle").static_keys is True


def test_register_one_file_one_line(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register("longest-prompt")
    @dataclass
    class LongestPrompt(Policy):
        """Longest prompt first."""

        weight: float = param(1.0, "a made-up parameter")

        def key(self, r, now_s):
            return -self.weight * r.prompt_tokens

    assert available()["longest-prompt"] == "Longest prompt first."
    p = make_policy("longest-prompt:weight=2,starvation=7")
    assert p.describe() == "longest-prompt:weight=2.0,starvation=7,quantum=10,order=age"
    with pytest.raises(ValueError, match="registered twice"):
        register("longest-prompt")(LongestPrompt)


def test_register_rejects_wrapper_parameter_names(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @dataclass
    class Clash(Policy):
        quantum: int = param(1, "clashes with the wrapper")

    with pytest.raises(TypeError, match="wrapper"):
        register("clash")(Clash)
