"""The SimPy discrete-event engine of a vLLM server: batching, paged KV, preemption."""

from sim.config import EngineConfig
from sim.errors import SimError
from sim.profile import StepTimeProfile, load_profile

__all__ = ["EngineConfig", "SimError", "StepTimeProfile", "load_profile"]
