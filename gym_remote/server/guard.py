"""A bound on a whole incoming message, however many frames it has: :class:`MessageGuard`.

libzmq's ``ZMQ_MAXMSGSIZE`` limits each frame of a message, not the message: a multipart message is
delivered to the application only once all its frames have arrived, and libzmq keeps them in memory
until then, so neither the frame count nor the total can be checked by the code that reads it (by
then it is all buffered; 4 clients x 200 frames of 1 MB against a 1 MiB limit grew a server by
~730 MB). libzmq 4.3 has no option for either, and pyzmq exposes nothing more.

What bounds it here is the request/reply pattern itself. A REQ client sends one request and then
waits for its reply, so between two replies of the server a well-behaved connection sends at most
one message: at most ``max_message_bytes`` (plus ZeroMQ's framing, and CURVE's per frame). The
guard watches every accepted TCP connection of the server's socket (its file descriptor comes with
the socket monitor's ``ACCEPTED`` event) and reads the kernel's counters for it (``TCP_INFO``:
bytes received, bytes of the server's replies acknowledged). A connection that has sent more than
:meth:`MessageGuard.budget` bytes since the server's last reply to it is shut down: libzmq sees the
connection end and frees the message it was assembling. It runs on a thread of its own, every
``interval`` seconds, so the serving path pays nothing; what a connection can buffer is the budget
plus what arrives in one interval (loopback: a few MB per 10 ms).

Linux only (``TCP_INFO`` with ``tcpi_bytes_acked``/``tcpi_bytes_received``, Linux 4.1+); elsewhere,
and for ``ipc://`` endpoints, only the per-frame limit holds, and the server logs that once.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import sys
import threading
from dataclasses import dataclass

import zmq
from zmq.utils.monitor import recv_monitor_message

__all__ = ["MessageGuard"]

log = logging.getLogger("gym_remote.server")

#: Offsets of ``tcpi_bytes_acked`` and ``tcpi_bytes_received`` (u64) in Linux's ``struct tcp_info``.
_ACKED_RECEIVED = struct.Struct("=QQ")
_OFFSET = 120
_INFO_BYTES = _OFFSET + _ACKED_RECEIVED.size

#: Bytes a connection may send beyond ``max_message_bytes`` between two replies: the ZMTP greeting
#: and handshake (CURVE's included), and per frame ZeroMQ's header (9 bytes) and CURVE's box (33).
_SLACK = 64 * 1024
_PER_FRAME = 64


@dataclass
class _Connection:
    fd: int
    peer: tuple
    acked: int = 0  # the server's bytes the peer has acknowledged: changes when a reply went out
    mark: int = 0  # bytes received from the peer when that happened


def _tcp_counters(fd: int) -> tuple[tuple, int, int]:
    """The peer address of TCP socket ``fd`` and its (bytes acknowledged, bytes received); OSError if none."""
    sock = socket.socket(fileno=fd)  # borrowed: detached below, never closed here (libzmq owns it)
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _INFO_BYTES)
        peer = sock.getpeername()
    finally:
        sock.detach()
    if len(info) < _INFO_BYTES:
        raise OSError("this kernel's TCP_INFO has no byte counters")
    acked, received = _ACKED_RECEIVED.unpack_from(info, _OFFSET)
    return peer, acked, received


def _shutdown(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    try:
        sock.shutdown(socket.SHUT_RDWR)
    finally:
        sock.detach()


class MessageGuard:
    """Shut down any TCP connection of ``sock`` that sends more than one message's worth between two replies.

    Args:
        sock: the server's ROUTER socket (bound or not); only its monitor is used, from this thread.
        max_message_bytes: the largest message a client may send, all frames together.
        max_frames: the most frames a message may have (each adds framing bytes to the budget).
        interval: seconds between two readings of the connections' counters.

    Call :meth:`close` before closing ``sock``.
    """

    def __init__(self, sock: zmq.Socket, max_message_bytes: int, max_frames: int, interval: float = 0.01) -> None:
        self.budget = int(max_message_bytes) + _PER_FRAME * int(max_frames) + _SLACK
        self.interval = float(interval)
        #: Connections shut down for sending too much (for logs and tests).
        self.dropped = 0
        self._sock = sock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._monitor: zmq.Socket | None = None
        if not sys.platform.startswith("linux") or not hasattr(socket, "TCP_INFO"):
            log.warning("no TCP_INFO on %s: only each frame of a message is bounded, not the message", sys.platform)
            return
        self._monitor = sock.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED)
        self._thread = threading.Thread(target=self._run, name="gym-remote-message-guard", daemon=True)
        self._thread.start()  # the monitor socket is this thread's from now on

    def close(self) -> None:
        """Stop watching (idempotent); the server's socket stays open."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._monitor is not None:
            with contextlib.suppress(zmq.ZMQError):  # the server's socket may already be closed
                self._sock.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None

    def _run(self) -> None:
        monitor = self._monitor
        assert monitor is not None
        connections: dict[int, _Connection] = {}
        timeout_ms = max(1, int(self.interval * 1000))
        while not self._stop.is_set():
            while monitor.poll(timeout_ms if not connections else 0):
                self._on_event(recv_monitor_message(monitor), connections)
            for conn in list(connections.values()):
                self._check(conn, connections)
            if connections:
                self._stop.wait(self.interval)

    def _on_event(self, event: dict, connections: dict[int, _Connection]) -> None:
        fd = int(event["value"])
        if event["event"] != zmq.EVENT_ACCEPTED:
            connections.pop(fd, None)
            return
        try:
            peer, acked, received = _tcp_counters(fd)
        except OSError:  # not TCP (ipc://), or already gone
            return
        connections[fd] = _Connection(fd, peer, acked, received)

    def _check(self, conn: _Connection, connections: dict[int, _Connection]) -> None:
        try:
            peer, acked, received = _tcp_counters(conn.fd)
        except OSError:
            connections.pop(conn.fd, None)
            return
        if peer != conn.peer:  # libzmq closed it and the number now names another socket
            connections.pop(conn.fd, None)
            return
        if acked != conn.acked:  # a reply went out: the peer's next message starts after it
            conn.acked, conn.mark = acked, received
            return
        sent = received - conn.mark
        if sent > self.budget:
            connections.pop(conn.fd, None)
            self.dropped += 1
            log.warning(
                "connection from %s sent %d bytes without a reply in between, more than one message may hold "
                "(%d; serve --max-message-bytes raises it): closed it",
                conn.peer[0],
                sent,
                self.budget,
            )
            with contextlib.suppress(OSError):  # already gone
                _shutdown(conn.fd)
