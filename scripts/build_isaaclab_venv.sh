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
# Takes about 2 minutes cold with a warm pip cache (a ~3 GB venv with ovphysx); gym-remote adds only its small core (no moviepy, no
# MuJoCo rendering), so Isaac Lab's pins (pillow>=12.3, numpy>=2) are left alone.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=venv_lib.sh
. "$(dirname "$0")/venv_lib.sh"
ISAACLAB_VERSION=${ISAACLAB_VERSION:-3.0.0}
venv_init isaaclab-venv "isaaclab-$ISAACLAB_VERSION"
# Requirements that Cartpole, Lift and Stack never import; each is heavy or needs a GPU stack.
SKIP='^(torch|torchvision|open3d|transformers|tensorboard|pin|pin-pink|daqp|imgui-bundle|hf-xet|hidapi|PyOpenGL-accelerate)$'
# NVIDIA's kit-less PhysX at Isaac Lab 3.0.0's own pins (its `ovphysx` extra); 0.7.0 fails with 3.0.0
# (`module 'ovphysx' has no attribute 'codeless_schema_paths'`). ~212 MB of wheels, ~630 MB installed.
OVPHYSX=(ovphysx==0.6.4.72118723 ovstage==0.2.1.385922)
want="isaaclab=$ISAACLAB_VERSION $TORCH_SPEC${GYM_REMOTE_CUDA:+ cuda} skip=$SKIP ${OVPHYSX[*]} v3"

if venv_stale "$want"; then
  venv_create "2-6 minutes" packaging
  step "1/5 $TORCH_SPEC ($([ "${GYM_REMOTE_CUDA:-}" = 1 ] && echo CUDA || echo CPU) build)"
  "${pip[@]}" install --progress-bar on "$TORCH_SPEC"
  venv_refuse_cuda_torch
  step "2/5 the isaaclab $ISAACLAB_VERSION wheel"
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
  step "3/5 Isaac Lab's requirements ($(wc -l < "$tmp/requirements.txt") packages)"
  venv_refuse 'nvidia-[^"]*' "the requirements would pull CUDA wheels" -r "$tmp/requirements.txt"
  "${pip[@]}" install --progress-bar on -r "$tmp/requirements.txt"
  step "4/5 isaaclab itself (--no-deps --ignore-requires-python)"
  "${pip[@]}" install -q --no-deps --ignore-requires-python "$wheel"
  step "5/5 PhysX without Kit: ${OVPHYSX[*]}"
  venv_refuse 'nvidia-[^"]*|torch' "ovphysx would pull CUDA wheels or another torch" "${OVPHYSX[@]}"
  "${pip[@]}" install --progress-bar on "${OVPHYSX[@]}"
  # gym-remote's server core only.
  "${pip[@]}" install -q "${SERVER_CORE[@]}"
  venv_built "$want"
fi
venv_link_checkout
"$venv/bin/python" -c "import isaaclab, isaaclab_tasks, gym_remote, gym_remote_apps" >/dev/null
# Offline stand-ins of the assets the Cartpole tasks load (NVIDIA's asset server is not reachable
# from every box); serve with --kwargs '{"asset_root": "<venv>/assets"}'. Existing files are kept.
"$venv/bin/python" -m gym_remote.backends.isaaclab.assets "$venv/assets" >/dev/null 2>&1
echo "$venv/bin/python"
