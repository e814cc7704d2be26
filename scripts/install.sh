#!/usr/bin/env bash
# Creates .venv (if missing) and installs ltrsched with what the demo and the tests need.
# Idempotent: a second run only checks. Usage: bash scripts/install.sh [extras]
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-test,predictor}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
"$VPY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
case ",$EXTRAS," in
  *,predictor,*)
    # The CPU build of torch first: an unpinned torch pulls a multi-GB CUDA build.
    # With a GPU, install your own torch before running this script.
    if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
      "$VPY" -m pip install -q "torch==2.13.0+cpu" \
        || "$VPY" -m pip install -q "torch==2.13.0+cpu" --extra-index-url https://download.pytorch.org/whl/cpu
    fi
    ;;
esac
"$VPY" -m pip install -q -e ".[${EXTRAS}]"
