#!/usr/bin/env bash
# Installs what the tests need into .venv, then runs lint and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh "test,predictor,live,ray"
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
