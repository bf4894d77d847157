"""A reliable REQ connection to one env server (the "Lazy Pirate" pattern).

A REQ socket whose reply timed out is stuck, so on a timeout the socket is closed (LINGER=0) and a
fresh one opened.

Before a HELLO, :meth:`Connection.probe` opens (and closes) a plain TCP connection to the server
with a short timeout (``probe_timeout``, 2 s): a refused port, an unreachable host or an unknown
host name is a :class:`~gym_remote.errors.ConnectError` at once. Only a server that accepted the
connection gets the long HELLO timeout, which is meant for one that is still building its simulator.

Only idempotent requests (HELLO, PING, GET_STATE) are sent again after a timeout; a STEP never is,
because the server may already have stepped. Sending and receiving are separate calls so that a
vector env can send to many servers before waiting for any.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import zmq

from gym_remote.errors import (
    ERROR_CLASSES,
    ConnectError,
    ProtocolError,
    RemoteEnvError,
    RemoteTimeoutError,
)
from gym_remote.protocol import (
    DEFAULT_COMPRESS_ABOVE,
    DEFAULT_LIMITS,
    IDEMPOTENT,
    Codec,
    Kind,
    Limits,
    Request,
    recv_frames,
    reply_from_header,
    send_frames,
)

log = logging.getLogger(__name__)

#: Seconds a TCP connection to a server may take to open before the endpoint counts as unreachable.
PROBE_TIMEOUT = 2.0

_POLLIN = int(zmq.POLLIN)


def parse_host_port(text: str, default_port: int) -> tuple[str, int]:
    """``"host:port"``, ``"[::1]:port"`` or a bare host; a ValueError names a bad port."""
    host, sep, port = text.rpartition(":")
    if not sep or (text.startswith("[") and not host.endswith("]")):
        return text.strip("[]"), default_port
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise ValueError(f"{text!r} is not HOST:PORT") from None


class Connection:
    """Requests to the server at ``host:port``; every failure is a :class:`RemoteEnvError`.

    Args:
        timeout: seconds to wait for each reply.
        retries: how many times an idempotent request is re-sent after a timeout.
        curve_server_key: the server's Z85 public key; enables CURVE (client keys are generated
            when not given).
        diagnostics: called when an error is raised; its text (e.g. a remote log tail) is attached.
        probe_timeout: seconds a plain TCP connection may take to open before a HELLO (see
            :meth:`probe`); ``None``: no probe (a server this process started and saw ready, or
            one behind a tunnel, whose local end accepts whatever the far end does).
        compression: the codec to ask for at HELLO (``"zstd"``, ``"lz4"``; see
            :mod:`gym_remote.protocol.compression`), used once the server agrees (:meth:`agree`).
        compress_above: frames of fewer bytes travel raw.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 30.0,
        retries: int = 2,
        curve_server_key: bytes | str | None = None,
        curve_public_key: bytes | str | None = None,
        curve_secret_key: bytes | str | None = None,
        limits: Limits = DEFAULT_LIMITS,
        diagnostics: Callable[[], str | None] | None = None,
        context: zmq.Context | None = None,
        probe_timeout: float | None = PROBE_TIMEOUT,
        compression: str | None = None,
        compress_above: int = DEFAULT_COMPRESS_ABOVE,
    ) -> None:
        self.host, self.port = host, int(port)
        self.probe_timeout = probe_timeout
        self.endpoint = f"tcp://{host}:{self.port}" if ":" not in host else f"tcp://[{host}]:{self.port}"
        self.timeout = timeout
        self.retries = retries
        self.limits = limits
        self._codec = Codec(limits)  # one packer and decoder for every request of this connection
        self.compression, self.compress_above = compression, compress_above
        self.diagnostics = diagnostics
        self._ctx = context or zmq.Context.instance()
        self._curve = None
        if curve_server_key is not None:
            if curve_public_key is None or curve_secret_key is None:
                curve_public_key, curve_secret_key = zmq.curve_keypair()
            self._curve = tuple(
                k.encode() if isinstance(k, str) else k for k in (curve_server_key, curve_public_key, curve_secret_key)
            )
        self._sock: zmq.Socket | None = None
        self._timeouts: tuple[int, int] = (-1, -1)  # (SNDTIMEO, RCVTIMEO) set on the socket, in ms
        self._timeouts_s: tuple[float, float] = (-1.0, -1.0)  # the same in seconds, as last asked for
        self._seq = 0
        self._pending: Request | None = None
        self._sent_at = 0.0
        self.closed = False

    # ------------------------------------------------------------------------------- sockets

    def _socket(self) -> zmq.Socket:
        if self.closed:
            raise RemoteEnvError("connection is closed", host=self.host, port=self.port)
        if self._sock is None:
            sock = self._ctx.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.IMMEDIATE, 1)  # a send with no live peer waits (SNDTIMEO), never queues
            if ":" in self.host:  # an IPv6 literal (tcp://[::1]:PORT); names keep libzmq's IPv4 lookup
                sock.setsockopt(zmq.IPV6, 1)
            if self._curve is not None:
                sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = self._curve
            sock.connect(self.endpoint)
            self._sock = sock
        return self._sock

    def _set_timeouts(self, sock: zmq.Socket, send_s: float, recv_s: float) -> None:
        # setsockopt costs a syscall-ish round into libzmq: only when the value changes.
        if send_s == self._timeouts_s[0] and recv_s == self._timeouts_s[1]:
            return
        self._timeouts_s = (send_s, recv_s)
        wanted = (max(1, int(send_s * 1000)), max(1, int(recv_s * 1000)))
        if wanted != self._timeouts:
            sock.setsockopt(zmq.SNDTIMEO, wanted[0])
            sock.setsockopt(zmq.RCVTIMEO, wanted[1])
            self._timeouts = wanted

    def _reset_socket(self) -> None:
        self._timeouts, self._timeouts_s = (-1, -1), (-1.0, -1.0)
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def close(self) -> None:
        self._reset_socket()
        self.closed = True

    def probe(self, timeout: float | None = None) -> None:
        """Open and close a TCP connection to the server, or say at once why none opens.

        Args:
            timeout: seconds to wait for the connection (default :attr:`probe_timeout`).

        Raises:
            ConnectError: the connection was refused (nothing listens on the port), did not open
                within ``timeout`` (host down, a firewall dropping packets), or the host name does
                not resolve. The message names the host, the port and what to check.
        """
        budget = (self.probe_timeout or PROBE_TIMEOUT) if timeout is None else timeout
        try:
            with socket.create_connection((self.host, self.port), timeout=budget):
                return
        except socket.gaierror as exc:
            reason = f"the host name {self.host!r} does not resolve ({exc.strerror})"
            advice = "check the spelling of the host, or give its IP address"
        except ConnectionRefusedError:
            reason = f"connection refused: nothing listens on port {self.port} of {self.host}"
            advice = (
                "check that `gym-remote serve` runs there and printed GYM_REMOTE READY with this port, "
                "and, through SSH, that the tunnel is up (launch=True starts both)"
            )
        except TimeoutError:
            reason = f"no TCP connection to {self.host}:{self.port} within {budget:.1f} s"
            advice = (
                "the host is down or unreachable, or a firewall drops the connection: check the host "
                "and the network, or reach the server through an SSH tunnel (launch=True)"
            )
        except OSError as exc:
            reason = f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}"
            advice = "check the host, the port and the network"
        raise ConnectError(f"{reason}; {advice}", host=self.host, port=self.port, request=Kind.HELLO.value)

    # --------------------------------------------------------------------------- compression

    def hello_fields(self) -> dict[str, Any]:
        """What a HELLO body asks for this connection: the compression codec and threshold, if any."""
        if self.compression is None:
            return {}
        return {"compression": [self.compression], "compress_above": self.compress_above}

    @property
    def compressing(self) -> str | None:
        """The codec this connection compresses its large frames with now (agreed at HELLO), or ``None``."""
        return self._codec.compression

    def agree(self, reply: dict[str, Any]) -> None:
        """Compress (and accept compressed frames) as a HELLO reply agreed, or not at all.

        Only the codec this connection asked for is taken: a server that answers another, or none
        (an older server, one without the library, ``serve --no-compression``), leaves the frames raw.
        """
        codec = reply.get("compression")
        if self.compression is None or codec != self.compression:
            if self._codec.compression is not None:
                log.info("%s: compression off (the server answered %r)", self.endpoint, codec)
            self._codec.compress(None)
            self._codec.accept(())
            return
        above = reply.get("compress_above")
        above = above if type(above) is int and above >= 0 else self.compress_above
        self._codec.compress(codec, max(above, self.compress_above))
        self._codec.accept((codec,))

    # ------------------------------------------------------------------------------ requests

    def send(self, kind: Kind, body: Any = None, session: str | None = None, timeout: float | None = None) -> None:
        """Send one request; :meth:`recv` collects its reply.

        A HELLO is preceded by :meth:`probe`, so an endpoint nobody listens on fails within
        ``probe_timeout`` rather than after ``timeout``.

        Raises:
            ConnectError: before a HELLO, when no TCP connection opens (see :meth:`probe`).
            RemoteTimeoutError: the message could not be handed to a live peer within ``timeout``.
            ProtocolError: ``body`` cannot be encoded.
        """
        if self._pending is not None:
            raise RemoteEnvError("a request is already waiting for its reply", host=self.host, port=self.port)
        if kind is Kind.HELLO and self.probe_timeout is not None:
            self.probe()
        self._seq = seq = self._seq + 1
        frames = self._codec.pack_request(kind, body, session, seq)
        sock = self._sock if self._sock is not None else self._socket()
        budget = self.timeout if timeout is None else timeout
        self._set_timeouts(sock, budget, budget)
        self._sent_at = time.monotonic()
        try:
            if len(frames) == 1:  # the common case: one frame, one send
                sock.send(frames[0], 0)
            else:
                send_frames(sock, frames)
        except zmq.Again:
            self._reset_socket()
            raise self._error(
                RemoteTimeoutError, f"could not send within {budget:.1f} s: no server is listening", kind
            ) from None
        self._pending = Request(kind, None, session, seq)

    def recv(self, timeout: float | None = None) -> Any:
        """Wait for the reply of the pending request; raise its error or a timeout."""
        request = self._pending
        if request is None:
            raise RemoteEnvError("no request is waiting for a reply", host=self.host, port=self.port)
        sock = self._socket()
        budget = self.timeout if timeout is None else timeout
        deadline = self._sent_at + budget
        # A REQ socket delivers exactly one reply, the one to its last request: no stale replies
        # can arrive (a timed-out socket is replaced), so there is nothing to skip. The sequence
        # number only cross-checks; a server that could not decode the request answers with 0.
        self._pending = None
        try:
            remaining = deadline - time.monotonic()
            # RCVTIMEO holds the whole budget; shorten it when time has passed since the send (a
            # vector env collecting replies one by one), so no call waits past its own deadline.
            if timeout is not None or remaining < budget - 0.05:
                self._set_timeouts(sock, budget, max(remaining, 0.001))
            frames = recv_frames(sock)
        except zmq.Again:
            self._reset_socket()
            elapsed = time.monotonic() - self._sent_at
            raise self._error(
                RemoteTimeoutError, f"no reply after {elapsed:.2f} s (timeout {budget:.1f} s)", request.kind
            ) from None
        try:
            msg = self._codec.decode(frames[0], frames[1:]) if len(frames) > 1 else self._codec.decode(frames[0])
            if type(msg) is dict and msg.get("ok") is True and msg.get("n") == request.seq:
                return msg.get("b")  # the hot path: a good reply to this request
            reply = reply_from_header(msg)
        except ProtocolError as exc:
            raise self._error(ProtocolError, f"malformed reply: {exc.message}", request.kind) from exc
        if reply.ok and reply.seq != request.seq:
            self._reset_socket()
            raise self._error(ProtocolError, f"reply {reply.seq} to request {request.seq}", request.kind)
        if reply.error is not None:
            e = reply.error
            raise self._error(
                ERROR_CLASSES[e.code],
                e.message,
                request.kind,
                remote_type=e.type,
                remote_traceback=e.traceback or None,
            )
        return reply.body

    def request(self, kind: Kind, body: Any = None, session: str | None = None, timeout: float | None = None) -> Any:
        """Send and wait; idempotent requests are re-sent on a fresh socket after a timeout."""
        if kind not in IDEMPOTENT:  # a step, a reset: sent once
            self.send(kind, body, session, timeout)
            return self.recv(timeout)
        attempts = 1 + self.retries
        for attempt in range(attempts):
            try:
                self.send(kind, body, session, timeout)
                return self.recv(timeout)
            except RemoteTimeoutError:
                if attempt + 1 >= attempts:
                    raise
                log.warning(
                    "%s to %s timed out; retrying (%d/%d)",
                    kind.value,
                    self.endpoint,
                    attempt + 1,
                    self.retries,
                )
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def pending(self) -> bool:
        return self._pending is not None

    @property
    def socket(self) -> zmq.Socket | None:
        """The live REQ socket (``None`` before the first request and after a timeout replaced it), for
        polling several connections at once (a vector env's groups in flight)."""
        return self._sock

    def abandon(self) -> None:
        """Forget the pending request: its socket is closed (a new one opens on the next request), so its
        reply, if it ever comes, is never read."""
        if self._pending is not None:
            self._pending = None
            self._reset_socket()

    def _error(self, cls: type[RemoteEnvError], message: str, kind: Kind, **extra: Any) -> RemoteEnvError:
        tail = None
        if self.diagnostics is not None:
            try:
                tail = self.diagnostics()
            except Exception:  # diagnostics are best effort; never mask the real error
                log.debug("diagnostics failed", exc_info=True)
        return cls(message, host=self.host, port=self.port, request=kind.value, log_tail=tail, **extra)


def wait_any(connections: Sequence[Connection], timeout: float) -> int:
    """The index of the first of ``connections`` whose reply has arrived, waiting up to ``timeout`` for one.

    ``connections`` each have a request out, oldest first; of several replies that have arrived, the
    oldest request's wins. One connection is not polled: its own :meth:`Connection.recv` waits (and
    times out) as any request does. A connection whose socket was replaced (a timeout) is returned
    at once, so its ``recv`` reports the error.

    Args:
        connections: at least one, each with a pending request.
        timeout: seconds to wait for a reply (at least 1 ms is waited).

    Returns:
        An index into ``connections``; ``0`` (the oldest) when nothing arrived within ``timeout``,
        whose ``recv`` then raises the timeout.
    """
    if len(connections) == 1:
        return 0
    items = []
    for i, conn in enumerate(connections):
        sock = conn.socket
        if sock is None:
            return i
        items.append((sock, _POLLIN))
    # zmq_poll on the sockets directly: no Poller and no dict of registrations per call.
    ready = {sock for sock, events in zmq.zmq_poll(items, max(1, int(timeout * 1000))) if events}
    for i, conn in enumerate(connections):
        if conn.socket in ready:
            return i
    return 0
