#!/usr/bin/env bash
# Install gym-remote into the active Python (make and activate a venv first), with what one use needs:
#
#   bash scripts/setup.sh client   # the client and server core only (pip install -e .): seconds
#   bash scripts/setup.sh demo     # + MuJoCo replay and video ([replay]), Mesa EGL/OSMesa for
#                                  #   headless rendering: about 1 minute (the default)
#   bash scripts/setup.sh test     # + everything the tests use ([all]: SB3 with torch's CPU build,
#                                  #   Fabric), an OpenSSH server for the launcher tests: 3-5 minutes cold
#
# Safe to run again: Debian packages, torch and the pip install are skipped when already there.
# Debian packages need root (sudo is used when not root). The Isaac Lab, MetaSim and Ray/RLlib venvs
# are separate: scripts/build_{isaaclab,metasim,ray}_venv.sh (test.sh runs all three).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-demo}
PY=${PYTHON:-python3}
say() { echo "[setup] $*" >&2; }

case "$what" in
  client) apt_packages=(); extras="" ;;
  demo) apt_packages=(libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6); extras="[replay]" ;;
  test) apt_packages=(libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6 openssh-server openssh-client); extras="[all]" ;;
  -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
  *) echo "usage: scripts/setup.sh [client|demo|test]" >&2; exit 2 ;;
esac

missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "$what" = test ] && ! $PY -c "import torch" >/dev/null 2>&1; then
  # PyTorch before stable-baselines3, and its CPU build: from PyPI, torch on Linux is a CUDA build
  # of several GB. PyTorch's own CPU index first; the default index when that is not reachable.
  say "torch 2.13.0, CPU build"
  $PY -m pip install -q --timeout 10 --retries 0 --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
    2>/dev/null || $PY -m pip install --progress-bar on "torch==2.13.0"
fi

stamp=".setup-$what"
want="$(sha256sum < pyproject.toml | cut -c1-16) $($PY -c 'import sys; print(sys.prefix)') $(pwd)"
here=$(pwd)
installed() {  # gym_remote importable from outside this folder, and it is this checkout
  (cd / && $PY -c "import gym_remote, sys; sys.exit(not gym_remote.__file__.startswith('$here/'))") >/dev/null 2>&1
}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && installed; then
  say "gym-remote$extras already installed"
else
  say "pip install -e .$extras"
  $PY -m pip install --progress-bar on -e ".$extras"
  echo "$want" > "$stamp"
fi
