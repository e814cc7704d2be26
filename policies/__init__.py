"""Scheduling policies: one object orders requests for both the simulator and live vLLM.

`make_policy("ltr:starvation=200,quantum=10")` builds a policy from a spec;
`available()` lists the names. Adding a policy: one file with a `@register("name")`
dataclass, plus its import line below.
"""

# Importing a policy's module registers it: one line per policy file.
from policies import (  # noqa: F401
    approx_oracle,
    classify,
    fcfs,
    gittins,
    ltr,
    mlfq,
    prompt_length,
    sjf_oracle,
    srtf_oracle,
    uncached_prefill,
)
from policies.base import Policy, PolicyError, RequestCounters, RequestView, tie_key
from policies.registry import available, make_policy, register

__all__ = [
    "Policy",
    "PolicyError",
    "RequestCounters",
    "RequestView",
    "available",
    "make_policy",
    "register",
    "tie_key",
]
