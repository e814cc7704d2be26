#!/usr/bin/env bash
# Installs ltrsched into .venv and runs the main job end to end on bundled data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh "predictor"
.venv/bin/ltrsched demo "$@"
