"""One SSH connection to a host: open it (through a jump host), run remote scripts, name failures.

Fabric/paramiko carry the commands; OpenSSH's ``ssh`` gets the same options (:func:`ssh_argv`) for
the tunnels that run it. Host keys are trusted on first use, like OpenSSH's ``accept-new``: the
user's own ``known_hosts`` is read, new keys are remembered in ours (0600), and a *changed* key is
refused. Every failure to connect or to run a command is a :class:`~gym_remote.errors.LaunchError`
whose message says what to check (the key, sshd, the port, the host name).

Each remote command runs on its own channel (:class:`RemoteCommand`); waiting for it needs both EOF
and the exit status, since OpenSSH may send the status before the last output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gym_remote.errors import LaunchError
from gym_remote.launch.config import HostConfig, Target, gateway_target, resolve_config
from gym_remote.launch.shell import bash

log = logging.getLogger(__name__)

__all__ = ["CommandResult", "RemoteCommand", "SshClient", "connected", "ssh_argv"]


@dataclass
class CommandResult:
    """What a finished remote command returned."""

    status: int
    stdout: str
    stderr: str


class RemoteCommand:
    """One command on its own channel; :meth:`wait` may be called again after an interruption.

    Args:
        transport: an open paramiko transport.
        command: the command line (quote it: see :mod:`gym_remote.launch.shell`).
        pty: run it in a pty, so that closing the channel hangs it up (``tail -F``).
    """

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

    def wait(self, timeout: float) -> CommandResult:
        """The command's exit status and output.

        Raises:
            TimeoutError: it did not finish within ``timeout`` seconds (the channel is closed).
        """
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
        return CommandResult(status, self._out.decode(errors="replace"), self._err.decode(errors="replace"))


def prepare_known_hosts(path: str) -> str:
    """Create the known-hosts file (0600) so both paramiko and OpenSSH can record new keys in it."""
    full = Path(os.path.expanduser(path))
    full.parent.mkdir(parents=True, exist_ok=True)
    if not full.exists():
        full.touch(mode=0o600)
    return str(full)


def _gcm_first_transport(sock: Any, **kwargs: Any) -> Any:
    """A paramiko ``Transport`` that offers AES-GCM first (paramiko's own first choice is AES-CTR with
    HMAC-SHA2, two passes over every byte; GCM is one, on the AES-NI/PCLMUL units): what the Fabric
    tunnel's large observations cost in CPU. Every other cipher is still offered after it."""
    import paramiko

    transport = paramiko.Transport(sock, **kwargs)
    gcm = tuple(c for c in transport._preferred_ciphers if "gcm" in c)
    transport._preferred_ciphers = gcm + tuple(c for c in transport._preferred_ciphers if "gcm" not in c)
    return transport


def fabric_connection(target: Target, cfg: HostConfig, gateway: Any = None) -> Any:
    """A Fabric ``Connection`` (not yet open) to ``target`` with our key and host-key policy."""
    from fabric import Connection

    connect_kwargs: dict[str, Any] = {
        "banner_timeout": max(cfg.connect_timeout, 1),  # a port that accepts but never speaks SSH
        "auth_timeout": max(cfg.connect_timeout, 5),
    }
    if target.key_filename:
        connect_kwargs.update(
            key_filename=os.path.expanduser(target.key_filename), look_for_keys=False, allow_agent=False
        )
    connect_kwargs["transport_factory"] = _gcm_first_transport
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
    conn.client.load_host_keys(prepare_known_hosts(cfg.known_hosts))
    return conn


def describe_connect_error(exc: BaseException, where: str, timeout: float) -> str:
    """What went wrong opening SSH to ``where``, and what to check."""
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


def ssh_argv(cfg: HostConfig, target: Target) -> list[str]:
    """``ssh`` options that match the Fabric side: batch mode, accept-new into our known_hosts."""
    known = prepare_known_hosts(cfg.known_hosts)
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


class SshClient:
    """One SSH connection to ``cfg.host`` (through ``cfg.gateway`` when set), opened on first use.

    Args:
        cfg: the host config; only its SSH fields are used here.

    Raises:
        ValueError: ``cfg.host`` is empty.
    """

    def __init__(self, cfg: HostConfig) -> None:
        if not cfg.host:
            raise ValueError("HostConfig.host is empty")
        self.cfg = cfg
        self._conn: Any = None
        self._gateway: Any = None
        self._lock = threading.RLock()

    @property
    def where(self) -> str:
        user = f"{self.cfg.user}@" if self.cfg.user else ""
        return f"{user}{self.cfg.host}:{self.cfg.port or 22}"

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
            gw_target = gateway_target(cfg)
            self._gateway = fabric_connection(gw_target, cfg) if gw_target else None
            self._conn = fabric_connection(Target.of(cfg), cfg, self._gateway)
            try:
                self._conn.open()
            except Exception as exc:
                where = self.where if gw_target is None else f"{self.where} via {gw_target.host}:{gw_target.port or 22}"
                self.disconnect()
                raise LaunchError(
                    describe_connect_error(exc, where, cfg.connect_timeout), host=cfg.host, port=cfg.port
                ) from exc
            self._conn.transport.set_keepalive(15)  # NAT boxes drop silent connections

    def disconnect(self) -> None:
        """Close the SSH connection (and the jump host's). Idempotent."""
        with self._lock:
            for conn in (self._conn, self._gateway):
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
            self._conn = self._gateway = None

    def command(self, command: str, pty: bool = False) -> RemoteCommand:
        """Start ``command`` on a new channel (see :class:`RemoteCommand`)."""
        return RemoteCommand(self.connection.transport, command, pty=pty)

    def run(self, script: str, timeout: float | None = None) -> CommandResult:
        """Run a shell script remotely under ``bash``.

        Args:
            timeout: seconds; default ``cfg.command_timeout``.

        Raises:
            LaunchError: the command timed out or the SSH link broke.
        """
        try:
            cmd = RemoteCommand(self.connection.transport, bash(script))
            return cmd.wait(self.cfg.command_timeout if timeout is None else timeout)
        except LaunchError:
            raise
        except TimeoutError as exc:
            raise LaunchError(f"remote command timed out: {exc}", host=self.cfg.host) from exc
        except Exception as exc:  # paramiko.SSHException, EOFError, OSError: the link broke
            raise LaunchError(f"SSH to {self.where} failed: {type(exc).__name__}: {exc}", host=self.cfg.host) from exc


@contextlib.contextmanager
def connected(cfg: HostConfig | str) -> Iterator[SshClient]:
    """An open :class:`SshClient` for a config or a host/config name, disconnected on exit."""
    client = SshClient(cfg if isinstance(cfg, HostConfig) else resolve_config(cfg))
    try:
        client.connect()
        yield client
    finally:
        client.disconnect()
