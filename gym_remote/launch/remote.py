"""Start, watch and stop one ``gym_remote serve`` process over SSH; stop a recorded one by PID.

The flow of :meth:`RemoteLauncher.start`:

1. In one remote shell: ``cd workdir``, run the ``setup`` line, export ``env``, pick a free port
   when none was given, stop the stale server that an earlier, crashed run recorded for that port
   (only when ``/proc/PID/cmdline`` proves it is our ``gym_remote serve`` on that port: never by
   name), then start ``python -m gym_remote serve`` with ``nohup setsid`` in the background, output
   to ``<runtime_dir>/server-<port>.log`` and its PID to ``server-<port>.pid``.
2. Follow the log (:class:`~gym_remote.launch.logs.LogFollower`) until the READY line. A Traceback
   or the death of the process fails at once with the log tail, not after a timeout.

Stopping sends SIGTERM to the server's process group (what Ctrl-C in a terminal does: Isaac Sim
launcher scripts do not forward signals to their Python child), waits, then SIGKILLs what is left.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shlex
import time

from gym_remote.errors import LaunchError
from gym_remote.launch.config import HostConfig
from gym_remote.launch.logs import TRACEBACK, LogFollower
from gym_remote.launch.logs import log_path as log_file
from gym_remote.launch.shell import SHELL_LIB, bash, rcommand, rpath
from gym_remote.launch.ssh import RemoteCommand, SshClient

log = logging.getLogger(__name__)

__all__ = ["RemoteLauncher", "stop_remote"]


class RemoteLauncher(SshClient):
    """Start, watch and stop one ``gym_remote serve`` process on ``cfg.host`` over SSH.

    ``start()`` returns once the server printed READY; :attr:`remote_port` and :attr:`pid` then say
    where it is. Used as a context manager it stops the server and disconnects on exit. The SSH
    side (``connect``, ``run``, ``connection``) is :class:`~gym_remote.launch.ssh.SshClient`'s.

    Args:
        cfg: the host config.

    Raises:
        ValueError: ``cfg.host`` is empty.
    """

    def __init__(self, cfg: HostConfig) -> None:
        super().__init__(cfg)
        self.remote_port: int | None = None
        self.pid: int | None = None
        self.stale_pid: int | None = None  # the stale server start() stopped, if any
        self._stopped = False
        self._follower: LogFollower | None = None

    @property
    def log_path(self) -> str:
        return log_file(self.cfg.runtime_dir, self.remote_port)

    def disconnect(self) -> None:
        """Close the log follower and the SSH connection; the server, if any, keeps running."""
        with self._lock:
            if self._follower is not None:
                self._follower.close()
                self._follower = None
            super().disconnect()

    # --------------------------------------------------------------------------------- start

    def _start_script(self) -> str:
        cfg = self.cfg
        python = rcommand(cfg.python)
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
            f"RT={rpath(cfg.runtime_dir)}",
            # Private when we create it; an existing folder (even /tmp) is left as it is.
            '[ -d "$RT" ] || { mkdir -p "$RT" && chmod 700 "$RT"; } || {',
            '  echo "gym-remote: cannot create runtime dir $RT" >&2; exit 96; }',
            SHELL_LIB,
        ]
        if cfg.workdir:
            lines.append(f"cd {rpath(cfg.workdir)} || exit 95")
        if cfg.setup:
            lines.append(f"{{ {cfg.setup}\n}} || {{ echo 'gym-remote: the setup command failed' >&2; exit 97; }}")
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
        cmd = RemoteCommand(self.connection.transport, bash(self._start_script()))
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
            self._follower = LogFollower(
                self.connection.transport, self.log_path, self.pid, f"{cfg.host}:{self.remote_port}"
            )
            self._wait_ready()
        except BaseException:
            with contextlib.suppress(BaseException):
                self.stop()
            raise
        log.info("server PID %d ready on %s port %d (log %s)", self.pid, cfg.host, self.remote_port, self.log_path)
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
        if TRACEBACK in tail:  # name the exception in the message itself
            last = [x for x in tail.split(TRACEBACK)[-1].splitlines() if x and not x[0].isspace()]
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
        result = self.run(SHELL_LIB + f"\ngr_ours {self.pid} {self.remote_port} && echo alive", 30)
        return "alive" in result.stdout

    def log_tail(self, n: int = 40) -> str:
        """The last ``n`` lines of the server log: from the follower, else read over SSH."""
        if self._follower is not None and self._follower.lines:
            return self._follower.tail(n)
        if self.remote_port is None or self._conn is None:
            return ""
        try:
            return self.run(f"tail -n {int(n)} {rpath(self.log_path)} 2>/dev/null", 10).stdout
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
                stopped = stop_remote(self, self.remote_port, expected_pid=self.pid)
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


def stop_remote(ssh: SshClient, port: int, expected_pid: int | None = None) -> bool:
    """Stop the server recorded for ``port`` on ``ssh``'s host (if it is ours) and remove its PID file.

    Returns whether a running server was stopped.

    Raises:
        LaunchError: SSH failed.
    """
    cfg = ssh.cfg
    grace = max(1, int(cfg.stop_timeout * 10))
    pids = f"{int(expected_pid)} " if expected_pid else ""
    script = "\n".join(
        [
            SHELL_LIB,
            f'RT={rpath(cfg.runtime_dir)}; PORT={int(port)}; PIDF="$RT/server-$PORT.pid"',
            f'PIDS="{pids}$(cat "$PIDF" 2>/dev/null)"',
            f'for P in $PIDS; do gr_stop "$P" "$PORT" {grace} && echo "GYM_REMOTE_STOPPED $P"; done',
            'rm -f "$PIDF"',
            "exit 0",
        ]
    )
    result = ssh.run(script, timeout=cfg.stop_timeout + 30)
    stopped = "GYM_REMOTE_STOPPED" in result.stdout
    if stopped:
        log.info("stopped server on %s port %d", cfg.host, port)
    return stopped
