# shellcheck shell=bash
# What scripts/build_{isaaclab,metasim,ray}_venv.sh share; sourced by them, never run. Each script:
#
#   . "$(dirname "$0")/venv_lib.sh"
#   venv_init TAG FOLDER                  # the venv is $root/FOLDER; log lines start with [TAG]
#   if venv_stale "$want"; then           # the stamp file does not hold this recipe ($want)
#     venv_create "about N minutes"       # a fresh venv, pip upgraded, a scratch folder in $tmp
#     ...                                 # its own recipe, with venv_refuse before each install
#     venv_built "$want"                  # write the stamp: later runs skip the block
#   fi
#   venv_link_checkout                    # this checkout, editable, every run (cheap)
#
# The heavy part is built once and cached under $GYM_REMOTE_VENVS (default ~/.cache/gym-remote/venvs,
# as gym_remote_apps/venvs.py reads it), in a folder whose name gym_remote_apps/venvs.py knows. The stamp file
# holds the recipe the venv was built from, so a changed recipe rebuilds it from scratch. torch is
# always the CPU build, installed first, so that nothing later pulls CUDA wheels (several GB).
#
# Environment: GYM_REMOTE_VENVS (where the venvs live), PYTHON (the Python that makes them,
# default python3), TORCH_SPEC (default torch==2.13.0), GYM_REMOTE_CUDA=1 (scripts/test_gpu.sh: allow
# torch's CUDA build and CUDA wheels, in a venv folder of their own).

# This checkout: installed into each venv so that a server runs the code under test.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root=${GYM_REMOTE_VENVS:-$HOME/.cache/gym-remote/venvs}
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
# gym-remote's server core (pyproject's dependencies minus the two every recipe brings anyway).
# shellcheck disable=SC2034  # used by the build scripts
SERVER_CORE=("pyzmq>=25" "msgpack>=1.0" "pyyaml>=6.0")

# venv_init TAG FOLDER: set venv, stamp and pip (an array: the venv's pip) for the functions below.
venv_init() {
  tag=$1
  venv="$root/$2"
  stamp="$venv/.gym-remote-built"
  pip=("$venv/bin/python" -m pip --disable-pip-version-check)
}

step() { echo "[$tag] $*" >&2; }

# venv_stale WANT: true when the venv was not built, or built from another recipe than WANT.
venv_stale() {
  [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$1" ]
}

# venv_create HOW_LONG [PACKAGE...]: remove the venv and make it again with an upgraded pip (and
# PACKAGEs); $tmp is a scratch folder, removed when the script exits.
venv_create() {
  local how_long=$1
  shift
  step "building $venv ($how_long the first time)"
  rm -rf "$venv"
  mkdir -p "$root"
  # PYTHON may be a command with arguments: split on purpose.
  # shellcheck disable=SC2086
  $PY -m venv "$venv"
  "${pip[@]}" install -q --upgrade pip "$@"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
}

# venv_refuse_cuda_torch: stop when the torch just installed is a CUDA build.
venv_refuse_cuda_torch() {
  [ "${GYM_REMOTE_CUDA:-}" = 1 ] && return 0  # scripts/test_gpu.sh: a CUDA build is the point
  "$venv/bin/python" -W ignore -c "import torch, sys; sys.exit(torch.version.cuda is not None)" \
    || { step "refusing: $TORCH_SPEC resolved to a CUDA build (no CPU build reachable)"; exit 1; }
}

# venv_refuse NAMES REASON PIP_ARG...: stop, saying REASON, when `pip install PIP_ARG...` would
# install a package whose name matches the extended regex NAMES (e.g. 'nvidia-[^"]*|torch'). torch is
# already there, so nothing may replace it or bring CUDA wheels; a dry run shows what would come.
venv_refuse() {
  local names=$1 reason=$2
  shift 2
  [ "${GYM_REMOTE_CUDA:-}" = 1 ] && return 0  # scripts/test_gpu.sh: CUDA wheels are wanted there
  "${pip[@]}" install --dry-run -q --report "$tmp/report.json" "$@" >/dev/null
  if grep -Eq "\"name\": \"($names)\"" "$tmp/report.json"; then
    step "refusing: $reason"
    exit 1
  fi
}

# venv_built WANT: record that the venv holds recipe WANT.
venv_built() {
  echo "$1" >"$stamp"
}

# venv_link_checkout [PACKAGE...]: install this checkout into the venv, editable and without its
# dependencies (each recipe chose them), then PACKAGEs; pip's output only when it fails.
# shellcheck disable=SC2120  # PACKAGEs are optional
venv_link_checkout() {
  local out
  if ! out=$("${pip[@]}" install -q --no-deps -e "$here" 2>&1 \
    && { [ $# -eq 0 ] || "${pip[@]}" install -q "$@" 2>&1; }); then
    echo "$out" >&2
    step "could not install $here into the venv"
    exit 1
  fi
}
