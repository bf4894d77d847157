"""A server in a local subprocess: the newcomer's path, tests and benchmarks.

The server binds a free loopback port itself (``tcp://127.0.0.1:*``) and reports it in its READY
line, so there is no race between picking a port and binding it. The process is stopped by PID on
close and at interpreter exit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from gym_remote.errors import LaunchError
from gym_remote.protocol import READY_PREFIX

log = logging.getLogger(__name__)


class LocalServer:
    """``python -m gym_remote serve`` in a subprocess, ready when the constructor returns.

    Attributes ``local_host``/``local_port`` say where to connect; :meth:`log_tail` returns the end
    of the server's log, which clients attach to their errors.
    """

    def __init__(
        self,
        backend: str = "gymnasium",
        task: str | None = None,
        task_kwargs: dict[str, Any] | None = None,
        *,
        address: str = "tcp://127.0.0.1:*",
        extra_args: Sequence[str] = (),
        python: str = sys.executable,
        startup_timeout: float = 60.0,
        env: dict[str, str] | None = None,
    ) -> None:
        # --watch-pid: a client killed without running its exit handlers must not leave a server behind.
        cmd = [
            python,
            "-m",
            "gym_remote",
            "serve",
            "--backend",
            backend,
            "--address",
            address,
            "--watch-pid",
            str(os.getpid()),
        ]
        if task:
            cmd += ["--task", task]
        if task_kwargs:
            cmd += ["--kwargs", json.dumps(task_kwargs)]
        cmd += list(extra_args)
        self._log = tempfile.NamedTemporaryFile(prefix="gym-remote-server-", suffix=".log", delete=False)  # noqa: SIM115
        self.log_path = self._log.name
        # stdout goes to the log as well: a pipe that nobody reads after READY would block a server
        # whose env prints (once the pipe's 64 KiB fill up). READY is read back from the file.
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # Ctrl-C in the user's terminal must not kill it before we close it
        )
        self._log.close()  # the child holds its own descriptor
        self.pid = self.proc.pid
        self._finalizer = weakref.finalize(self, _stop_process, self.proc, self.log_path)  # also runs at exit
        self.endpoint = self._wait_ready(startup_timeout, cmd)
        parts = urlsplit(self.endpoint)
        self.local_host = parts.hostname or "127.0.0.1"
        self.local_port = int(parts.port or 0)
        log.info("local server pid %d ready at %s", self.pid, self.endpoint)

    def _wait_ready(self, timeout: float, cmd: list[str]) -> str:
        deadline = time.monotonic() + timeout
        with open(self.log_path, "rb") as f:
            buf = b""
            while time.monotonic() < deadline:
                buf += f.read()
                for line in buf.decode(errors="replace").splitlines():
                    if line.startswith(READY_PREFIX):
                        return line[len(READY_PREFIX) :].strip()
                if self.proc.poll() is not None:
                    break
                time.sleep(0.01)
        if self.proc.poll() is not None:
            tail = self.log_tail()
            self.close()
            raise LaunchError(
                f"local server exited with code {self.proc.returncode} before it was ready: " + " ".join(cmd),
                host="127.0.0.1",
                log_tail=tail,
            )
        tail = self.log_tail()
        self.close()
        raise LaunchError(f"local server not ready after {timeout:.0f} s", host="127.0.0.1", log_tail=tail)

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        """Stop the server by PID (SIGTERM, then SIGKILL) and remove its log. Idempotent."""
        self._finalizer()

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stop_process(proc: subprocess.Popen[bytes], log_path: str, grace: float = 5.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            log.warning("server pid %d ignored SIGTERM; killing it", proc.pid)
            proc.kill()
            proc.wait()
    with contextlib.suppress(OSError):
        os.unlink(log_path)
