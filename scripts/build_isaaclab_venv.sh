#!/usr/bin/env bash
# Build (or refresh) the Isaac Lab 3.0 server venv: the real Isaac Lab, Newton physics on Warp's CPU
# device, and gym-remote's server core. Idempotent: the heavy part is built once and cached under
# $GYM_REMOTE_VENVS (default ~/.cache/gym-remote/venvs); a later run only re-links this checkout.
#
#   bash scripts/build_isaaclab_venv.sh          # prints the venv's python on its last line
#
# Why by hand and not `pip install isaaclab`: the 3.0.0 wheel declares Python 3.12 and pins
# torch 2.11.0 (+ torchvision, which would pull CUDA wheels). On Python 3.11 with the CPU build of
# torch 2.13 the Newton tasks run (checked: Isaac-Cartpole, Isaac-Cartpole-Direct). So: CPU torch
# first, then the wheel's own unconditional requirements read from its METADATA minus the torch pins
# and the heavy optional packages that the served tasks never import, then the wheel with --no-deps.
# Takes about 6 minutes cold (a ~2.5 GB venv); gym-remote adds only its small core (no moviepy, no
# MuJoCo rendering), so Isaac Lab's pins (pillow>=12.3, numpy>=2) are left alone.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
ISAACLAB_VERSION=${ISAACLAB_VERSION:-3.0.0}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
root=${GYM_REMOTE_VENVS:-$HOME/.cache/gym-remote/venvs}
venv="$root/isaaclab-$ISAACLAB_VERSION"
PY=${PYTHON:-python3}
# Requirements that Cartpole, Lift and Stack never import; each is heavy or needs a GPU stack.
SKIP='^(torch|torchvision|open3d|transformers|tensorboard|pin|pin-pink|daqp|imgui-bundle|hf-xet|hidapi|PyOpenGL-accelerate)$'
stamp="$venv/.gym-remote-built"
want="isaaclab=$ISAACLAB_VERSION $TORCH_SPEC skip=$SKIP v2"

step() { echo "[isaaclab-venv] $*" >&2; }

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  step "building $venv (about 6 minutes the first time)"
  rm -rf "$venv"
  mkdir -p "$root"
  $PY -m venv "$venv"
  pip=("$venv/bin/python" -m pip --disable-pip-version-check)
  "${pip[@]}" install -q --upgrade pip packaging
  step "1/4 $TORCH_SPEC (CPU build)"
  "${pip[@]}" install --progress-bar on "$TORCH_SPEC"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  step "2/4 the isaaclab $ISAACLAB_VERSION wheel"
  "${pip[@]}" download -q --no-deps --ignore-requires-python -d "$tmp" "isaaclab==$ISAACLAB_VERSION"
  wheel=$(ls "$tmp"/isaaclab-*.whl)
  # Unconditional Requires-Dist lines (no "extra ==" marker), minus the skipped names.
  "$venv/bin/python" - "$wheel" "$SKIP" > "$tmp/requirements.txt" <<'EOF'
import re, sys, zipfile
from packaging.requirements import Requirement
wheel, skip = sys.argv[1], re.compile(sys.argv[2])
with zipfile.ZipFile(wheel) as zf:
    meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
    lines = zf.read(meta).decode().splitlines()
for line in lines:
    if not line.startswith("Requires-Dist:"):
        continue
    req = Requirement(line.split(":", 1)[1].strip())
    if skip.match(req.name) or (req.marker and "extra" in str(req.marker)):
        continue
    print(str(req).replace('python_version < "3.13" and ', ""))
EOF
  step "3/4 Isaac Lab's requirements ($(wc -l < "$tmp/requirements.txt") packages)"
  # Nothing CUDA may come in: torch is already satisfied, so pip must not touch it.
  if "${pip[@]}" install --dry-run -q --report "$tmp/report.json" -r "$tmp/requirements.txt" >/dev/null 2>&1 \
     && grep -q '"name": "nvidia-' "$tmp/report.json"; then
    step "refusing: the requirements would pull CUDA wheels"; exit 1
  fi
  "${pip[@]}" install --progress-bar on -r "$tmp/requirements.txt"
  step "4/4 isaaclab itself (--no-deps --ignore-requires-python)"
  "${pip[@]}" install -q --no-deps --ignore-requires-python "$wheel"
  # gym-remote's server core only.
  "${pip[@]}" install -q "pyzmq>=25" "msgpack>=1.0" "pyyaml>=6.0"
  echo "$want" > "$stamp"
fi
# Link this checkout (cheap, every run): the server runs the code under test.
if ! out=$("$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e "$here" 2>&1); then
  echo "$out" >&2; step "could not install $here into the venv"; exit 1
fi
"$venv/bin/python" -c "import isaaclab, isaaclab_tasks, gym_remote" >/dev/null
# Offline stand-ins of the assets the Cartpole tasks load (NVIDIA's asset server is not reachable
# from every box); serve with --kwargs '{"asset_root": "<venv>/assets"}'. Existing files are kept.
"$venv/bin/python" -m gym_remote.backends.isaaclab.assets "$venv/assets" >/dev/null 2>&1
echo "$venv/bin/python"
