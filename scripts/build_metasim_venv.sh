#!/usr/bin/env bash
# Build (or refresh) the RoboVerse MetaSim server venv: the real MetaSim (vendored, commit dd8ff06)
# with its MuJoCo handler on the CPU, plus gym-remote's server core. Idempotent: the heavy part is
# built once and cached under $GYM_REMOTE_VENVS (default ~/.cache/gym-remote/venvs) and rebuilt only
# when this recipe changes (a stamp file holds it); a later run only re-links this checkout and
# regenerates MetaSim's data folder from the checkout's own model (both cheap).
#
#   bash scripts/build_metasim_venv.sh          # prints the venv's python on its last line
#
# The recipe: torch==2.13.0 first (the CPU build: pip must never
# pull CUDA wheels), then MetaSim's dependencies without torchvision, mujoco pinned to 3.17.0 (dm_control
# breaks on mujoco 4.0), then an EDITABLE install of the extracted source (its pyproject lists only
# the top-level packages, so a built wheel would be empty). MetaSim's data (robot MJCF, start poses)
# normally comes from a hub at run time, unreachable here; `python -m gym_remote.backends.roboverse.data`
# writes it into "$venv/data", the folder a server runs in (`--kwargs '{"data_dir": ...}'`).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=venv_lib.sh
. "$(dirname "$0")/venv_lib.sh"
venv_init metasim-venv metasim-dd8ff06
# The pinned RoboVerse source: METASIM_TARBALL when given; else a copy fetched once from its public
# repository into the venv cache (as any user gets it); else, where that cannot be reached, the team's
# vendored copy beside the checkout. Checked first, so a missing source fails in seconds.
SOURCE_URL=https://github.com/liuliu3dv/RoboVerse/archive/dd8ff06a.tar.gz
fetched="$root/downloads/roboverse-dd8ff06a.tar.gz"
vendored="$here/../shared/vendor/roboverse-dd8ff06.tar.gz"
if [ -n "${METASIM_TARBALL:-}" ]; then
  TARBALL=$METASIM_TARBALL
elif [ -s "$fetched" ]; then
  TARBALL=$fetched
else
  mkdir -p "$root/downloads"
  if why=$("$PY" -c 'import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=30) as r, open(sys.argv[2], "wb") as f:
        f.write(r.read())
except Exception as exc:
    sys.exit(f"{type(exc).__name__}: {exc}")' "$SOURCE_URL" "$fetched.part" 2>&1); then
    mv "$fetched.part" "$fetched"
    TARBALL=$fetched
  else
    rm -f "$fetched.part"
    TARBALL=$vendored
  fi
fi
MUJOCO_SPEC=${MUJOCO_SPEC:-mujoco==3.17.0}
DEPS=(gymnasium loguru rich rootutils tqdm tyro portalocker "imageio[ffmpeg]" opencv-python-headless
      dm_control huggingface-hub "$MUJOCO_SPEC")

[ -f "$TARBALL" ] || {
  if [ -n "${METASIM_TARBALL:-}" ]; then
    step "METASIM_TARBALL=$METASIM_TARBALL is not a file: give the path of RoboVerse's source tarball ($SOURCE_URL)"
  else
    step "MetaSim's source (RoboVerse at commit dd8ff06a) could not be fetched from $SOURCE_URL (${why:-no reason given})."
    step "Download that tarball where you can and run: METASIM_TARBALL=/path/to/it bash scripts/test.sh"
  fi
  exit 1
}
tar_sum=$(sha256sum "$TARBALL" | cut -c1-16)
want="metasim=$tar_sum $TORCH_SPEC deps=${DEPS[*]} v1"

if venv_stale "$want"; then
  venv_create "a few minutes"
  step "1/4 $TORCH_SPEC (CPU build)"
  "${pip[@]}" install -q "$TORCH_SPEC"
  venv_refuse_cuda_torch
  step "2/4 MetaSim's dependencies (no torchvision, $MUJOCO_SPEC)"
  venv_refuse 'nvidia-[^"]*|torch' "the dependencies would pull CUDA wheels or another torch" "${DEPS[@]}"
  "${pip[@]}" install -q "${DEPS[@]}"
  step "3/4 MetaSim itself, editable, from $(basename "$TARBALL")"
  mkdir -p "$venv/src"
  tar -xzf "$TARBALL" -C "$venv/src"
  src=$(find "$venv/src" -mindepth 1 -maxdepth 1 -type d | head -n1)
  "${pip[@]}" install -q --no-deps -e "$src"
  step "4/4 gym-remote's server core"
  "${pip[@]}" install -q "${SERVER_CORE[@]}"
  venv_built "$want"
fi
# Link this checkout and regenerate the data from its model (cheap, every run): the server runs the
# code under test.
venv_link_checkout
"$venv/bin/python" -m gym_remote.backends.roboverse.data --out "$venv/data" >&2
# MetaSim's task discovery logs every optional task it cannot import: show that only on failure.
if ! check=$(cd "$venv/data" && "$venv/bin/python" -c \
     "import metasim.task.registry as r, gym_remote, gym_remote_apps; r.get_task_class('stack_cube')" 2>&1); then
  echo "$check" >&2; step "the venv does not import MetaSim's stack_cube"; exit 1
fi
echo "$venv/bin/python"
