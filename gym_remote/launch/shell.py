"""The remote shell: quoting, the ``bash`` prefix, and the shell functions every remote script uses.

Remote scripts are plain text sent over one SSH channel, so everything that reaches them is quoted
here: paths keep a leading ``~/`` expandable (``"$HOME"/...``), command lines are quoted word by
word. The functions in :data:`SHELL_LIB` decide whether a PID is *our* server before anything is
signalled: processes are stopped by PID and command line, never by name.
"""

from __future__ import annotations

import shlex

__all__ = ["BASH", "SHELL_LIB", "bash", "rcommand", "rpath"]

#: Remote scripts run under bash whatever the login shell (``source`` works); the login shell has
#: already read the user's rc files and exported their environment, so a second read is skipped
#: (with a conda or pyenv init in ~/.bashrc it costs 0.2 s per command).
BASH = "bash --noprofile --norc -c "


def rpath(path: str) -> str:
    """Quote a remote path for the shell, keeping a leading ``~/`` expandable."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def rcommand(command: str) -> str:
    """Quote each word of a command line such as ``python3`` or ``~/isaaclab/isaaclab.sh -p``."""
    return " ".join(rpath(word) for word in shlex.split(command))


def bash(script: str) -> str:
    """The command line that runs ``script`` under ``bash`` on the remote side."""
    return BASH + shlex.quote(script)


#: Shell functions shared by every remote script. ``gr_ours PID PORT`` is true only when PID is
#: alive, not a zombie, and its command line is ``... gym_remote ... serve ... --address
#: tcp://HOST:PORT``: a recycled PID or an unrelated process is never signalled. ``gr_stop``
#: signals the process group the server leads (setsid), so children it spawned stop too, and
#: ``gr_left`` sees members that outlive the leader (zombies do not count: a container's init may
#: reap them late).
SHELL_LIB = r"""
gr_ours() {
  [ -n "$1" ] && [ "$1" -gt 1 ] 2>/dev/null && [ -r "/proc/$1/cmdline" ] || return 1
  gr_state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
  [ "$gr_state" != Z ] || return 1
  gr_cmd=$(tr '\000' ' ' < "/proc/$1/cmdline" 2>/dev/null)
  case "$gr_cmd" in *gym_remote*" serve "*"--address tcp://"*":$2 "*) return 0 ;; esac
  return 1
}
gr_stop() {
  gr_ours "$1" "$2" || return 1
  kill -TERM -- "-$1" 2>/dev/null || kill -TERM "$1" 2>/dev/null
  gr_i=0
  while gr_ours "$1" "$2" && [ "$gr_i" -lt "$3" ]; do sleep 0.1; gr_i=$((gr_i + 1)); done
  if gr_ours "$1" "$2"; then kill -KILL -- "-$1" 2>/dev/null || kill -KILL "$1" 2>/dev/null; fi
  gr_i=0
  while gr_left "$1" && [ "$gr_i" -lt 10 ]; do sleep 0.1; gr_i=$((gr_i + 1)); done
  gr_left "$1" && kill -KILL -- "-$1" 2>/dev/null
  return 0
}
gr_left() {
  if command -v ps >/dev/null 2>&1; then
    ps -o stat= --sid "$1" 2>/dev/null | grep -qv '^Z'
  else
    kill -0 -- "-$1" 2>/dev/null
  fi
}
"""
