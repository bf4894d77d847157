#!/usr/bin/env bash
# The test command of README.md: install what is missing, lint, then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=${PYTHON:-python3}
export MUJOCO_GL=${MUJOCO_GL:-egl}
$PY -m ruff check gym_remote tests examples
$PY -m pytest "$@"
