"""Router names to classes, and `NAME[:key=value,...]` specs to router objects.

A router is a dataclass subclass of `Router` whose init fields declared with
policies.registry.param are its spec parameters; `@register_router("name")` adds it,
so adding a router is one file plus one import line in policies/routing/__init__.py.
Spec parsing is the policies' own (policies/registry.py), with "router" in its messages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

from policies.registry import coerce, did_you_mean, first_line, parse_spec
from policies.routing.base import Router, RouterError

R = TypeVar("R", bound=type[Router])

_ROUTERS: dict[str, type[Router]] = {}


def register_router(name: str) -> Callable[[R], R]:
    """Class decorator: make a Router dataclass selectable as `--router name`."""

    def add(cls: R) -> R:
        if name in _ROUTERS:
            raise ValueError(f"router {name!r} registered twice")
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"router {name!r}: {cls.__name__} must be a dataclass")
        cls.name = name
        _ROUTERS[name] = cls
        return cls

    return add


def available_routers() -> dict[str, str]:
    """{name: one-line doc} of every registered router, by name."""
    return {name: first_line(cls) for name, cls in sorted(_ROUTERS.items())}


def router_class(name: str) -> type[Router]:
    try:
        return _ROUTERS[name]
    except KeyError:
        names = sorted(_ROUTERS)
        raise RouterError(
            f"unknown router {name!r}{did_you_mean(name, names)}; available: {', '.join(names)}"
        ) from None


def make_router(spec: str) -> Router:
    """Build a router from `NAME[:key=value,...]`, e.g. `weighted:prefix=3,queue=2`."""
    name, raw = parse_spec(spec, kind="router", error=RouterError)
    cls = router_class(name)
    return cls(**coerce(name, cls, raw, kind="router", error=RouterError))
