"""Tunnels from a local port to a launched server's port: OpenSSH's ``ssh -L`` or paramiko's.

:class:`OpenSshTunnel` runs ``ssh -T -L`` with a remote command that lasts until ssh's stdin ends
(:data:`KEEPALIVE_COMMAND`), not ``-N``: sshd turns Nagle's algorithm off only for a connection
that runs a command. :class:`FabricTunnel` needs no ``ssh`` binary: a process of ours
(:mod:`gym_remote.launch.forwarder`) logs in with paramiko and forwards each connection over its
own ``direct-tcpip`` channel, out of this process's GIL (Fabric's ``forward_local`` copies 1 KiB
per ``select``: a 1 MiB round trip took ~70-95 ms). ``"auto"`` still takes OpenSSH whenever an
``ssh`` client is on PATH: its C copy loop costs half the CPU per byte. Either tunnel is opened only
once the server printed READY; both are processes that end with this one (their stdin is a pipe
only this process holds) and are stopped by PID. Both listen on 127.0.0.1 only, and the
constructor returns once the local port accepts connections; on any failure (Ctrl-C included)
nothing is left listening or running.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from gym_remote.errors import LaunchError
from gym_remote.launch.channels import ChannelForwarder, wait_listening
from gym_remote.launch.config import HostConfig, Target, gateway_target
from gym_remote.launch.forwarder import SSH_FIELDS
from gym_remote.launch.ssh import SshClient, ssh_argv

log = logging.getLogger(__name__)

__all__ = ["FabricTunnel", "OpenSshTunnel", "choose_tunnel", "free_local_port"]


def free_local_port(host: str = "127.0.0.1") -> int:
    """A free TCP port on ``host`` (nothing binds it in between, but the race is small)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_port_free(port: int) -> None:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise LaunchError(f"local port {port} is in use ({exc}); pick another local_port", port=port) from None


#: Ciphers offered first by both tunnels: AES-GCM runs on the AES-NI/PCLMUL units most x86 and ARM
#: servers have (several times chacha20-poly1305, OpenSSH's first choice, per byte); the others follow,
#: so a server without GCM still connects.
FAST_CIPHERS = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes256-ctr"


class _PipedProcess:
    """A tunnel's process: it runs until its stdin pipe, which only this process holds, ends (so it
    also ends when this process dies); its stderr goes to a file, which never fills like a pipe."""

    proc: subprocess.Popen[bytes] | None = None

    def _popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in _end_process
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stderr=self._stderr, **kwargs)
        return self.proc

    def stderr_text(self) -> str:
        """What the process wrote to stderr (its errors)."""
        with contextlib.suppress(Exception):
            self._stderr.seek(0)
            return self._stderr.read().decode(errors="replace")
        return ""

    def _end_process(self, terminate: bool) -> None:
        """Close its stdin (it ends by itself), SIGTERM it by PID if ``terminate``, and SIGKILL it if
        it has not ended within 3 s."""
        proc = self.proc
        if proc is None:
            return
        for pipe in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()
        if terminate and proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=3)
        with contextlib.suppress(Exception):
            self._stderr.close()


class FabricTunnel(_PipedProcess):
    """A local port forwarded over paramiko (no ``ssh`` binary needed), in a process of its own.

    The forwarder (:mod:`gym_remote.launch.forwarder`) logs in again with ``cfg``'s SSH fields and
    forwards the port over its own transport, so paramiko's per-packet Python never waits for this
    process's GIL, nor makes a training loop wait for it. The process ends when :meth:`close` closes
    its stdin, or when this process dies (its stdin ends with it); :meth:`close` kills it by PID if it
    does not end by itself. Given a Fabric ``Connection`` instead of a config, the forwarder runs on
    that connection's transport in this process (:class:`~gym_remote.launch.channels.ChannelForwarder`);
    so it does in a frozen app (PyInstaller's ``sys.frozen``), which has no interpreter to run the
    forwarder module with, on a connection of its own that :meth:`close` ends.

    Args:
        cfg: the host config (only its SSH fields are used), or an open Fabric ``Connection``.
        remote_port: the server's port on the SSH host's 127.0.0.1.
        local_port: where to listen, on 127.0.0.1.
        timeout: seconds for the SSH login and for the port to accept connections.

    Raises:
        LaunchError: the forwarder did not come up (its reason in the message); nothing is left
            running or listening, Ctrl-C included.
    """

    kind = "fabric"

    def __init__(self, cfg: HostConfig | Any, remote_port: int, local_port: int, timeout: float) -> None:
        self.local_port = local_port
        self._inline: ChannelForwarder | None = None
        self._own_ssh: SshClient | None = None
        if not isinstance(cfg, HostConfig):
            self._inline = ChannelForwarder(cfg, remote_port, local_port, timeout)
            return
        if getattr(sys, "frozen", False):
            log.info("a frozen app: the Fabric tunnel to port %d forwards in this process", remote_port)
            self._own_ssh = SshClient(cfg)
            try:
                self._inline = ChannelForwarder(self._own_ssh.connection, remote_port, local_port, timeout)
            except BaseException:
                self._own_ssh.disconnect()
                raise
            return
        package_root = str(Path(__file__).resolve().parents[2])
        python_path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        request = {
            "ssh": {name: getattr(cfg, name) for name in SSH_FIELDS},
            "remote_port": remote_port,
            "local_port": local_port,
            "timeout": timeout,
        }
        try:
            # Its own session: a Ctrl-C meant for this process's loop does not reach it.
            proc = self._popen(
                [sys.executable, "-m", "gym_remote.launch.forwarder"],
                stdout=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": python_path},
                start_new_session=True,
            )
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
            answer = self._answer(timeout + 20)  # + interpreter start-up and imports
        except BaseException:  # Ctrl-C included: leave no process behind
            self.close()
            raise
        if answer != "READY":
            status, reason = self.proc.poll(), self.stderr_text().strip()
            self.close()
            raise LaunchError(
                f"the Fabric tunnel 127.0.0.1:{local_port} -> remote port {remote_port} did not come up "
                f"(forwarder {answer or 'silent'}, exit {status}): {reason or 'no reason given'}",
                host=cfg.host,
                port=local_port,
            )

    def _answer(self, timeout: float) -> str:
        """The forwarder's first line, or "" if it says nothing within ``timeout`` seconds."""
        stdout = self.proc.stdout if self.proc is not None else None
        assert stdout is not None
        lines: list[bytes] = []
        reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        return lines[0].decode(errors="replace").strip() if lines else ""

    def close(self) -> None:
        """Stop forwarding: end the forwarder process (its stdin, then its PID) or the in-process forwarder.

        Idempotent.
        """
        try:
            if self._inline is not None:
                self._inline.close()
        finally:
            if self._own_ssh is not None:
                self._own_ssh.disconnect()
            self._end_process(terminate=False)  # it closes its listener and logs out by itself


#: What the OpenSSH tunnel runs on the server instead of ``ssh -N``: a command that lasts until its
#: stdin ends. sshd turns Nagle's algorithm off (TCP_NODELAY) on a connection only once a session
#: runs a command; with ``-N`` a forwarded 32 KiB packet can wait for the acknowledgement of the one
#: before it, which the client delays up to 40 ms (1 MiB steps: p99 ~50 ms with ``-N``).
KEEPALIVE_COMMAND = "cat >/dev/null"


class OpenSshTunnel(_PipedProcess):
    """``ssh -T -L ... HOST 'cat >/dev/null'`` in a subprocess; it ends with this process (stdin EOF)."""

    kind = "openssh"

    def __init__(self, cfg: HostConfig, remote_port: int, local_port: int, timeout: float) -> None:
        self.local_port = local_port
        argv = [*ssh_argv(cfg, Target.of(cfg)), KEEPALIVE_COMMAND]
        argv[1:1] = [
            "-T",
            "-L",
            f"127.0.0.1:{local_port}:127.0.0.1:{remote_port}",
            "-o",
            f"Ciphers={FAST_CIPHERS}",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ServerAliveCountMax=3",
        ]
        gw = gateway_target(cfg)
        if gw is not None:
            jump = ssh_argv(cfg, gw)
            jump[1:1] = ["-W", "%h:%p"]
            argv[1:1] = ["-o", "ProxyCommand=" + " ".join(shlex.quote(a) for a in jump)]
        log.debug("tunnel: %s", shlex.join(argv))
        # stdin is a pipe only we hold: if this process dies, ssh reads EOF, the remote command ends
        # and ssh exits with it.
        proc = self._popen(argv, stdout=subprocess.DEVNULL)
        try:
            up = wait_listening(local_port, timeout, lambda: proc.poll() is None)
        except BaseException:  # Ctrl-C: leave no ssh process behind
            self.close()
            raise
        if not up:
            status, stderr = proc.poll(), self.stderr_text().strip()
            self.close()
            raise LaunchError(
                f"the OpenSSH tunnel 127.0.0.1:{local_port} -> remote port {remote_port} did not come "
                f"up within {timeout:g} s (ssh exit {status}): {stderr}",
                host=cfg.host,
                port=local_port,
            )

    def close(self) -> None:
        """End ssh (its stdin, then SIGTERM by PID: it would wait for open forwarded connections). Idempotent."""
        self._end_process(terminate=True)


def choose_tunnel(tunnel: str | None) -> str | None:
    """``"auto"`` means OpenSSH when an ``ssh`` client is on PATH, else Fabric."""
    if tunnel == "auto":
        return "openssh" if shutil.which("ssh") else "fabric"
    return tunnel
