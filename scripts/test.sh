#!/usr/bin/env bash
# The test command of README.md (and of CI): install what is missing, build the server venvs, lint,
# build the docs, then run every test. On a fresh machine about 25 minutes (the three server venvs ~5,
# the tests ~18, Warp's first kernel compiles included); later runs skip what is built.
# Arguments go to pytest (e.g. `bash scripts/test.sh -q -k vector`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash scripts/setup.sh test
# The real simulators' servers run from venvs of their own (their pins clash with the client's),
# built once and cached under $GYM_REMOTE_VENVS (default ~/.cache/gym-remote/venvs).
# MetaSim first: its pinned source must be fetched (or given), and a missing one fails in seconds.
echo "[test] RoboVerse MetaSim server venv" >&2
bash scripts/build_metasim_venv.sh >/dev/null
echo "[test] Isaac Lab 3.0 server venv (Newton, and PhysX through ovphysx)" >&2
bash scripts/build_isaaclab_venv.sh >/dev/null
echo "[test] Ray 2.60 / RLlib venv (its gymnasium 1.2 pin stays out of the client's)" >&2
bash scripts/build_ray_venv.sh >/dev/null
export MUJOCO_GL=${MUJOCO_GL:-egl}
$PY -m ruff check gym_remote gym_remote_apps tests examples
$PY -m ruff format --check gym_remote gym_remote_apps tests examples
# The docs site, warnings as errors (a broken link or a page left out of the nav fails).
site=$(mktemp -d)
$PY -m mkdocs build --strict --quiet -d "$site"
rm -rf "$site"
$PY -m pytest "$@"
