"""Routers: which replica of a fleet serves each request (the contract is in base.py).

`make_router("weighted:prefix=3,queue=2")` builds a router from a spec;
`available_routers()` lists the names. Adding a router: one file with a
`@register_router("name")` dataclass, plus its import line below.
"""

# Importing a router's module registers it: one line per router file.
from policies.routing import length, load, prefix, session, weighted  # noqa: F401
from policies.routing.base import PrefixProbe, ReplicaLoad, Router, RouteRequest, RouterError
from policies.routing.registry import available_routers, make_router, register_router

__all__ = [
    "PrefixProbe",
    "ReplicaLoad",
    "RouteRequest",
    "Router",
    "RouterError",
    "available_routers",
    "make_router",
    "register_router",
]
