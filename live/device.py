"""A one-line description of the machine vLLM runs on, for summaries and profiles."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_device() -> str:
    """'cpu: <model> (<n> cores)' or 'cuda: <GPU name>', as vLLM's platform sees it."""
    try:
        from vllm.platforms import current_platform

        kind = str(current_platform.device_type)
    except Exception:  # noqa: BLE001 - vLLM missing or broken: describe the host
        kind = "cpu"
    if kind == "cpu":
        return f"cpu: {cpu_name()} ({os.cpu_count()} cores)"
    try:
        import torch

        return f"{kind}: {torch.cuda.get_device_name(0)}"
    except Exception:  # noqa: BLE001
        return kind


def is_cpu_platform() -> bool:
    try:
        from vllm.platforms import current_platform

        return bool(current_platform.is_cpu())
    except Exception:  # noqa: BLE001
        return True
