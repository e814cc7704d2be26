"""Policy names to classes, and `NAME[:key=value,...]` specs to policy objects.

A policy is a dataclass subclass of `Policy` whose init fields are its spec parameters;
`@register("name")` adds it to the registry, and the field types say how to parse the
values, so adding a policy is one file plus one import line in policies/__init__.py.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from policies.base import Policy, PolicyError

P = TypeVar("P", bound=type[Policy])

_REGISTRY: dict[str, type[Policy]] = {}
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def param(default: Any, help: str) -> Any:
    """A spec parameter: a dataclass field with a default and a one-line help text."""
    return dataclasses.field(default=default, metadata={"help": help})


def state() -> Any:
    """Run-time state of a policy: not a parameter, not compared, not in repr."""
    return dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)


def register(name: str) -> Callable[[P], P]:
    """Class decorator: make a Policy dataclass selectable as `--policy name`."""

    def add(cls: P) -> P:
        if name in _REGISTRY:
            raise ValueError(f"policy {name!r} registered twice")
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"policy {name!r}: {cls.__name__} must be a dataclass")
        from policies.starvation import StarvationPrevention

        clash = set(params_of(cls)) & set(params_of(StarvationPrevention))
        if clash:
            raise TypeError(f"policy {name!r}: parameters {sorted(clash)} are the wrapper's")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return add


def available() -> dict[str, str]:
    """{name: one-line doc} of every registered policy, by name."""
    return {name: first_line(cls) for name, cls in sorted(_REGISTRY.items())}


def policy_class(name: str) -> type[Policy]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise PolicyError(
            f"unknown policy {name!r}{did_you_mean(name, sorted(_REGISTRY))}; "
            f"available: {', '.join(sorted(_REGISTRY))}"
        ) from None


def did_you_mean(word: str, options: list[str]) -> str:
    """' (did you mean X?)' for the option a mistyped or shortened word most likely
    meant (one it begins, else the closest by difflib), or ''."""
    starts = [o for o in options if o.startswith(word)] if word else []
    close = starts[:1] if len(starts) == 1 else difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def first_line(cls: type) -> str:
    return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


def params_of(cls: type) -> dict[str, dataclasses.Field]:
    """The spec parameters of a policy class, in declaration order."""
    return {f.name: f for f in dataclasses.fields(cls) if f.init and "help" in f.metadata}


def parse_spec(
    spec: str, kind: str = "policy", error: type[PolicyError] = PolicyError
) -> tuple[str, dict[str, str]]:
    """'ltr:col=score_a,starvation=200' -> ('ltr', {'col': 'score_a', 'starvation': '200'}).

    kind and error name what is parsed in messages ("router" for policies/routing)."""
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if not name:
        raise error(f"empty {kind} name in spec {spec!r}")
    raw: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key:
            raise error(f"{kind} {name!r}: expected key=value, got {item!r}")
        if key in raw:
            raise error(f"{kind} {name!r}: parameter {key!r} given twice")
        raw[key] = value
    return name, raw


def coerce(
    owner: str,
    cls: type,
    raw: dict[str, str],
    kind: str = "policy",
    error: type[PolicyError] = PolicyError,
) -> dict[str, Any]:
    """Parse raw string values by the annotated types of cls's parameters."""
    fields = params_of(cls)
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for key, text in raw.items():
        if key not in fields:
            raise error(
                f"{kind} {owner!r} has no parameter {key!r}{did_you_mean(key, list(fields))}; "
                f"valid: {', '.join(fields) or 'none'}"
            )
        out[key] = _parse_value(owner, key, text, hints[key], kind, error)
    return out


def _parse_value(
    owner: str,
    key: str,
    text: str,
    hint: Any,
    kind: str = "policy",
    error: type[PolicyError] = PolicyError,
) -> Any:
    base = hint
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        base = args[0]
    if optional and text.lower() == "none":
        return None
    try:
        if base is bool:
            low = text.lower()
            if low not in _TRUE | _FALSE:
                raise ValueError
            return low in _TRUE
        if base is int:
            return int(text)
        if base is float:
            value = float(text)
            if math.isnan(value):
                raise ValueError
            return value
        if base is str:
            if not text:
                raise ValueError
            return text
    except ValueError:
        raise error(
            f"{kind} {owner!r}: bad value {text!r} for {key} (expected {base.__name__})"
        ) from None
    raise TypeError(f"parameter {key} of {owner!r} has unsupported type {hint!r}")


def make_policy(spec: str) -> Policy:
    """Build a policy from `NAME[:key=value,...]`.

    The keys starvation, quantum and max_wait_s wrap any policy in starvation prevention
    (policies/starvation.py); every other key is a parameter of the named policy.
    """
    from policies.starvation import StarvationPrevention

    name, raw = parse_spec(spec)
    cls = policy_class(name)
    own, outer = params_of(cls), params_of(StarvationPrevention)
    for key in raw:
        if key not in own and key not in outer:
            options = [*own, *outer]
            raise PolicyError(
                f"policy {name!r} has no parameter {key!r}{did_you_mean(key, options)}; "
                f"valid: {', '.join(options)}"
            )
    wrapper_raw = {k: v for k, v in raw.items() if k in outer}
    policy = cls(**coerce(name, cls, {k: v for k, v in raw.items() if k in own}))
    if wrapper_raw:
        policy = StarvationPrevention(
            inner=policy, **coerce(name, StarvationPrevention, wrapper_raw)
        )
    return policy
