"""Tunnels from a local port to a launched server's port: OpenSSH's ``ssh -N -L`` or paramiko's.

:class:`FabricTunnel` needs no ``ssh`` binary: it forwards over the Fabric connection's own paramiko
transport, one ``direct-tcpip`` channel per connection with a wide window, large packets and large
reads (Fabric's ``forward_local`` copies 1 KiB per ``select``: a 1 MiB round trip took ~70-95 ms).
``"auto"`` still takes OpenSSH whenever an ``ssh`` client is on PATH: its C copy loop is cheaper for
the CPU this process shares with the training loop. Either tunnel is opened only once the server
printed READY. Both listen on 127.0.0.1 only, and the constructor returns once the local port accepts
connections; on any failure (Ctrl-C included) nothing is left listening.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from gym_remote.errors import LaunchError
from gym_remote.launch.config import HostConfig, Target, gateway_target
from gym_remote.launch.ssh import ssh_argv

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


def wait_listening(port: int, timeout: float, alive: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.05)
    return False


#: What a forwarded channel advertises to the SSH server: a receive window wide enough that a large
#: observation flows without stopping for window adjustments (paramiko's default is 2 MiB), and
#: packets up to 256 KiB (its default 32 KiB means 32 packets, each decrypted in Python, per MiB).
CHANNEL_WINDOW = 64 * 2**20
CHANNEL_MAX_PACKET = 2**18
#: Ciphers offered first by both tunnels: AES-GCM runs on the AES-NI/PCLMUL units most x86 and ARM
#: servers have (several times chacha20-poly1305, OpenSSH's first choice, per byte); the others follow,
#: so a server without GCM still connects.
FAST_CIPHERS = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes256-ctr"
#: Bytes a forwarding thread reads at once (Fabric's own tunnel reads 1 KiB per select).
CHUNK = 2**20


def _sock_to_channel(client: socket.socket, channel: Any) -> None:
    while data := client.recv(CHUNK):
        channel.sendall(data)
    channel.shutdown_write()


def _channel_to_sock(channel: Any, client: socket.socket) -> None:
    while data := channel.recv(CHUNK):
        client.sendall(data)
    client.shutdown(socket.SHUT_WR)


class FabricTunnel:
    """A local port forwarded over the Fabric connection's paramiko transport, no ``ssh`` binary needed.

    Fabric's ``forward_local`` copies 1 KiB per ``select`` in Python (a 1 MiB round trip ~70-95 ms).
    Here each accepted connection gets its own ``direct-tcpip`` channel with a wide window and large
    packets, and two threads that move up to :data:`CHUNK` bytes per call, one per direction. A channel
    that cannot open (the remote port not listening yet) closes only that connection: the tunnel
    stays up for the next one.
    """

    kind = "fabric"

    def __init__(self, conn: Any, remote_port: int, local_port: int, timeout: float) -> None:
        self.local_port = local_port
        self.error: BaseException | None = None
        self._transport = conn.transport
        self._remote_port = remote_port
        self._timeout = timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: set[Any] = set()  # sockets and channels to close with the tunnel
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind(("127.0.0.1", local_port))
            self._listener.listen(64)
            self._listener.settimeout(0.5)  # wake up to notice close()
        except OSError as exc:
            self._listener.close()
            raise LaunchError(
                f"the Fabric tunnel cannot listen on 127.0.0.1:{local_port} ({exc}); pick another local_port",
                port=local_port,
            ) from None
        self._thread = threading.Thread(target=self._accept, name=f"gym-remote-tunnel[{local_port}]", daemon=True)
        self._thread.start()
        try:
            up = wait_listening(local_port, timeout, self._thread.is_alive)
        except BaseException:  # Ctrl-C: leave no listener behind
            self.close()
            raise
        if not up:
            self.close()
            raise LaunchError(
                f"the Fabric tunnel 127.0.0.1:{local_port} -> remote port {remote_port} did not "
                f"come up within {timeout:g} s: {self.error}",
                port=local_port,
            )

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:  # the listener was closed
                if not self._stop.is_set():
                    self.error = exc
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                channel = self._transport.open_channel(
                    "direct-tcpip",
                    ("127.0.0.1", self._remote_port),
                    peer,
                    window_size=CHANNEL_WINDOW,
                    max_packet_size=CHANNEL_MAX_PACKET,
                    timeout=self._timeout,
                )
            except Exception as exc:  # paramiko.ChannelException, SSHException: this connection only
                self.error = exc
                log.debug("tunnel %d: no channel to remote port %d: %r", self.local_port, self._remote_port, exc)
                client.close()
                continue
            with self._lock:
                if self._stop.is_set():
                    client.close()
                    channel.close()
                    return
                self._open.update((client, channel))
            left = [2]  # pumps still running for this connection; the last one out closes both ends
            for move, src, dst in ((_sock_to_channel, client, channel), (_channel_to_sock, channel, client)):
                threading.Thread(target=self._pump, args=(move, src, dst, left), daemon=True).start()

    def _pump(self, move: Callable[[Any, Any], None], src: Any, dst: Any, left: list[int]) -> None:
        try:
            move(src, dst)
        except Exception as exc:  # a peer went away (OSError, EOFError) or the SSH connection did
            log.debug("tunnel %d: %r", self.local_port, exc)
            for end in (src, dst):  # the other direction ends with it
                with contextlib.suppress(Exception):
                    end.close()
        with self._lock:
            left[0] -= 1
            last = left[0] == 0
            if last:
                self._open.discard(src)
                self._open.discard(dst)
        if last:
            for end in (src, dst):
                with contextlib.suppress(Exception):
                    end.close()

    def close(self) -> None:
        """Stop listening and close every forwarded connection. Idempotent."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            ends, self._open = list(self._open), set()
        for end in ends:
            with contextlib.suppress(Exception):
                end.close()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


class OpenSshTunnel:
    """``ssh -N -L`` in a subprocess."""

    kind = "openssh"

    def __init__(self, cfg: HostConfig, remote_port: int, local_port: int, timeout: float) -> None:
        self.local_port = local_port
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - a file never fills like a pipe
        argv = ssh_argv(cfg, Target.of(cfg))
        argv[1:1] = [
            "-N",
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
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr)
        try:
            up = wait_listening(local_port, timeout, lambda: self.proc.poll() is None)
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


def choose_tunnel(tunnel: str | None) -> str | None:
    """``"auto"`` means OpenSSH when an ``ssh`` client is on PATH, else Fabric."""
    if tunnel == "auto":
        return "openssh" if shutil.which("ssh") else "fabric"
    return tunnel
