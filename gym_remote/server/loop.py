"""The serving loop: one ROUTER socket, bound once (CURVE optional), served on one thread until stopped.

:class:`EnvServer` owns the socket and the loop, and holds the sessions
(:class:`~gym_remote.server.sessions.SessionTable`) and the request handler
(:class:`~gym_remote.server.requests.RequestHandler`) that turns each request into a reply.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from typing import IO, Any

import zmq

from gym_remote.config import ServerConfig
from gym_remote.errors import ProtocolError
from gym_remote.protocol import (
    DEFAULT_LIMITS,
    READY_PREFIX,
    Codec,
    ErrorCode,
    Limits,
    available_codecs,
    recv_frames,
    send_frames,
)
from gym_remote.protocol.frames import _RCVMORE, _SNDMORE  # plain ints: cheaper than pyzmq's enums
from gym_remote.server.guard import MessageGuard
from gym_remote.server.requests import RequestHandler
from gym_remote.server.sessions import SessionTable
from gym_remote.server.startup import SessionFactory, is_loopback_address, validate_factory
from gym_remote.session import SessionLimits

__all__ = ["EnvServer"]

log = logging.getLogger("gym_remote.server")


def _from_table(name: str, doc: str) -> property:
    """A read-only attribute of the server that its :class:`SessionTable` holds."""
    return property(lambda server: getattr(server._table, name), doc=doc)


class EnvServer:
    """Serve envs built by ``factory`` to REQ clients over ZeroMQ.

    The admission keywords default to :class:`~gym_remote.config.ServerConfig`'s values; a loaded
    config is passed as ``EnvServer(factory, **dataclasses.asdict(config))``.

    Args:
        factory: builds a :class:`Session` for each HELLO.
        address: ZeroMQ endpoint to bind; port ``*`` picks a free one (see :attr:`endpoint`).
        max_sessions: HELLOs past this many open sessions get a "server busy" error.
        max_sessions_per_peer: sessions one peer may hold at once (``None``: half of
            ``max_sessions``), so that one client cannot lock everyone else out until its sessions
            idle out. A peer is a client key when ``curve_clients`` admits keys one by one, else an
            IP address (every client of an SSH tunnel is its local end, 127.0.0.1: one peer).
        session_limits: what one client may ask the server to build (:class:`SessionLimits`:
            sub-envs per session, keyword sizes, fixed and allowed keywords).
        idle_timeout: seconds without a request after which a session is closed (``None`` or 0: never).
        max_message_bytes: the largest incoming message, all frames together: a larger frame is
            dropped by libzmq (ZMQ_MAXMSGSIZE), and a TCP connection that sends more than this
            (plus framing) between two replies is shut down before libzmq has buffered it all
            (:class:`~gym_remote.server.guard.MessageGuard`).
        curve_secret_key, curve_public_key: Z85 keys; enable CURVE encryption and authentication
            of the server.
        curve_clients: a folder of the client public-key certificates allowed to connect
            (``zmq.auth`` format). Without it, CURVE encrypts but lets any client key in.
        compression: agree to compress large array frames for clients that ask at HELLO (the codecs
            this Python can import); compressed frames inflate to at most ``max_message_bytes`` per
            message. ``False``: every frame travels raw, and compressed ones are refused.
        insecure: allow binding a non-loopback address without CURVE.
        watch_pid: stop when this process is gone (a local server outliving a killed client).
        validate: run the factory's start-up check (:func:`validate_factory`) before binding.
        freeze_gc: after each session opens or closes, ``gc.freeze()`` what is alive (the built
            simulator), so collections in the serving path only walk what requests allocate. It
            acts on the whole process: for a server that owns its process (``gym-remote serve``
            sets it), not for one embedded in an application.

    Raises:
        ConfigError: the factory's start-up check failed (nothing is bound then).
        ValueError: a non-loopback ``address`` without CURVE or ``insecure``, or an admission
            setting out of range (:class:`~gym_remote.config.ServerConfig` checks them).
    """

    def __init__(
        self,
        factory: SessionFactory,
        address: str = ServerConfig.address,
        *,
        max_sessions: int = ServerConfig.max_sessions,
        max_sessions_per_peer: int | None = ServerConfig.max_sessions_per_peer,
        session_limits: SessionLimits | None = None,
        idle_timeout: float | None = ServerConfig.idle_timeout,
        max_message_bytes: int = ServerConfig.max_message_bytes,
        compression: bool = ServerConfig.compression,
        limits: Limits = DEFAULT_LIMITS,
        curve_secret_key: bytes | None = None,
        curve_public_key: bytes | None = None,
        curve_clients: str | None = None,
        insecure: bool = False,
        backend: str = "custom",
        task: str | None = None,
        watch_pid: int | None = None,
        validate: bool = True,
        freeze_gc: bool = False,
    ) -> None:
        if not is_loopback_address(address) and curve_secret_key is None and not insecure:
            raise ValueError(
                f"refusing to bind {address}: it is reachable from other machines. Reach the server "
                "through an SSH tunnel (bind 127.0.0.1), give CURVE keys (--curve-secret), or pass "
                "--insecure if the network is trusted"
            )
        # ServerConfig checks the admission settings (0 idle seconds: never, as for serve's flag)
        admission = ServerConfig(
            address, max_sessions, max_sessions_per_peer, idle_timeout, max_message_bytes, compression
        )
        if validate:
            validate_factory(factory)
        # A compressed request may inflate to no more than an uncompressed one may weigh.
        limits = dataclasses.replace(
            limits, max_inflated_bytes=min(limits.max_inflated_bytes, admission.max_message_bytes)
        )
        codecs = available_codecs() if admission.compression else ()
        self._table = SessionTable(
            factory,
            backend=backend,
            task=task,
            max_sessions=admission.max_sessions,
            max_sessions_per_peer=admission.max_sessions_per_peer or max(1, admission.max_sessions // 2),
            session_limits=session_limits or SessionLimits(),
            idle_timeout=admission.idle_timeout,
            freeze_gc=freeze_gc,
            keys_are_peers=curve_secret_key is not None and bool(curve_clients),
            codecs=codecs,
            limits=limits,
        )
        self.address = admission.address
        self.limits = limits
        self.watch_pid = watch_pid
        self._ctx: zmq.Context = zmq.Context.instance()
        self._auth = None
        if curve_secret_key is not None:
            from zmq.auth import CURVE_ALLOW_ANY
            from zmq.auth.thread import ThreadAuthenticator

            self._auth = ThreadAuthenticator(self._ctx)  # must run before the socket binds
            self._auth.start()
            if curve_clients:
                self._auth.configure_curve(domain="*", location=str(curve_clients))
            else:
                log.warning("CURVE without --curve-clients: the link is encrypted, but any client key is accepted")
                self._auth.configure_curve(domain="*", location=CURVE_ALLOW_ANY)
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, admission.max_message_bytes)
        self._sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
        if "[" in address:  # an IPv6 literal (tcp://[::1]:PORT); IPv4 endpoints stay IPv4-only, as reported
            self._sock.setsockopt(zmq.IPV6, 1)
        if curve_secret_key is not None:
            if curve_public_key is None:
                curve_public_key = zmq.curve_public(curve_secret_key)
            self._sock.curve_secretkey = curve_secret_key
            self._sock.curve_publickey = curve_public_key
            self._sock.curve_server = True
        self._sock.bind(address)
        self.endpoint: str = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        # MAXMSGSIZE bounds each frame; the guard bounds the whole message before libzmq has buffered it.
        self._guard = MessageGuard(self._sock, admission.max_message_bytes, limits.max_frames)
        self._codec = Codec(limits)  # one packer and decoder for the serving loop
        self._codec.accept(codecs)
        self._handler = RequestHandler(self._table, self._codec)
        self._stop = threading.Event()
        self.requests_served = 0

    factory = _from_table("factory", "Builds a :class:`Session` for each HELLO.")
    backend = _from_table("backend", "The backend name HELLO replies carry.")
    task = _from_table("task", "The default task.")
    max_sessions = _from_table("max_sessions", "Open sessions past which a HELLO gets a 'server busy' error.")
    max_sessions_per_peer = _from_table("max_sessions_per_peer", "Sessions one peer may hold at once.")
    session_limits = _from_table("session_limits", "What one client may ask the server to build.")
    idle_timeout = _from_table("idle_timeout", "Seconds without a request before a session closes (``None``: never).")
    freeze_gc = _from_table("freeze_gc", "Whether ``gc.freeze()`` follows each session's opening and closing.")

    # ----------------------------------------------------------------------------- lifecycle

    def serve_forever(self, ready: IO[str] | None = sys.stdout, install_signals: bool = True) -> None:
        """Serve until stopped. Prints ``GYM_REMOTE READY <endpoint>`` once to ``ready``."""
        if install_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: self._stop.set())
        log.info("serving %s backend (task %s) on %s", self.backend, self.task, self.endpoint)
        if ready is not None:
            ready.write(f"{READY_PREFIX} {self.endpoint}\n")
            ready.flush()
        self._sock.setsockopt(zmq.RCVTIMEO, 200)  # wake up to notice stop() and idle sessions
        next_sweep = time.monotonic() + 1.0
        try:
            while not self._stop.is_set():
                self._serve_one()
                if time.monotonic() >= next_sweep:
                    self._table.expire_idle()
                    self._check_watched()
                    next_sweep = time.monotonic() + 1.0
        finally:
            self.close()

    def stop(self) -> None:
        """Ask :meth:`serve_forever` to return (thread-safe)."""
        self._stop.set()

    def close(self) -> None:
        """Close every session, the socket and the CURVE authenticator (:meth:`serve_forever` does on return)."""
        self._table.close_all()
        self._guard.close()
        if not self._sock.closed:
            self._sock.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        log.info("server on %s closed after %d requests", self.endpoint, self.requests_served)

    # ------------------------------------------------------------------------------ requests

    def _serve_one(self) -> None:
        sock = self._sock
        try:
            identity = sock.recv(0)
        except zmq.Again:
            return
        except zmq.ZMQError as exc:  # e.g. a peer dropped mid-message
            log.warning("receive failed: %s", exc)
            return
        frame: Any = None  # the request frame of a connection whose peer the table does not know yet
        # REQ clients send [identity, b"", header, arrays...]; anything else is still answered.
        payload: list[Any] = []
        envelope = [identity]
        if sock.get(_RCVMORE):
            if identity in self._table.peers:
                second = sock.recv(0)
            else:  # a frame, not bytes: its metadata (peer address, CURVE user) is read at HELLO
                frame = sock.recv(0, copy=False)
                second = frame.bytes
            if second == b"":
                envelope.append(b"")
            else:
                payload.append(second)
            payload.extend(recv_frames(sock) if sock.get(_RCVMORE) else [])
        reply, codec = self._handler.handle(payload, identity, frame)
        try:
            out = codec.pack_reply(reply)
        except ProtocolError as exc:  # the env returned something that cannot travel
            out = self._codec.pack_reply(self._handler.error_reply(reply.seq, ErrorCode.PROTOCOL, exc))
        self.requests_served += 1
        try:
            if len(out) == 1 and len(envelope) == 2:  # a REQ client, a reply without array frames
                sock.send(identity, _SNDMORE)
                sock.send(b"", _SNDMORE)
                sock.send(out[0], 0)
            else:
                send_frames(sock, out, prefix=envelope)
        except zmq.ZMQError as exc:
            log.warning("reply to %r failed: %s", identity, exc)

    def _check_watched(self) -> None:
        if self.watch_pid is None:
            return
        try:
            os.kill(self.watch_pid, 0)
        except ProcessLookupError:
            log.info("process %d that started this server is gone: stopping", self.watch_pid)
            self._stop.set()
        except PermissionError:  # alive, owned by someone else
            pass
