"""Forwarding a local port over paramiko ``direct-tcpip`` channels, in the process that holds the transport.

:class:`ChannelForwarder` listens on 127.0.0.1 and gives each accepted connection its own channel
with a wide window. Paramiko decrypts and parses every packet in Python on its transport thread
(sshd sends at most 32 KiB per packet: ~1.6 ms of CPU per MiB on the development machine); the
data of our channels goes from that thread straight to the local socket (:class:`_Downstream`),
without paramiko's channel buffer and the thread switch per packet behind it. The SSH socket gets
TCP_NODELAY and quick ACKs (:func:`_tune_transport`). The Fabric tunnel runs this in a process of
its own (:mod:`gym_remote.launch.forwarder`), out of the client's GIL.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from gym_remote.errors import LaunchError

log = logging.getLogger(__name__)

__all__ = ["CHANNEL_MAX_PACKET", "CHANNEL_WINDOW", "CHUNK", "ChannelForwarder", "wait_listening"]


def wait_listening(port: int, timeout: float, alive: Callable[[], bool]) -> bool:
    """Poll until 127.0.0.1:``port`` accepts; False after ``timeout`` seconds or once ``alive()`` is false."""
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
#: packets up to 256 KiB (OpenSSH's sshd still sends at most 32 KiB, the size of its reads).
CHANNEL_WINDOW = 64 * 2**20
CHANNEL_MAX_PACKET = 2**18
#: Bytes a forwarding thread reads at once (Fabric's own tunnel reads 1 KiB per select).
CHUNK = 2**20


def _sock_to_channel(client: socket.socket, channel: Any) -> None:
    while data := client.recv(CHUNK):
        channel.sendall(data)
    channel.shutdown_write()


#: ``send`` flag for a write that must not block the paramiko transport thread (None on Windows:
#: there every write goes through the connection's writer thread).
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", None)


class _Downstream:
    """The channel -> local socket direction of one forwarded connection, fed by paramiko's transport thread.

    Paramiko's transport thread decrypts each packet (sshd sends at most 32 KiB per packet) and
    would put its data into the channel's buffer, for another thread to wake up, copy it out and
    send it: two thread switches and two copies per packet, each waiting for the GIL. Here the
    transport thread sends it to the local socket itself, without blocking (``MSG_DONTWAIT``);
    what the socket does not take at once is queued, in order, for this connection's writer
    thread (:meth:`run`). The channel's window grows back only by what the local socket took, so
    a client that stops reading holds at most the window in memory. Window adjustments and the
    end of the stream are sent by the writer thread: the transport thread must not wait for a key
    exchange it is itself carrying out.
    """

    def __init__(self, channel: Any, sock: socket.socket) -> None:
        self.channel = channel
        self.sock = sock
        self._cv = threading.Condition()
        self._pending: deque[bytes | memoryview] = deque()
        self._busy = False  # the writer thread is sending queued data: feed() must queue behind it
        self._ack = 0  # window to give back to the server
        self._eof = False
        self._closed = False

    def take_buffered(self) -> None:
        """Queue first what reached the channel's own buffer before :class:`_Sinks` routed it here."""
        if self.channel.recv_ready():  # the buffer's own read: its window is given back once sent
            self._pending.append(self.channel.in_buffer.read(CHANNEL_WINDOW, 0.0))
        if self.channel.eof_received or self.channel.closed:
            self._eof = True

    def feed(self, data: bytes) -> None:
        """Called on paramiko's transport thread with each packet's data."""
        sent = 0
        with self._cv:
            if self._closed:
                return
            if not self._pending and not self._busy and _DONTWAIT is not None:
                try:
                    sent = self.sock.send(data, _DONTWAIT)
                except BlockingIOError:
                    sent = 0
                except OSError:  # the local client went away: the writer thread ends the connection
                    self._pending.append(data)
                    self._cv.notify()
                    return
            if sent < len(data):
                self._pending.append(memoryview(data)[sent:] if sent else data)
                self._cv.notify()
        if sent:
            self._give_window(sent)

    def end(self) -> None:
        """The server sent EOF or closed the channel: flush what is queued, then end the local stream."""
        with self._cv:
            self._eof = True
            self._cv.notify()

    def close(self) -> None:
        """Stop the writer thread (the tunnel or the other direction closed the connection)."""
        with self._cv:
            self._closed = True
            self._cv.notify()

    def _give_window(self, n: int) -> None:
        ack = self.channel._check_add_window(n)  # paramiko's own accounting: an adjustment per tenth
        if ack:
            with self._cv:
                self._ack += ack
                self._cv.notify()

    def run(self) -> None:
        """The writer thread: queued data, window adjustments, and the end of the stream.

        Raises:
            OSError: the local client went away. EOFError: the connection was closed.
        """
        from paramiko.common import cMSG_CHANNEL_WINDOW_ADJUST
        from paramiko.message import Message

        while True:
            with self._cv:
                while not (self._pending or self._ack or self._eof or self._closed):
                    self._cv.wait()
                if self._closed:
                    raise EOFError("the forwarded connection was closed")
                chunks, self._pending = list(self._pending), deque()
                ack, self._ack = self._ack, 0
                self._busy = bool(chunks)
                eof = self._eof and not chunks
            if ack:
                m = Message()
                m.add_byte(cMSG_CHANNEL_WINDOW_ADJUST)
                m.add_int(self.channel.remote_chanid)
                m.add_int(ack)
                self.channel.transport._send_user_message(m)
            if eof:
                self.sock.shutdown(socket.SHUT_WR)
                return
            for chunk in chunks:
                self.sock.sendall(chunk)
                self._give_window(len(chunk))
            with self._cv:
                self._busy = bool(self._pending)


class _Sinks:
    """Routes a paramiko transport's channel data to the :class:`_Downstream` of our channels.

    Installed once per transport, as an instance copy of paramiko's per-class handler table:
    channels that are not ours (the launcher's commands and log follower share the transport)
    keep paramiko's own handling. The lock orders a channel's hand-over: data that reached the
    channel's buffer before :meth:`attach` is queued first, everything after goes to the socket.
    """

    def __init__(self, transport: Any) -> None:
        from paramiko.common import MSG_CHANNEL_CLOSE, MSG_CHANNEL_DATA, MSG_CHANNEL_EOF

        self._lock = threading.Lock()
        self._by_channel: dict[int, _Downstream] = {}
        table = dict(transport._channel_handler_table)
        feed, eof, close = table[MSG_CHANNEL_DATA], table[MSG_CHANNEL_EOF], table[MSG_CHANNEL_CLOSE]

        def on_data(channel: Any, m: Any) -> None:
            with self._lock:
                down = self._by_channel.get(id(channel))
                if down is None:
                    feed(channel, m)
                    return
            down.feed(m.get_binary())

        def on_end(default: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
            def handler(channel: Any, m: Any) -> None:
                default(channel, m)
                with self._lock:
                    down = self._by_channel.get(id(channel))
                if down is not None:
                    down.end()

            return handler

        table.update({MSG_CHANNEL_DATA: on_data, MSG_CHANNEL_EOF: on_end(eof), MSG_CHANNEL_CLOSE: on_end(close)})
        transport._channel_handler_table = table

    @classmethod
    def of(cls, transport: Any) -> _Sinks:
        """The router of ``transport``, installed on first use."""
        with _SINKS_LOCK:
            sinks = getattr(transport, "_gym_remote_sinks", None)
            if sinks is None:
                sinks = transport._gym_remote_sinks = cls(transport)
                _tune_transport(transport)
            return sinks

    def attach(self, down: _Downstream) -> None:
        with self._lock:
            down.take_buffered()
            self._by_channel[id(down.channel)] = down

    def detach(self, down: _Downstream) -> None:
        with self._lock:
            if self._by_channel.get(id(down.channel)) is down:
                del self._by_channel[id(down.channel)]


_SINKS_LOCK = threading.Lock()
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux


class _QuickAckSocket:
    """The transport's socket, as paramiko's packetizer reads it: every read acknowledged at once.

    sshd sends a forwarded stream in packets of at most 32 KiB, below loopback's and many links'
    segment size, and with Nagle's algorithm on for a connection that runs no command: a packet
    then waits for the acknowledgement of the one before, which a receiver that delays its ACKs
    (40 ms on Linux) holds back. Linux leaves quick-ACK mode by itself, so it is set again after
    every read (one ``setsockopt``, ~1 us). Everything else goes to the socket itself.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def recv(self, n: int) -> bytes:
        data = self._sock.recv(n)
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _tune_transport(transport: Any) -> None:
    """TCP_NODELAY on the SSH connection's socket (small requests leave at once) and quick ACKs on
    what paramiko reads from it; nothing for a connection through a jump host or a proxy command."""
    sock = getattr(transport, "sock", None)
    if not isinstance(sock, socket.socket) or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    packetizer = getattr(transport, "packetizer", None)
    if _QUICKACK is not None and getattr(packetizer, "_Packetizer__socket", None) is sock:
        packetizer._Packetizer__socket = _QuickAckSocket(sock)  # read on every loop: takes effect at once


class ChannelForwarder:
    """A local port forwarded over a paramiko transport, in the process that holds the transport.

    Each accepted connection gets its own ``direct-tcpip`` channel with a wide window and large
    packets; the server's data goes to the socket from paramiko's transport thread
    (:class:`_Downstream`), the client's from a thread that reads up to :data:`CHUNK` bytes per call.
    A channel that cannot open (the remote port not listening yet) closes only that connection:
    the forwarder stays up for the next one.

    Args:
        conn: an open Fabric ``Connection``.
        remote_port: the server's port on the SSH host's 127.0.0.1.
        local_port: where to listen, on 127.0.0.1.
        timeout: seconds for the port to accept connections, and for each channel to open.

    Raises:
        LaunchError: the port cannot be bound, or does not accept within ``timeout``.
    """

    def __init__(self, conn: Any, remote_port: int, local_port: int, timeout: float) -> None:
        self.local_port = local_port
        self.error: BaseException | None = None
        self._transport = conn.transport
        self._sinks = _Sinks.of(conn.transport)
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
                f"the paramiko forwarder cannot listen on 127.0.0.1:{local_port} ({exc}); pick another local_port",
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
                f"the paramiko forwarder 127.0.0.1:{local_port} -> remote port {remote_port} did not "
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
            self._forward(client, channel)

    def _forward(self, client: socket.socket, channel: Any) -> None:
        """Start moving data both ways between an accepted socket and its open channel."""
        down = _Downstream(channel, client)
        ends = (client, channel, down)
        with self._lock:
            self._open.update(ends)
        self._sinks.attach(down)
        left = [2]  # directions still running for this connection; the last one out closes the ends
        threading.Thread(target=self._pump, args=(_sock_to_channel, (client, channel), ends, left), daemon=True).start()
        threading.Thread(target=self._pump, args=(down.run, (), ends, left), daemon=True).start()

    def _pump(self, move: Callable[..., None], args: tuple[Any, ...], ends: tuple[Any, ...], left: list[int]) -> None:
        try:
            move(*args)
        except Exception as exc:  # a peer went away (OSError, EOFError) or the SSH connection did
            log.debug("tunnel %d: %r", self.local_port, exc)
            for end in ends:  # the other direction ends with it
                with contextlib.suppress(Exception):
                    end.close()
        with self._lock:
            left[0] -= 1
            last = left[0] == 0
            if last:
                self._open.difference_update(ends)
        if last:
            self._sinks.detach(ends[2])
            for end in ends:
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
