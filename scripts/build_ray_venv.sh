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
# shellcheck source-path=SCRIPTDIR source=venv_lib.sh
. "$(dirname "$0")/venv_lib.sh"
RAY_VERSION=${RAY_VERSION:-2.60.0}
venv_init ray-venv "ray-$RAY_VERSION"
want="ray[rllib]=$RAY_VERSION $TORCH_SPEC v1"

if venv_stale "$want"; then
  venv_create "about 2 minutes"
  step "1/3 $TORCH_SPEC (CPU build)"
  "${pip[@]}" install -q --timeout 10 --retries 0 --index-url https://download.pytorch.org/whl/cpu "$TORCH_SPEC" \
    2>/dev/null || "${pip[@]}" install --progress-bar on "$TORCH_SPEC"
  venv_refuse_cuda_torch
  step "2/3 ray[rllib]==$RAY_VERSION"
  venv_refuse 'nvidia-[^"]*|torch' "ray[rllib] would replace torch or pull CUDA wheels" "ray[rllib]==$RAY_VERSION"
  "${pip[@]}" install --progress-bar on "ray[rllib]==$RAY_VERSION"
  venv_built "$want"
fi
# Link this checkout (cheap, every run): gym-remote's core and Fabric, never a newer Gymnasium.
step "3/3 gym-remote (this checkout)"
venv_link_checkout "${SERVER_CORE[@]}" "fabric>=3.2"
"$venv/bin/python" -c "import ray, ray.rllib, torch, gymnasium, gym_remote, gym_remote_apps" >/dev/null
echo "$venv/bin/python"
