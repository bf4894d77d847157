"""A real OpenSSH server on 127.0.0.1 for the launcher tests (fixtures: ``sshd``, ``ssh_host``).

The launcher's traps (tunnels that die, background starts that block, stale PID files) only show
against a real sshd, so the tests run one: throw-away ed25519 host and client keys, a config that
allows key logins and TCP forwarding and nothing else, ``sshd -D`` in the foreground of a process
we own and stop by its PID. The remote user is the current one (root on CI); the remote Python is
this interpreter, with this checkout on ``PYTHONPATH``, so the server imports the gym_remote under
test. Import the fixtures into a test module with ``from tests.sshd import sshd, ssh_host``.

Missing sshd is a failure, not a skip: CI installs openssh-server, and a silently skipped launcher
suite would hide a broken launcher.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SSHD = "/usr/sbin/sshd"
REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the usual small race applies)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_listening(host: str, port: int, timeout: float, alive: Any = None) -> bool:
    """Poll until ``host:port`` accepts a TCP connection; False on timeout or when ``alive()`` is false."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


@dataclass
class SshServer:
    """A running sshd and everything a client needs to log in to it."""

    port: int
    user: str
    key_filename: str
    bad_key_filename: str  # a valid key that is not authorized: for "key refused" tests
    known_hosts: str
    directory: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    host: str = "127.0.0.1"

    def host_config(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``HostConfig`` that reach this sshd and run the checkout's code."""
        options: dict[str, Any] = {
            "host": self.host,
            "user": self.user,
            "port": self.port,
            "key_filename": self.key_filename,
            "known_hosts": self.known_hosts,
            "connect_timeout": 5,
            "python": sys.executable,
            "env": {"PYTHONPATH": str(REPO_ROOT)},
            "runtime_dir": str(self.directory / "runtime"),
            "ready_timeout": 30,
            "backend": "gymnasium",
            "task": "CartPole-v1",
        }
        options.update(overrides)
        return options

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop sshd by the PID we started (never by name); sessions it forked exit with it."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gym-remote-test", "-f", str(path)], check=True
    )


def start_sshd(
    directory: Path, timeout: float = 10.0, listen: str = "127.0.0.1", prefix: Sequence[str] = ()
) -> SshServer:
    """Generate keys and a config in ``directory``, start sshd on a free loopback port, wait for it.

    Args:
        listen: the address sshd listens on (another one than loopback only inside a network
            namespace of one's own: see ``gym_remote.bench.links.CappedLink``).
        prefix: a command that runs sshd (``["ip", "netns", "exec", NAME]``); its readiness is then
            read from its log, since this process may not reach ``listen``.
    """
    if not os.path.exists(SSHD):
        pytest.fail(
            f"{SSHD} not found: the launcher tests need a real OpenSSH server. "
            "Install it with `apt-get install -y openssh-server openssh-client`."
        )
    if shutil.which("ssh-keygen") is None:
        pytest.fail("ssh-keygen not found: install openssh-client (`apt-get install -y openssh-client`).")
    directory.mkdir(parents=True, exist_ok=True)
    host_key, client_key, bad_key = (
        directory / "host_ed25519",
        directory / "client_ed25519",
        directory / "bad_ed25519",
    )
    for key in (host_key, client_key, bad_key):
        _keygen(key)
    authorized = directory / "authorized_keys"
    authorized.write_text(Path(f"{client_key}.pub").read_text())
    authorized.chmod(0o600)
    port = free_port()
    config = directory / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                f"ListenAddress {listen}",
                f"HostKey {host_key}",
                f"AuthorizedKeysFile {authorized}",
                f"PidFile {directory / 'sshd.pid'}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "StrictModes no",
                "AllowTcpForwarding yes",
                "MaxSessions 64",
                "MaxStartups 64:30:128",
                "LogLevel VERBOSE",
                "",
            ]
        )
    )
    os.makedirs("/run/sshd", exist_ok=True)  # privilege-separation directory sshd insists on
    log_path = directory / "sshd.log"
    check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.fail(f"sshd rejected the test config {config}:\n{check.stderr}")
    proc = subprocess.Popen([*prefix, SSHD, "-D", "-f", str(config), "-E", str(log_path)], stdin=subprocess.DEVNULL)
    server = SshServer(
        port=port,
        user=getpass.getuser(),
        key_filename=str(client_key),
        bad_key_filename=str(bad_key),
        known_hosts=str(directory / "known_hosts"),
        directory=directory,
        log_path=log_path,
        process=proc,
        host=listen,
    )
    if prefix:
        deadline = time.monotonic() + timeout
        while "Server listening" not in server.log_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        ready = "Server listening" in server.log_text()
    else:
        ready = wait_listening(listen, port, timeout, alive=lambda: proc.poll() is None)
    if not ready:
        server.stop()
        pytest.fail(f"sshd did not listen on {listen}:{port} within {timeout} s; its log:\n{server.log_text()}")
    return server


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """One sshd for the whole test session."""
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ssh_host(sshd: SshServer, tmp_path: Path) -> dict[str, Any]:
    """``HostConfig`` keyword arguments for ``sshd``, with a runtime dir private to the test."""
    return sshd.host_config(runtime_dir=str(tmp_path / "runtime"))
