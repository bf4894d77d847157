#!/usr/bin/env bash
# Install everything gym-remote needs on a fresh Debian machine: system packages (headless
# MuJoCo rendering, an OpenSSH server for the launcher tests), the CPU build of PyTorch, then the
# package itself with its test and SB3 extras. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(openssh-server openssh-client libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
# PyTorch first and pinned to the CPU build, or stable-baselines3 pulls several GB of CUDA wheels.
if ! $PY -c "import torch" >/dev/null 2>&1; then
  echo "setup: installing torch (CPU)"
  $PY -m pip install -q "torch==2.13.0"
fi
echo "setup: installing gym-remote[all]"
$PY -m pip install -q -e ".[all]"
