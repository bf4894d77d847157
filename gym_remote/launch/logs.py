"""A launched server's log, read over SSH: followed while it starts, read or followed on demand.

The server writes ``<runtime_dir>/server-<port>.log`` on its host. While a launch waits for READY,
:class:`LogFollower` streams that file (``tail -F`` in a pty, so it dies with our channel, and with
``--pid`` so the stream ends when the server does), keeps its tail for error messages, spots the
READY line and tracebacks, and passes problems on to the ``gym_remote.remote`` logger: a traceback
as one ERROR record, ``WARNING``/``ERROR`` lines (Python's and Kit's ``[Error]``) at their level,
the rest at DEBUG. :func:`read_log` and :func:`follow_log` serve ``gym-remote logs``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from gym_remote.errors import LaunchError
from gym_remote.launch.config import HostConfig
from gym_remote.launch.shell import rpath
from gym_remote.launch.ssh import RemoteCommand, connected
from gym_remote.protocol import READY_PREFIX

log = logging.getLogger(__name__)
#: The channel remote log lines arrive on (``[host:port] line``).
remote_log = logging.getLogger("gym_remote.remote")

__all__ = ["TRACEBACK", "LogFollower", "follow_log", "log_path", "read_log", "remote_log"]

#: Lines worth surfacing: Python logging levels, Kit/Isaac Sim's "[Error]", Python warnings.
_LEVEL = re.compile(
    r"\b(?P<error>CRITICAL|ERROR|FATAL)\b|\[(?P<kit_error>Error|Fatal)\]|\bWARNING\b|\[Warning\]|\w+Warning:"
)
TRACEBACK = "Traceback (most recent call last):"


def log_path(runtime_dir: str, port: int | None) -> str:
    """The remote log file of the server on ``port``."""
    return f"{runtime_dir.rstrip('/')}/server-{port}.log"


class LogFollower:
    """Streams a remote log: keeps its tail, spots READY and tracebacks, forwards problems to logging.

    ``tail -F`` runs in a pty so that closing our channel hangs it up, and with ``--pid`` so that it
    exits (and our stream ends) once the server process is gone.

    Args:
        transport: an open paramiko transport.
        log_path: the remote log file.
        pid: the server's PID (the stream ends with it), or ``None``.
        label: how log records name the server (``host:port``).
        keep: lines of tail kept.
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
        self._cmd = RemoteCommand(
            transport, f"exec tail {pid_opt}-s 0.2 -n +1 -F {rpath(log_path)} 2>/dev/null", pty=True
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
                remote_log.error("[%s] the server log stream ended: the server exited or SSH was cut", self.label)

    def _line(self, line: str) -> None:
        with self._cond:
            self.lines.append(line)
            if self.ready_line is None and line.startswith(READY_PREFIX):
                self.ready_line = line
            if line.startswith(TRACEBACK):
                self.traceback_seen = True
            self._cond.notify_all()
        self._forward(line)

    def _forward(self, line: str) -> None:
        """Group traceback lines into one ERROR record; pass WARNING/ERROR lines on at their level."""
        if self._tb is not None:
            self._tb.append(line)
            chained = line.startswith(("During handling", "The above exception", TRACEBACK))
            if line and not line[0].isspace() and not chained:
                self._flush_traceback()
            return
        if line.startswith(TRACEBACK):
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
        """Wait up to ``timeout`` seconds for ``predicate()`` (re-checked on every new line)."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def tail(self, n: int) -> str:
        """The last ``n`` lines seen."""
        with self._cond:
            lines = list(self.lines)[-n:] if n > 0 else []
        return "\n".join(lines)

    def close(self) -> None:
        """Stop following (the remote ``tail`` exits with our channel). Idempotent."""
        self.closing = True
        with contextlib.suppress(Exception):
            self._cmd.channel.close()
        self._thread.join(timeout=2)


def read_log(cfg: HostConfig | str, port: int, lines: int = 100) -> str:
    """The last ``lines`` lines of the log of the server on ``port`` (``gym-remote logs HOST --port N``).

    Raises:
        LaunchError: SSH failed, or the log cannot be read (no such server).
    """
    with connected(cfg) as ssh:
        path = log_path(ssh.cfg.runtime_dir, int(port))
        result = ssh.run(f"tail -n {int(lines)} {rpath(path)}")
    if result.status != 0:
        raise LaunchError(f"cannot read {path}: {result.stderr.strip()}", host=ssh.cfg.host, port=port)
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
    with connected(cfg) as ssh:
        path = log_path(ssh.cfg.runtime_dir, int(port))
        cmd = ssh.command(f"exec tail -n {int(lines)} -F {rpath(path)}", pty=True)
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
