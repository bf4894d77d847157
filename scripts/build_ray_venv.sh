#!/usr/bin/env bash
# Build (or refresh) the Ray/RLlib client venv: Ray 2.60 with RLlib, torch's CPU build, and this
# checkout of gym-remote. Idempotent: built once and cached under $GYM_REMOTE_VENVS (default
# ~/.cache/gym-remote/venvs); a later run only re-links this checkout.
#
#   bash scripts/build_ray_venv.sh          # prints the venv's python on its last line
#
# Why a venv of its own: ray[rllib] 2.60 pins gymnasium==1.2.2 while the project's client runs on
# Gymnasium 1.4, so installing RLlib beside it would downgrade Gymnasium under every other test.
# Order matters: torch==2.13.0's CPU build first (from PyTorch's CPU index where reachable, else the
# default index), so that nothing later pulls a CUDA torch; then ray[rllib], refused if pip would
# bring any nvidia-* wheel; then gym-remote (-e, with the launch extra for Fabric) without touching
# what RLlib pinned. About 2 minutes cold (a ~1.5 GB venv).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
RAY_VERSION=${RAY_VERSION:-2.60.0}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
root=${GYM_REMOTE_VENVS:-$HOME/.cache/gym-remote/venvs}
venv="$root/ray-$RAY_VERSION"
PY=${PYTHON:-python3}
stamp="$venv/.gym-remote-built"
want="ray[rllib]=$RAY_VERSION $TORCH_SPEC v1"

step() { echo "[ray-venv] $*" >&2; }

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  step "building $venv (about 2 minutes the first time)"
  rm -rf "$venv"
  mkdir -p "$root"
  $PY -m venv "$venv"
  pip=("$venv/bin/python" -m pip --disable-pip-version-check)
  "${pip[@]}" install -q --upgrade pip
  step "1/3 $TORCH_SPEC (CPU build)"
  "${pip[@]}" install -q --timeout 10 --retries 0 --index-url https://download.pytorch.org/whl/cpu "$TORCH_SPEC" \
    2>/dev/null || "${pip[@]}" install --progress-bar on "$TORCH_SPEC"
  if "${pip[@]}" list 2>/dev/null | grep -qi '^nvidia-'; then
    step "refusing: $TORCH_SPEC came with CUDA wheels (no CPU build reachable)"; exit 1
  fi
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  step "2/3 ray[rllib]==$RAY_VERSION"
  # Nothing CUDA may come in: torch is already satisfied, so pip must not touch it.
  "${pip[@]}" install --dry-run -q --report "$tmp/report.json" "ray[rllib]==$RAY_VERSION" >/dev/null
  if grep -q '"name": "nvidia-\|"name": "torch"' "$tmp/report.json"; then
    step "refusing: ray[rllib] would replace torch or pull CUDA wheels"; exit 1
  fi
  "${pip[@]}" install --progress-bar on "ray[rllib]==$RAY_VERSION"
  echo "$want" > "$stamp"
fi
# Link this checkout (cheap, every run): gym-remote's core and Fabric, never a newer Gymnasium.
step "3/3 gym-remote (this checkout)"
if ! out=$("$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e "$here" 2>&1 \
    && "$venv/bin/python" -m pip install -q --disable-pip-version-check "pyzmq>=25" "msgpack>=1.0" "pyyaml>=6.0" \
      "fabric>=3.2" 2>&1); then
  echo "$out" >&2; step "could not install $here into the venv"; exit 1
fi
"$venv/bin/python" -c "import ray, ray.rllib, torch, gymnasium, gym_remote" >/dev/null
echo "$venv/bin/python"
