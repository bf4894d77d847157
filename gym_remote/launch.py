"""Start an env server on another machine over SSH, tunnel to it, and clean up after it.

Everything that touches SSH lives here, so that the env and client modules know nothing of Fabric.
The flow of :func:`launch_server`:

1. Open one Fabric/paramiko connection (optionally through a jump host). Unknown host keys are
   accepted on first use and remembered in ``known_hosts``; a changed key is refused.
2. In one remote shell: ``cd workdir``, run the ``setup`` line, export ``env``, pick a free port
   when none was given, stop the stale server that an earlier, crashed run recorded for that port
   (only when ``/proc/PID/cmdline`` proves it is our ``gym_remote serve`` on that port: never by
   name), then start ``python -m gym_remote serve`` with ``nohup setsid`` in the background, output
   to ``<runtime_dir>/server-<port>.log`` and its PID to ``server-<port>.pid``.
3. Follow the log (``tail -F`` in a pty, so it dies with our channel) until the READY line. A
   Traceback or the death of the process fails at once with the log tail, not after a timeout.
4. Only then open the tunnel: Fabric's ``forward_local`` kills its own forwarding thread if a
   connection arrives before the remote port listens, and OpenSSH's is only useful once there is
   something to forward to.

Stopping sends SIGTERM to the server's process group (what Ctrl-C in a terminal does: Isaac Sim
launcher scripts do not forward signals to their Python child), waits, then SIGKILLs what is left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import logging
import math
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gym_remote.config import find_config, load
from gym_remote.errors import LaunchError
from gym_remote.protocol import READY_PREFIX

log = logging.getLogger(__name__)
remote_log = logging.getLogger("gym_remote.remote")

TUNNELS = ("auto", "openssh", "fabric", None)
DEFAULT_KNOWN_HOSTS = "~/.gym-remote/known_hosts"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Lines worth surfacing: Python logging levels, Kit/Isaac Sim's "[Error]", Python warnings.
_LEVEL = re.compile(
    r"\b(?P<error>CRITICAL|ERROR|FATAL)\b|\[(?P<kit_error>Error|Fatal)\]|\bWARNING\b|\[Warning\]|\w+Warning:"
)
_TRACEBACK = "Traceback (most recent call last):"
#: Remote scripts run under bash whatever the login shell (``source`` works); the login shell has
#: already read the user's rc files and exported their environment, so a second read is skipped
#: (with a conda or pyenv init in ~/.bashrc it costs 0.2 s per command).
_BASH = "bash --noprofile --norc -c "


# ----------------------------------------------------------------------------------------- config


@dataclass
class HostConfig:
    """Where and how to run a server over SSH (``configs/hosts/*.yaml``; see ``example.yaml``).

    Defaults suit a GPU box reached with the user's own SSH setup (``~/.ssh/config``, agent, keys).
    """

    host: str = ""  # "host", "user@host" or "user@host:port"
    user: str | None = None
    port: int | None = None  # SSH port; None: ~/.ssh/config's Port, else 22
    key_filename: str | None = None  # private key; disables agent and key search when given
    # jump host: "user@host:port" or {host, user, port, key_filename}
    gateway: str | dict[str, Any] | None = None
    connect_timeout: float = 10.0
    known_hosts: str = DEFAULT_KNOWN_HOSTS  # local file where new host keys are remembered
    python: str = "python3"  # remote interpreter; may be a command such as "~/isaaclab/isaaclab.sh -p"
    workdir: str | None = None
    setup: str | None = None  # a shell line run before the server, e.g. "source ~/venv/bin/activate"
    env: dict[str, str] = field(default_factory=dict)
    runtime_dir: str = "~/.gym-remote"  # remote folder for PID and log files
    remote_port: int | None = None  # server port on the remote side; 0/None: a free one
    bind_host: str | None = None  # remote bind address; default 127.0.0.1 (tunnelled) or 0.0.0.0 (direct)
    tunnel: str | None = "auto"  # "auto" | "openssh" | "fabric" | None/"none" (connect directly)
    local_port: int | None = None  # local end of the tunnel; None: a free one
    ready_timeout: float = 120.0  # seconds for the server to print READY (Isaac Sim needs a minute)
    stop_timeout: float = 10.0  # seconds between SIGTERM and SIGKILL
    command_timeout: float = 60.0  # seconds for one remote shell command (setup included)
    backend: str = "gymnasium"
    task: str | None = None
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    serve_args: list[str] = field(default_factory=list)  # extra `gym-remote serve` arguments
    # A Traceback before READY fails the launch (after 1.5 s for the READY line or the exit), even if
    # the process lingers (a non-daemon thread can keep a crashed server alive). False: only the
    # death of the process or ready_timeout fails it, for simulators that print harmless tracebacks.
    fail_on_traceback: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.tunnel, str) and self.tunnel.lower() in ("none", "direct", "off", ""):
            self.tunnel = None
        if self.tunnel not in TUNNELS:
            raise ValueError(f"tunnel must be one of {TUNNELS} (or 'none'), got {self.tunnel!r}")
        if self.host:
            target = _parse_target(self.host, self.user, self.port)
            self.host, self.user, self.port = target.host, target.user, target.port
        self.port = int(self.port) if self.port else None
        self.env = {str(k): str(v) for k, v in (self.env or {}).items()}
        bad = [k for k in self.env if not _ENV_NAME.match(k)]
        if bad:
            raise ValueError(f"invalid environment variable names {bad}")
        self.serve_args = [str(a) for a in (self.serve_args or [])]
        self.task_kwargs = dict(self.task_kwargs or {})

    @property
    def direct(self) -> bool:
        return self.tunnel is None

    def effective_bind_host(self) -> str:
        if self.bind_host:
            return self.bind_host
        if not self.direct or _is_loopback(self.host):
            return "127.0.0.1"
        return "0.0.0.0"  # reachable without a tunnel: the server then insists on CURVE or --insecure


def resolve_config(
    host: str | None = None,
    config: HostConfig | str | Path | Mapping[str, Any] | None = None,
    **overrides: Any,
) -> HostConfig:
    """A :class:`HostConfig` from a config object, file, bare name or plain host name.

    ``host`` may itself name a config in ``configs/hosts/`` (``launch_server("gpu-box")``); otherwise
    it is the SSH host. Keyword overrides that are ``None`` are ignored (``tunnel="none"`` turns the
    tunnel off).
    """
    if isinstance(config, HostConfig):
        changes = {k: v for k, v in overrides.items() if v is not None}
        if host:
            changes["host"] = host
        return dataclasses.replace(config, **changes)
    if config is None and host:
        try:
            find_config(host, "hosts")
        except FileNotFoundError:
            return load(HostConfig, None, kind="hosts", host=host, **overrides)
        return load(HostConfig, host, kind="hosts", **overrides)
    cfg = load(HostConfig, config, kind="hosts", host=host, **overrides)
    if not cfg.host:
        raise ValueError("no host: give host=... or a config with a host")
    return cfg


@dataclass
class _Target:
    host: str
    user: str | None
    port: int | None
    key_filename: str | None = None


def _parse_target(text: str, user: str | None, port: int | None) -> _Target:
    """Split ``user@host:port``; the parts present in the text win over the defaults."""
    if "@" in text:
        user, text = text.rsplit("@", 1)
    if text.startswith("["):  # [v6addr]:port
        addr, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
        return _Target(addr, user, port)
    if text.count(":") == 1:
        text, port_text = text.split(":")
        port = int(port_text)
    return _Target(text, user, int(port) if port else None)


def _gateway_target(cfg: HostConfig) -> _Target | None:
    gw = cfg.gateway
    if not gw:
        return None
    if isinstance(gw, str):
        target = _parse_target(gw, cfg.user, None)
        target.key_filename = cfg.key_filename
        return target
    if isinstance(gw, Mapping):
        unknown = set(gw) - {"host", "user", "port", "key_filename"}
        if unknown or "host" not in gw:
            raise ValueError(
                f"gateway mapping needs 'host' and may have user, port, key_filename; got {sorted(gw)}"
            )
        target = _parse_target(str(gw["host"]), gw.get("user", cfg.user), gw.get("port"))
        target.key_filename = gw.get("key_filename", cfg.key_filename)
        return target
    raise ValueError(f"gateway must be 'user@host:port' or a mapping, got {type(gw).__name__}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ------------------------------------------------------------------------------------ shell lines


def _rpath(path: str) -> str:
    """Quote a remote path for the shell, keeping a leading ``~/`` expandable."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def _rcommand(command: str) -> str:
    """Quote each word of a command line such as ``python3`` or ``~/isaaclab/isaaclab.sh -p``."""
    return " ".join(_rpath(word) for word in shlex.split(command))


#: Shell functions shared by every remote script. ``gr_ours PID PORT`` is true only when PID is
#: alive, not a zombie, and its command line is ``... gym_remote ... serve ... --address
#: tcp://HOST:PORT``: a recycled PID or an unrelated process is never signalled. ``gr_stop``
#: signals the process group the server leads (setsid), so children it spawned stop too, and
#: ``gr_left`` sees members that outlive the leader (zombies do not count: a container's init may
#: reap them late).
_SHELL_LIB = r"""
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


# ------------------------------------------------------------------------------------ SSH helpers


@dataclass
class _Result:
    status: int
    stdout: str
    stderr: str


class _RemoteCommand:
    """One command on its own channel; :meth:`wait` may be called again after an interruption."""

    def __init__(self, transport: Any, command: str, pty: bool = False) -> None:
        self.channel = transport.open_session(timeout=30)
        if pty:
            self.channel.get_pty(width=500)
        self.channel.exec_command(command)
        self._out = bytearray()
        self._err = bytearray()

    def _drain(self) -> None:
        chan = self.channel
        while chan.recv_ready():
            self._out += chan.recv(65536)
        while chan.recv_stderr_ready():
            self._err += chan.recv_stderr(65536)

    def output_so_far(self) -> str:
        self._drain()
        return self._out.decode(errors="replace")

    def wait(self, timeout: float) -> _Result:
        deadline = time.monotonic() + timeout
        chan = self.channel
        # OpenSSH may send the exit status before the last output: done means EOF *and* status.
        while not ((chan.eof_received or chan.closed) and chan.exit_status_ready()):
            self._drain()
            if time.monotonic() > deadline:
                chan.close()
                raise TimeoutError(f"remote command did not finish within {timeout:.0f} s")
            if not chan.status_event.wait(0.01):
                continue
            time.sleep(0.002)
        self._drain()
        status = chan.recv_exit_status()
        self.channel.close()
        return _Result(status, self._out.decode(errors="replace"), self._err.decode(errors="replace"))


def _prepare_known_hosts(path: str) -> str:
    """Create the known-hosts file (0600) so both paramiko and OpenSSH can record new keys in it."""
    full = Path(os.path.expanduser(path))
    full.parent.mkdir(parents=True, exist_ok=True)
    if not full.exists():
        full.touch(mode=0o600)
    return str(full)


def _fabric_connection(target: _Target, cfg: HostConfig, gateway: Any = None) -> Any:
    from fabric import Connection

    connect_kwargs: dict[str, Any] = {
        "banner_timeout": max(cfg.connect_timeout, 1),  # a port that accepts but never speaks SSH
        "auth_timeout": max(cfg.connect_timeout, 5),
    }
    if target.key_filename:
        connect_kwargs.update(
            key_filename=os.path.expanduser(target.key_filename), look_for_keys=False, allow_agent=False
        )
    conn = Connection(
        target.host,
        user=target.user,
        port=target.port,
        gateway=gateway,
        connect_timeout=max(1, round(cfg.connect_timeout)),  # Fabric truncates to int; 0 means never
        connect_kwargs=connect_kwargs,
    )
    # Trust on first use, like OpenSSH's accept-new: read the user's keys, remember new ones in our
    # file (paramiko's AutoAddPolicy saves there), refuse a changed key (BadHostKeyException).
    with contextlib.suppress(OSError):
        conn.client.load_system_host_keys()
    conn.client.load_host_keys(_prepare_known_hosts(cfg.known_hosts))
    return conn


def _describe_connect_error(exc: BaseException, where: str, timeout: float) -> str:
    import paramiko

    if isinstance(exc, paramiko.BadHostKeyException):
        return (
            f"the host key of {where} has CHANGED since it was recorded: refusing to connect "
            "(if the machine was reinstalled, remove its line from the known_hosts file)"
        )
    if isinstance(exc, paramiko.AuthenticationException):
        return f"{where} refused our SSH key ({exc}); check key_filename and the remote authorized_keys"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"could not connect to {where} within {timeout:g} s (host down, firewalled or wrong port?)"
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return f"could not connect to {where}: connection refused (is sshd running on that port?)"
    if isinstance(exc, socket.gaierror):
        return f"could not resolve the host name of {where}: {exc}"
    return f"could not connect to {where}: {type(exc).__name__}: {exc}"


# ------------------------------------------------------------------------------------- log follow


class _LogFollower:
    """Streams a remote log: keeps its tail, spots READY and tracebacks, forwards problems to logging.

    ``tail -F`` runs in a pty so that closing our channel hangs it up, and with ``--pid`` so that it
    exits (and our stream ends) once the server process is gone.
    """

    def __init__(self, transport: Any, log_path: str, pid: int | None, label: str, keep: int = 400) -> None:
        self.label = label
        self.lines: deque[str] = deque(maxlen=keep)
        self.ready_line: str | None = None
        self.traceback_seen = False
        self.ended = False
        self.closing = False
        self._cond = threading.Condition()
        pid_opt = f"--pid={int(pid)} " if pid else ""
        self._cmd = _RemoteCommand(
            transport, f"exec tail {pid_opt}-s 0.2 -n +1 -F {_rpath(log_path)} 2>/dev/null", pty=True
        )
        self._tb: list[str] | None = None
        self._thread = threading.Thread(target=self._run, name=f"gym-remote-log[{label}]", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buf = b""
        chan = self._cmd.channel
        try:
            while True:
                data = chan.recv(65536)
                if not data:
                    break
                buf += data
                *complete, buf = buf.split(b"\n")
                for raw in complete:
                    self._line(raw.decode(errors="replace").rstrip("\r"))
            if buf:
                self._line(buf.decode(errors="replace").rstrip("\r"))
        except Exception:  # the channel was closed under us: that is how we stop
            log.debug("log follower for %s stopped", self.label, exc_info=True)
        finally:
            self._flush_traceback()
            with self._cond:
                self.ended = True
                self._cond.notify_all()
            if self.ready_line is not None and not self.closing:
                remote_log.error(
                    "[%s] the server log stream ended: the server exited or SSH was cut", self.label
                )

    def _line(self, line: str) -> None:
        with self._cond:
            self.lines.append(line)
            if self.ready_line is None and line.startswith(READY_PREFIX):
                self.ready_line = line
            if line.startswith(_TRACEBACK):
                self.traceback_seen = True
            self._cond.notify_all()
        self._forward(line)

    def _forward(self, line: str) -> None:
        """Group traceback lines into one ERROR record; pass WARNING/ERROR lines on at their level."""
        if self._tb is not None:
            self._tb.append(line)
            chained = line.startswith(("During handling", "The above exception", _TRACEBACK))
            if line and not line[0].isspace() and not chained:
                self._flush_traceback()
            return
        if line.startswith(_TRACEBACK):
            self._tb = [line]
            return
        match = _LEVEL.search(line)
        if match:
            error = match.group("error") or match.group("kit_error")
            level = logging.ERROR if error else logging.WARNING
            remote_log.log(level, "[%s] %s", self.label, line)
        else:
            remote_log.debug("[%s] %s", self.label, line)

    def _flush_traceback(self) -> None:
        if self._tb:
            remote_log.error("[%s] %s", self.label, "\n".join(self._tb))
        self._tb = None

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def tail(self, n: int) -> str:
        with self._cond:
            lines = list(self.lines)[-n:] if n > 0 else []
        return "\n".join(lines)

    def close(self) -> None:
        self.closing = True
        with contextlib.suppress(Exception):
            self._cmd.channel.close()
        self._thread.join(timeout=2)


# ------------------------------------------------------------------------------------- launcher


class RemoteLauncher:
    """Start, watch and stop one ``gym_remote serve`` process on ``cfg.host`` over SSH.

    ``start()`` returns once the server printed READY; :attr:`remote_port` and :attr:`pid` then say
    where it is. Used as a context manager it stops the server and disconnects on exit.
    """

    def __init__(self, cfg: HostConfig) -> None:
        if not cfg.host:
            raise ValueError("HostConfig.host is empty")
        self.cfg = cfg
        self.remote_port: int | None = None
        self.pid: int | None = None
        self.stale_pid: int | None = None  # the stale server start() stopped, if any
        self._stopped = False
        self._conn: Any = None
        self._gateway: Any = None
        self._follower: _LogFollower | None = None
        self._lock = threading.RLock()

    @property
    def where(self) -> str:
        user = f"{self.cfg.user}@" if self.cfg.user else ""
        return f"{user}{self.cfg.host}:{self.cfg.port or 22}"

    @property
    def log_path(self) -> str:
        return f"{self.cfg.runtime_dir.rstrip('/')}/server-{self.remote_port}.log"

    # ------------------------------------------------------------------------------ connection

    @property
    def connection(self) -> Any:
        """The open Fabric ``Connection`` (opened on first use)."""
        self.connect()
        return self._conn

    def connect(self) -> None:
        """Open the SSH connection; every failure is a :class:`LaunchError` naming the cause."""
        with self._lock:
            if self._conn is not None and self._conn.is_connected:
                return
            cfg = self.cfg
            gw_target = _gateway_target(cfg)
            self._gateway = _fabric_connection(gw_target, cfg) if gw_target else None
            self._conn = _fabric_connection(
                _Target(cfg.host, cfg.user, cfg.port, cfg.key_filename), cfg, self._gateway
            )
            try:
                self._conn.open()
            except Exception as exc:
                where = (
                    self.where
                    if gw_target is None
                    else f"{self.where} via {gw_target.host}:{gw_target.port or 22}"
                )
                self.disconnect()
                raise LaunchError(
                    _describe_connect_error(exc, where, cfg.connect_timeout), host=cfg.host, port=cfg.port
                ) from exc
            self._conn.transport.set_keepalive(15)  # NAT boxes drop silent connections

    def disconnect(self) -> None:
        """Close the follower and the SSH connection; the server, if any, keeps running."""
        with self._lock:
            if self._follower is not None:
                self._follower.close()
                self._follower = None
            for conn in (self._conn, self._gateway):
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
            self._conn = self._gateway = None

    def run(self, script: str, timeout: float | None = None) -> _Result:
        """Run a shell script remotely under ``bash``; SSH failures become :class:`LaunchError`."""
        try:
            cmd = _RemoteCommand(self.connection.transport, _BASH + shlex.quote(script))
            return cmd.wait(self.cfg.command_timeout if timeout is None else timeout)
        except LaunchError:
            raise
        except TimeoutError as exc:
            raise LaunchError(f"remote command timed out: {exc}", host=self.cfg.host) from exc
        except Exception as exc:  # paramiko.SSHException, EOFError, OSError: the link broke
            raise LaunchError(
                f"SSH to {self.where} failed: {type(exc).__name__}: {exc}", host=self.cfg.host
            ) from exc

    # --------------------------------------------------------------------------------- start

    def _start_script(self) -> str:
        cfg = self.cfg
        python = _rcommand(cfg.python)
        bind = cfg.effective_bind_host()
        serve = [python, "-m", "gym_remote", "serve", "--backend", shlex.quote(cfg.backend)]
        if cfg.task:
            serve += ["--task", shlex.quote(cfg.task)]
        if cfg.task_kwargs:
            serve += ["--kwargs", shlex.quote(json.dumps(cfg.task_kwargs))]
        serve += [shlex.quote(a) for a in cfg.serve_args]
        serve += ["--address", shlex.quote(f"tcp://{bind}:") + '"$PORT"']
        pick = f"import socket; s = socket.socket(); s.bind(({bind!r}, 0)); print(s.getsockname()[1])"
        lines = [
            f"RT={_rpath(cfg.runtime_dir)}",
            # Private when we create it; an existing folder (even /tmp) is left as it is.
            '[ -d "$RT" ] || { mkdir -p "$RT" && chmod 700 "$RT"; } || {',
            '  echo "gym-remote: cannot create runtime dir $RT" >&2; exit 96; }',
            _SHELL_LIB,
        ]
        if cfg.workdir:
            lines.append(f"cd {_rpath(cfg.workdir)} || exit 95")
        if cfg.setup:
            lines.append(
                f"{{ {cfg.setup}\n}} || {{ echo 'gym-remote: the setup command failed' >&2; exit 97; }}"
            )
        lines.append("export PYTHONUNBUFFERED=1")
        lines += [f"export {k}={shlex.quote(v)}" for k, v in cfg.env.items()]
        if cfg.remote_port:
            lines.append(f"PORT={int(cfg.remote_port)}")
        else:
            # The last line only: wrappers such as isaaclab.sh -p print banners first.
            lines += [
                f"PORT=$({python} -c {shlex.quote(pick)} | tail -n 1)",
                'case "$PORT" in \'\'|*[!0-9]*) echo "gym-remote: the remote python could not pick a port'
                ' (it printed: $PORT)" >&2; exit 98 ;; esac',
            ]
        grace = max(1, int(cfg.stop_timeout * 10))
        lines += [
            'echo "GYM_REMOTE_PORT $PORT"',
            'PIDF="$RT/server-$PORT.pid"; LOG="$RT/server-$PORT.log"',
            f'if [ -f "$PIDF" ]; then OLD=$(cat "$PIDF"); if gr_stop "$OLD" "$PORT" {grace}; then '
            'echo "GYM_REMOTE_STALE $OLD"; fi; rm -f "$PIDF"; fi',
            '[ -f "$LOG" ] && mv -f "$LOG" "$LOG.1"',
            # nohup + full redirection: the process outlives the SSH channel and the channel closes
            # at once. setsid: its own process group, stopped as a whole.
            f'nohup setsid {" ".join(serve)} > "$LOG" 2>&1 < /dev/null &',
            'echo $! > "$PIDF"',
            'echo "GYM_REMOTE_PID $!"',
        ]
        return "\n".join(lines)

    def start(self) -> RemoteLauncher:
        """Start the server and wait for READY; on any failure nothing is left running.

        A port picked remotely can be taken by someone else before the server binds it: then a new
        one is picked (twice at most). A port given in the config is never changed.
        """
        attempts = 1 if self.cfg.remote_port else 3
        for attempt in range(attempts):
            try:
                return self._start_once()
            except LaunchError as exc:
                if attempt + 1 == attempts or "Address already in use" not in (exc.log_tail or ""):
                    raise
                log.warning(
                    "port %s on %s was taken before the server bound it; picking another",
                    self.remote_port,
                    self.cfg.host,
                )
                self.remote_port = self.pid = None
        raise AssertionError("unreachable")  # pragma: no cover

    def _start_once(self) -> RemoteLauncher:
        cfg = self.cfg
        self.connect()
        self._stopped = False
        cmd = _RemoteCommand(self.connection.transport, _BASH + shlex.quote(self._start_script()))
        try:
            try:
                result = cmd.wait(cfg.command_timeout)
            except KeyboardInterrupt:
                # Let the short start script finish so that we learn which PID to stop.
                self._parse_start(cmd.output_so_far())
                with contextlib.suppress(BaseException):
                    self._parse_start(cmd.wait(15).stdout)
                raise
            except TimeoutError as exc:
                self._parse_start(cmd.output_so_far())
                raise LaunchError(
                    f"the start command timed out ({exc}); is the setup line interactive?",
                    host=cfg.host,
                    port=self.remote_port,
                ) from exc
            self._parse_start(result.stdout)
            if result.status != 0 or self.pid is None:
                text = (result.stderr or result.stdout).strip()
                raise LaunchError(
                    f"could not start the server on {cfg.host} (exit {result.status}): {text}",
                    host=cfg.host,
                    port=self.remote_port,
                )
            if self.stale_pid:
                log.warning(
                    "stopped a stale server (PID %d) left on %s port %d by an earlier run",
                    self.stale_pid,
                    cfg.host,
                    self.remote_port,
                )
            self._follower = _LogFollower(
                self.connection.transport, self.log_path, self.pid, f"{cfg.host}:{self.remote_port}"
            )
            self._wait_ready()
        except BaseException:
            with contextlib.suppress(BaseException):
                self.stop()
            raise
        log.info(
            "server PID %d ready on %s port %d (log %s)", self.pid, cfg.host, self.remote_port, self.log_path
        )
        return self

    def _parse_start(self, stdout: str) -> None:
        for line in stdout.splitlines():
            key, _, value = line.strip().partition(" ")
            if key == "GYM_REMOTE_PORT" and value.isdigit():
                self.remote_port = int(value)
            elif key == "GYM_REMOTE_PID" and value.isdigit():
                self.pid = int(value)
            elif key == "GYM_REMOTE_STALE" and value.isdigit():
                self.stale_pid = int(value)

    def _wait_ready(self) -> None:
        cfg, follower = self.cfg, self._follower
        assert follower is not None
        deadline = time.monotonic() + cfg.ready_timeout
        next_check = time.monotonic() + 2.0
        fatal_at = math.inf  # when a traceback seen before READY becomes fatal

        def changed() -> bool:
            new_traceback = follower.traceback_seen and fatal_at == math.inf and cfg.fail_on_traceback
            return follower.ready_line is not None or follower.ended or new_traceback

        while True:
            now = time.monotonic()
            if follower.ready_line is not None:
                return
            if follower.ended:  # `tail --pid` exits with the server (or the SSH channel died)
                self._fail("the server exited before it was ready")
            if follower.traceback_seen and cfg.fail_on_traceback:
                if fatal_at == math.inf:
                    fatal_at = now + 1.5  # time for the rest of the traceback and the exit to arrive
                elif now >= fatal_at:
                    self._fail("the server failed to start")
            if now >= deadline:
                self._fail(f"the server was not ready after {cfg.ready_timeout:g} s")
            if now >= next_check:  # belt and braces where `tail --pid` is not available
                next_check = now + 2.0
                if not self.is_alive():
                    follower.wait(lambda: follower.ready_line is not None or follower.ended, 0.5)
                    if follower.ready_line is None:
                        self._fail("the server exited before it was ready")
                    continue
            follower.wait(changed, min(deadline, next_check, fatal_at) - time.monotonic())

    def _fail(self, message: str) -> None:
        tail = self.log_tail(60)
        if _TRACEBACK in tail:  # name the exception in the message itself
            last = [x for x in tail.split(_TRACEBACK)[-1].splitlines() if x and not x[0].isspace()]
            if last:
                message = f"{message}: {last[-1]}"
        raise LaunchError(
            f"{message} (remote log: {self.log_path})",
            host=self.cfg.host,
            port=self.remote_port,
            log_tail=tail or "(empty log)",
        )

    # ---------------------------------------------------------------------------------- query

    def is_alive(self) -> bool:
        """Whether our server process still runs (checked on the remote side)."""
        if self.pid is None or self.remote_port is None:
            return False
        result = self.run(_SHELL_LIB + f"\ngr_ours {self.pid} {self.remote_port} && echo alive", 30)
        return "alive" in result.stdout

    def log_tail(self, n: int = 40) -> str:
        """The last ``n`` lines of the server log: from the follower, else read over SSH."""
        if self._follower is not None and self._follower.lines:
            return self._follower.tail(n)
        if self.remote_port is None or self._conn is None:
            return ""
        try:
            return self.run(f"tail -n {int(n)} {_rpath(self.log_path)} 2>/dev/null", 10).stdout
        except Exception:  # diagnostics must never raise
            return ""

    # ---------------------------------------------------------------------------------- stop

    def stop(self) -> bool:
        """Stop our server by PID (SIGTERM to its group, then SIGKILL) and remove its PID file.

        Returns whether a running server was stopped. Idempotent.
        """
        with self._lock:
            if self._follower is not None:
                self._follower.close()
                self._follower = None
            if self.remote_port is None or self._stopped:
                return False
            try:
                stopped = _stop_remote(self, self.remote_port, expected_pid=self.pid)
            except LaunchError as exc:  # reconnecting failed too: say how to finish the job
                log.warning(
                    "could not stop server PID %s on %s port %s (%s); later: gym-remote stop %s --port %s",
                    self.pid,
                    self.cfg.host,
                    self.remote_port,
                    exc.message,
                    self.cfg.host,
                    self.remote_port,
                )
                return False
            self._stopped = True
            self.pid = None
            return stopped

    def close(self) -> None:
        """Stop the server and disconnect."""
        try:
            self.stop()
        finally:
            self.disconnect()

    def __enter__(self) -> RemoteLauncher:
        return self.start() if self.pid is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stop_remote(launcher: RemoteLauncher, port: int, expected_pid: int | None = None) -> bool:
    """Stop the server recorded for ``port`` (if it is ours) and remove its PID file."""
    cfg = launcher.cfg
    grace = max(1, int(cfg.stop_timeout * 10))
    pids = f"{int(expected_pid)} " if expected_pid else ""
    script = "\n".join(
        [
            _SHELL_LIB,
            f'RT={_rpath(cfg.runtime_dir)}; PORT={int(port)}; PIDF="$RT/server-$PORT.pid"',
            f'PIDS="{pids}$(cat "$PIDF" 2>/dev/null)"',
            f'for P in $PIDS; do gr_stop "$P" "$PORT" {grace} && echo "GYM_REMOTE_STOPPED $P"; done',
            'rm -f "$PIDF"',
            "exit 0",
        ]
    )
    result = launcher.run(script, timeout=cfg.stop_timeout + 30)
    stopped = "GYM_REMOTE_STOPPED" in result.stdout
    if stopped:
        log.info("stopped server on %s port %d", cfg.host, port)
    return stopped


# --------------------------------------------------------------------------------------- tunnels


def free_local_port(host: str = "127.0.0.1") -> int:
    """A free TCP port on ``host`` (nothing binds it in between, but the race is small)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _check_port_free(port: int) -> None:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise LaunchError(
                f"local port {port} is in use ({exc}); pick another local_port", port=port
            ) from None


def _wait_listening(port: int, timeout: float, alive: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class _FabricTunnel:
    """``Connection.forward_local`` held open by a thread until :meth:`close`."""

    kind = "fabric"

    def __init__(self, conn: Any, remote_port: int, local_port: int, timeout: float) -> None:
        self.local_port = local_port
        self._conn = conn
        self._remote_port = remote_port
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._hold, name=f"gym-remote-tunnel[{local_port}]", daemon=True
        )
        self._thread.start()
        try:
            up = _wait_listening(local_port, timeout, self._thread.is_alive)
        except BaseException:  # Ctrl-C: leave no listener behind
            self.close()
            raise
        if not up:
            self.close()
            raise LaunchError(
                f"the Fabric tunnel 127.0.0.1:{local_port} -> remote port {remote_port} did not "
                f"come up within {timeout:g} s (local port taken?): {self.error}",
                port=local_port,
            )

    def _hold(self) -> None:
        try:
            with self._conn.forward_local(
                local_port=self.local_port,
                remote_port=self._remote_port,
                remote_host="127.0.0.1",
                local_host="127.0.0.1",
            ):
                self._stop.wait()
        except Exception as exc:  # ThreadException from its forwarding threads, at exit
            self.error = exc
            log.debug("fabric tunnel on port %d ended with %r", self.local_port, exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)  # its forwarding threads poll every second


class _OpenSshTunnel:
    """``ssh -N -L`` in a subprocess: 10x the throughput of Fabric's 1 KiB copy loop."""

    kind = "openssh"

    def __init__(self, cfg: HostConfig, remote_port: int, local_port: int, timeout: float) -> None:
        self.local_port = local_port
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - a file never fills like a pipe
        argv = _ssh_argv(cfg, _Target(cfg.host, cfg.user, cfg.port, cfg.key_filename))
        argv[1:1] = [
            "-N",
            "-L",
            f"127.0.0.1:{local_port}:127.0.0.1:{remote_port}",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ServerAliveCountMax=3",
        ]
        gw = _gateway_target(cfg)
        if gw is not None:
            jump = _ssh_argv(cfg, gw)
            jump[1:1] = ["-W", "%h:%p"]
            argv[1:1] = ["-o", "ProxyCommand=" + " ".join(shlex.quote(a) for a in jump)]
        log.debug("tunnel: %s", shlex.join(argv))
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr
        )
        try:
            up = _wait_listening(local_port, timeout, lambda: self.proc.poll() is None)
        except BaseException:  # Ctrl-C: leave no ssh process behind
            self.close()
            raise
        if not up:
            status, stderr = self.proc.poll(), self.stderr_text().strip()
            self.close()
            raise LaunchError(
                f"the OpenSSH tunnel 127.0.0.1:{local_port} -> remote port {remote_port} did not come "
                f"up within {timeout:g} s (ssh exit {status}): {stderr}",
                host=cfg.host,
                port=local_port,
            )

    def stderr_text(self) -> str:
        with contextlib.suppress(Exception):
            self._stderr.seek(0)
            return self._stderr.read().decode(errors="replace")
        return ""

    def close(self) -> None:
        proc = self.proc
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=3)
        with contextlib.suppress(Exception):
            self._stderr.close()


def _ssh_argv(cfg: HostConfig, target: _Target) -> list[str]:
    """``ssh`` options that match the Fabric side: batch mode, accept-new into our known_hosts."""
    known = _prepare_known_hosts(cfg.known_hosts)
    argv = [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=accept-new",
        # New keys go to the first file; the user's own known_hosts is still honoured.
        "-o",
        f"UserKnownHostsFile={known} ~/.ssh/known_hosts",
        "-o",
        f"ConnectTimeout={max(1, round(cfg.connect_timeout))}",
    ]
    if target.port:
        argv += ["-p", str(target.port)]
    if target.key_filename:
        argv += ["-i", os.path.expanduser(target.key_filename), "-o", "IdentitiesOnly=yes"]
    if target.user:
        argv += ["-l", target.user]
    return [*argv, target.host]


def choose_tunnel(tunnel: str | None) -> str | None:
    """``"auto"`` means OpenSSH when an ``ssh`` client is on PATH, else Fabric."""
    if tunnel == "auto":
        return "openssh" if shutil.which("ssh") else "fabric"
    return tunnel


# ------------------------------------------------------------------------------------- the handle


class _Resources:
    """What a :class:`ServerHandle` must release; kept apart so the finalizer holds no handle."""

    def __init__(self, launcher: RemoteLauncher) -> None:
        self.launcher = launcher
        self.tunnel: _FabricTunnel | _OpenSshTunnel | None = None
        self.closed = False
        self.lock = threading.Lock()

    def close(self, stop_server: bool = True) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            try:
                if self.tunnel is not None:
                    self.tunnel.close()
            finally:
                if stop_server:
                    self.launcher.close()
                else:
                    self.launcher.disconnect()


class ServerHandle:
    """A launched server, reachable at ``local_host:local_port``; :meth:`close` stops everything.

    ``close()`` (tunnel first, then the server) runs at the latest when the handle is garbage
    collected or the interpreter exits.
    """

    def __init__(
        self,
        launcher: RemoteLauncher,
        local_host: str,
        local_port: int,
        tunnel: str | None,
        resources: _Resources,
    ) -> None:
        self.launcher = launcher
        self.config = launcher.cfg
        self.host = launcher.cfg.host
        self.remote_port = launcher.remote_port
        self.pid = launcher.pid
        self.local_host = local_host
        self.local_port = local_port
        self.tunnel = tunnel
        self._resources = resources
        self._finalizer = weakref.finalize(self, resources.close)

    @property
    def endpoint(self) -> str:
        return f"tcp://{self.local_host}:{self.local_port}"

    @property
    def closed(self) -> bool:
        return self._resources.closed

    def log_tail(self, n: int = 40) -> str:
        """The end of the remote server log (for error messages)."""
        return self.launcher.log_tail(n)

    def close(self) -> None:
        """Close the tunnel, stop the server, disconnect. Idempotent."""
        self._finalizer.detach()
        self._resources.close(stop_server=True)

    def detach(self) -> None:
        """Close the tunnel and SSH connection but leave the server running (``gym-remote launch``)."""
        self._finalizer.detach()
        self._resources.close(stop_server=False)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"PID {self.pid}"
        return (
            f"<ServerHandle {self.host}:{self.remote_port} -> {self.endpoint} via {self.tunnel or 'direct'}, "
            f"{state}>"
        )


def launch_server(
    host: str | None = None,
    config: HostConfig | str | Path | Mapping[str, Any] | None = None,
    **overrides: Any,
) -> ServerHandle:
    """Start a server over SSH, open the tunnel, and return a :class:`ServerHandle`.

    ``host`` is an SSH host or the name of a ``configs/hosts`` file; ``config`` a :class:`HostConfig`,
    a YAML path/name or a mapping; keyword overrides set any :class:`HostConfig` field. On failure
    (including Ctrl-C) nothing is left running and a :class:`LaunchError` says why.
    """
    cfg = resolve_config(host, config, **overrides)
    tunnel = choose_tunnel(cfg.tunnel)
    if tunnel is not None and cfg.local_port:
        # Checked before anything starts: Fabric's listener would fail silently in its thread, and
        # the readiness probe would then reach whatever squats the port.
        _check_port_free(cfg.local_port)
    launcher = RemoteLauncher(cfg)
    resources = _Resources(launcher)
    try:
        launcher.start()
        assert launcher.remote_port is not None
        if tunnel is None:
            if cfg.gateway:
                log.warning(
                    "tunnel=None with a gateway: the client must reach %s:%d itself",
                    cfg.host,
                    launcher.remote_port,
                )
            # The real address when cfg.host is an alias from ~/.ssh/config.
            local_host, local_port = launcher.connection.host, launcher.remote_port
        else:
            local_host, local_port = "127.0.0.1", cfg.local_port or free_local_port()
            timeout = cfg.connect_timeout + 10
            if tunnel == "fabric":
                resources.tunnel = _FabricTunnel(
                    launcher.connection, launcher.remote_port, local_port, timeout
                )
            else:
                resources.tunnel = _OpenSshTunnel(cfg, launcher.remote_port, local_port, timeout)
    except BaseException as exc:
        if isinstance(exc, LaunchError) and exc.log_tail is None and launcher.remote_port is not None:
            exc.log_tail = launcher.log_tail() or None
        resources.close()
        raise
    handle = ServerHandle(launcher, local_host, local_port, tunnel, resources)
    log.info("%r", handle)
    return handle


# --------------------------------------------------------------------------------- CLI functions


@dataclass
class ServerRecord:
    """One PID file in the remote runtime dir (``gym-remote status``)."""

    port: int
    pid: int | None
    alive: bool  # the PID runs our `gym_remote serve` on that port
    uptime: float | None  # seconds since the process started (None when not alive)
    log_path: str


@contextlib.contextmanager
def _connected(cfg: HostConfig | str) -> Iterator[RemoteLauncher]:
    launcher = RemoteLauncher(cfg if isinstance(cfg, HostConfig) else resolve_config(cfg))
    try:
        launcher.connect()
        yield launcher
    finally:
        launcher.disconnect()


def list_servers(cfg: HostConfig | str) -> list[ServerRecord]:
    """Servers recorded in the remote ``runtime_dir`` (alive or stale), sorted by port.

    For ``gym-remote status HOST``. ``cfg`` is a :class:`HostConfig` or a host/config name.
    """
    with _connected(cfg) as launcher:
        rt = launcher.cfg.runtime_dir.rstrip("/")
        script = "\n".join(
            [
                _SHELL_LIB,
                f"RT={_rpath(rt)}",
                'for F in "$RT"/server-*.pid; do [ -f "$F" ] || continue',
                '  PORT=${F##*/server-}; PORT=${PORT%.pid}; P=$(cat "$F" 2>/dev/null)',
                "  A=0; E=",
                '  if gr_ours "$P" "$PORT"; then A=1; E=$(ps -o etimes= -p "$P" 2>/dev/null | tr -d " "); fi',
                '  echo "GYM_REMOTE_SERVER $PORT ${P:--} $A ${E:--}"',
                "done",
            ]
        )
        result = launcher.run(script)
    records = []
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) != 5 or parts[0] != "GYM_REMOTE_SERVER" or not parts[1].isdigit():
            continue
        _, port, pid, alive, uptime = parts
        records.append(
            ServerRecord(
                port=int(port),
                pid=int(pid) if pid.isdigit() else None,
                alive=alive == "1",
                uptime=float(uptime) if uptime.isdigit() else None,
                log_path=f"{rt}/server-{port}.log",
            )
        )
    return sorted(records, key=lambda r: r.port)


def stop_server(cfg: HostConfig | str, port: int) -> bool:
    """Stop the server recorded for ``port`` on the remote host; remove its PID file.

    For ``gym-remote stop HOST --port N``. Returns True if a running server was stopped, False when
    none was (no PID file, a dead PID, or a PID that is not our server: that process is left alone).
    """
    with _connected(cfg) as launcher:
        return _stop_remote(launcher, int(port))


def read_log(cfg: HostConfig | str, port: int, lines: int = 100) -> str:
    """The last ``lines`` lines of the log of the server on ``port`` (``gym-remote logs HOST --port N``)."""
    with _connected(cfg) as launcher:
        path = f"{launcher.cfg.runtime_dir.rstrip('/')}/server-{int(port)}.log"
        result = launcher.run(f"tail -n {int(lines)} {_rpath(path)}")
    if result.status != 0:
        raise LaunchError(f"cannot read {path}: {result.stderr.strip()}", host=launcher.cfg.host, port=port)
    return result.stdout


def follow_log(
    cfg: HostConfig | str,
    port: int,
    callback: Callable[[str], None],
    stop_event: threading.Event,
    lines: int = 20,
) -> None:
    """Call ``callback(line)`` for the last ``lines`` lines of the server log, then for each new one.

    For ``gym-remote logs HOST --port N --follow``. Returns when ``stop_event`` is set (e.g. from a
    SIGINT handler) or the SSH connection drops. Keeps following across server restarts on the port.
    """
    with _connected(cfg) as launcher:
        path = f"{launcher.cfg.runtime_dir.rstrip('/')}/server-{int(port)}.log"
        cmd = _RemoteCommand(
            launcher.connection.transport, f"exec tail -n {int(lines)} -F {_rpath(path)}", pty=True
        )
        chan = cmd.channel
        chan.settimeout(0.2)
        buf = b""
        try:
            while not stop_event.is_set():
                try:
                    data = chan.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                buf += data
                *complete, buf = buf.split(b"\n")
                for raw in complete:
                    callback(raw.decode(errors="replace").rstrip("\r"))
        finally:
            chan.close()  # hangs up the pty: the remote tail exits
