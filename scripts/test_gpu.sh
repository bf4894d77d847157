#!/usr/bin/env bash
# The real Isaac Lab tests on a GPU: the same tests CI runs on the CPU (tests marked `isaaclab`), with the
# server venv built on torch's CUDA build, so the backend's device path is checked where it matters:
# Isaac Lab's tensors stay on cuda:0 (the server's default device when torch sees a GPU) until the one
# host copy per step, ovphysx runs with real pinned host buffers (the CPU-only allocator swap stays off),
# and Newton and PhysX run as Warp CUDA kernels.
#
#   bash scripts/test_gpu.sh            # extra arguments go to pytest (e.g. -k physx)
#
# Exits 2, saying so, where there is no NVIDIA GPU (nvidia-smi lists none). The CUDA venv lives apart from
# the CPU one ($GYM_REMOTE_VENVS, default ~/.cache/gym-remote/venvs-cuda): torch's CUDA wheels are several GB.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  echo "[gpu] no NVIDIA GPU here (nvidia-smi lists none): nothing to check on CUDA" >&2
  exit 2
fi
nvidia-smi -L >&2
export GYM_REMOTE_VENVS=${GYM_REMOTE_VENVS:-$HOME/.cache/gym-remote/venvs-cuda}
export GYM_REMOTE_CUDA=1
bash scripts/setup.sh test
echo "[gpu] Isaac Lab 3.0 server venv on torch's CUDA build" >&2
python=$(bash scripts/build_isaaclab_venv.sh | tail -n1)
"$python" -c "import torch, sys; print('[gpu] server torch', torch.__version__, 'sees', torch.cuda.get_device_name(0), file=sys.stderr); sys.exit(not torch.cuda.is_available())" \
  || { echo "[gpu] the server venv's torch sees no CUDA device" >&2; exit 1; }
export MUJOCO_GL=${MUJOCO_GL:-egl}
$PY -m pytest -m isaaclab "$@"
