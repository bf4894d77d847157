"""The sessions one server holds: opened at HELLO within the server's and each peer's limits, found by
id on every request, closed on CLOSE, on idle timeout or with the server.

A HELLO carries a client-chosen ``hello_id``, the same in each retry: a HELLO whose id an open
session was built for gets that session (a retry after the client's timeout, while the env was
being built, builds nothing). A CLOSE of a ``hello_id`` (a client that gave up waiting) closes the
session built for it and remembers the id (the last :data:`ABANDONED_HELLOS`), so that a retry of
it still queued behind the build is refused rather than built.

A HELLO may ask for compression (``compression``: codec names in the client's order of preference,
``compress_above``: a threshold in bytes); the table agrees to the first codec it offers, and the
session's replies are then packed by a codec of its own that compresses frames past the threshold
(:attr:`SessionTable.codecs`). The reply says what was agreed (``compression``: a name or ``None``).
"""

from __future__ import annotations

import gc
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from gym_remote import __version__
from gym_remote.errors import (
    BadRequestError,
    RemoteEnvError,
    ServerBusyError,
    SessionLostError,
    VersionMismatchError,
    clip,
)
from gym_remote.protocol import (
    DEFAULT_LIMITS,
    PROTOCOL_VERSION,
    Codec,
    Limits,
)
from gym_remote.server.startup import SessionFactory
from gym_remote.session import Session, SessionLimits, SessionOptions

__all__ = ["ABANDONED_HELLOS", "SessionTable"]

log = logging.getLogger("gym_remote.server")

#: ``hello_id``\ s of abandoned HELLOs a server remembers (the oldest are forgotten first).
ABANDONED_HELLOS = 4096

#: What Python raises for bad arguments: when building a client's env raises one, the client's
#: options are the likely cause, and the reply is ``bad_request`` rather than ``env``.
_ARGUMENT_ERRORS: tuple[type[BaseException], ...] = (TypeError, ValueError, LookupError, AssertionError)


def _freeze_gc(reclaim: bool = False) -> None:
    """Move every object alive now out of the garbage collector's sight (``gc.freeze``).

    A built simulator is a large, long-lived object graph; left in the collected generations, each
    full collection walks all of it in the middle of some step: the serving path's tail. Frozen
    after each HELLO, collections only see what requests allocate. ``reclaim`` (a session closed)
    unfreezes and collects first, so a closed session's cycles are freed rather than kept frozen.

    Process-wide: only a server that owns its process asks for it (``EnvServer(freeze_gc=True)``,
    as ``gym-remote serve`` does); an ``EnvServer`` embedded in a user's process leaves the
    collector alone.
    """
    if reclaim:
        gc.unfreeze()
    gc.collect()
    gc.freeze()


@dataclass
class _OpenSession:
    """A session the server holds: what HELLO asked for, for which retry id and peer, when last used."""

    session: Session
    options: SessionOptions
    hello_id: str
    peer: str = ""
    last_used: float = field(default_factory=time.monotonic)
    #: The compression codec and threshold HELLO agreed to, or ``None``.
    compression: tuple[str, int] | None = None


class SessionTable:
    """The sessions one :class:`~gym_remote.server.EnvServer` holds, and who holds them.

    HELLO (version, per-server and per-peer limits, the factory's build), who the peer is, lookup by
    id, close and idle expiry. The server holds one table and hands it to its request handler.

    Args:
        factory: builds a :class:`Session` for each HELLO.
        backend: the backend name HELLO replies carry.
        task: the server's default task (named when a build fails).
        max_sessions: HELLOs past this many open sessions get a "server busy" error.
        max_sessions_per_peer: sessions one peer may hold at once.
        session_limits: what one client may ask the server to build.
        idle_timeout: seconds without a request after which :meth:`expire_idle` closes a session
            (``None``: never).
        freeze_gc: ``gc.freeze()`` after each session opens or closes (see :func:`_freeze_gc`).
        keys_are_peers: a peer is its CURVE client key (keys admitted one by one), not its address.
        codecs: the compression codecs offered to clients that ask, in the server's order (``()``: none).
        limits: the wire limits the sessions' compressing codecs are built with.
    """

    def __init__(
        self,
        factory: SessionFactory,
        *,
        backend: str,
        task: str | None,
        max_sessions: int,
        max_sessions_per_peer: int,
        session_limits: SessionLimits,
        idle_timeout: float | None,
        freeze_gc: bool,
        keys_are_peers: bool,
        codecs: tuple[str, ...] = (),
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.factory = factory
        self.backend = backend
        self.task = task
        self.max_sessions = max_sessions
        self.max_sessions_per_peer = max_sessions_per_peer
        self.session_limits = session_limits
        self.idle_timeout = idle_timeout
        self.freeze_gc = freeze_gc
        self._keys_are_peers = keys_are_peers
        self.offered = codecs
        self.limits = limits
        #: The packer of each session whose HELLO agreed to compression, by session id.
        self.codecs: dict[str | None, Codec] = {}
        #: The peer of each connection by its routing id. Its peer is read from a request's frame
        #: metadata (Peer-Address, CURVE User-Id) once: ROUTER-assigned routing ids (a zero byte, then
        #: a counter) are never reused by a socket, so they map to one peer; a known id's requests may
        #: arrive as plain bytes (see :meth:`peer`).
        self.peers: dict[bytes, str] = {}
        self._sessions: dict[str, _OpenSession] = {}
        self._abandoned: dict[str, None] = {}  # hello_ids their clients gave up, the oldest first

    def __len__(self) -> int:
        return len(self._sessions)

    def hello(self, body: Any, identity: bytes, frame: Any) -> dict[str, Any]:
        """Open a session for a HELLO (or give a retried HELLO the session it already made).

        Args:
            body: the HELLO body (``protocol``, ``hello_id``, what to build).
            identity: the requesting connection's routing id; ``frame``: its request frame
                (``None`` when the connection's peer is known), for :meth:`peer`.

        Returns:
            The HELLO reply: the session id, versions, backend and the session's description.

        Raises:
            BadRequestError, VersionMismatchError, ServerBusyError: the HELLO is refused.
        """
        if not isinstance(body, dict):
            raise BadRequestError("hello body must be a map")
        version = body.get("protocol")
        if version != PROTOCOL_VERSION:
            raise VersionMismatchError(
                f"protocol version mismatch: client speaks {version!r}, server speaks {PROTOCOL_VERSION} "
                f"(server gym-remote {__version__}); install the same gym-remote version on both ends"
            )
        hello_id = str(body.get("hello_id", ""))
        for sid, slot in self._sessions.items():  # a retried HELLO gets the session it already made
            if hello_id and slot.hello_id == hello_id:
                slot.last_used = time.monotonic()
                return self._describe(sid, slot)
        if hello_id and hello_id[:128] in self._abandoned:
            raise BadRequestError(
                "this HELLO was given up by its client (it sent CLOSE for it after its timeout): nothing is built "
                "for it; a new env sends a new HELLO"
            )
        if len(self._sessions) >= self.max_sessions:
            raise ServerBusyError(
                f"server busy: it already hosts {len(self._sessions)} sessions (max_sessions={self.max_sessions}; "
                "serve --max-sessions raises it)"
            )
        peer = self.peer(identity, frame)
        held = sum(1 for s in self._sessions.values() if s.peer == peer)
        if held >= self.max_sessions_per_peer:
            raise ServerBusyError(
                f"server busy for {peer}: it already holds {held} sessions here "
                f"(max_sessions_per_peer={self.max_sessions_per_peer}; serve --max-sessions-per-peer raises it); "
                "close the envs it no longer uses (abandoned sessions close after the server's --idle-timeout)"
            )
        options = SessionOptions.from_hello(body, self.session_limits)
        compression = self._agree(body)
        session = self._build(options)
        sid = secrets.token_hex(8)
        self._sessions[sid] = slot = _OpenSession(session, options, hello_id, peer, compression=compression)
        if compression is not None:
            codec = self.codecs[sid] = Codec(self.limits)
            codec.compress(*compression)
        if self.freeze_gc:
            _freeze_gc()
        log.info(
            "session %s opened by %s from %s: task=%s num_envs=%s",
            sid,
            clip(str(body.get("client")), 200),
            peer,
            options.task,
            options.num_envs,
        )
        return self._describe(sid, slot)

    def _agree(self, body: dict[str, Any]) -> tuple[str, int] | None:
        """The codec and threshold to compress this HELLO's session with: the first it asks for that
        this server offers, or ``None``.

        Raises:
            BadRequestError: ``compression`` is no list of names, or ``compress_above`` no int >= 0.
        """
        asked = body.get("compression")
        if asked is None:
            return None
        if not isinstance(asked, list) or len(asked) > 8 or not all(isinstance(n, str) for n in asked):
            raise BadRequestError(f"compression must be a list of at most 8 codec names, got {clip(repr(asked), 100)}")
        above = body.get("compress_above", 0)
        if type(above) is not int or above < 0:
            raise BadRequestError(f"compress_above must be an int >= 0, got {clip(repr(above), 100)}")
        codec = next((name for name in asked if name in self.offered), None)
        if codec is None:
            return None
        return codec, max(above, self.limits.inline_threshold)

    def _build(self, options: SessionOptions) -> Session:
        """The factory's session for ``options``; a build that fails on what the client chose is its mistake.

        Raises:
            BadRequestError: the backend refused the request, or building the env raised the
                exceptions Python uses for bad arguments (TypeError, ValueError, KeyError,
                IndexError, AssertionError; OSError when the client sent keywords: a file it named).
            Exception: anything else the simulator raised (an ``env`` error: the server's side).
        """
        mistakes: tuple[type[BaseException], ...] = _ARGUMENT_ERRORS + ((OSError,) if options.task_kwargs else ())
        try:
            return self.factory(options)
        except RemoteEnvError:
            raise
        except mistakes as exc:
            raise BadRequestError(
                f"building {clip(repr(options.task or self.task), 200)} with this client's options (task_kwargs "
                f"{clip(repr(options.task_kwargs), 300)}, num_envs={options.num_envs}, render_mode="
                f"{clip(repr(options.render_mode), 50)}, max_episode_steps={options.max_episode_steps}) failed: "
                f"{type(exc).__name__}: {clip(str(exc), 600)}"
            ) from exc

    def peer(self, identity: bytes, frame: Any) -> str:
        """Who sent a request: its CURVE key when keys are admitted one by one (a key is then a
        client), else its IP address (``Peer-Address`` of ``frame``); remembered by ``identity``."""
        peer = self.peers.get(identity)
        if peer is None:
            peer = self._peer_of(frame)
            if identity[:1] == b"\x00":  # assigned by this socket: never another connection's
                if len(self.peers) >= 65536:
                    self.peers.clear()
                self.peers[identity] = peer
        return peer

    def _peer_of(self, frame: Any) -> str:
        if frame is None:
            return "unknown"
        if self._keys_are_peers:
            try:
                return f"client key {frame.get('User-Id')}"
            except zmq.ZMQError:
                pass
        try:
            return str(frame.get("Peer-Address"))
        except zmq.ZMQError:  # ipc:// and inproc:// carry no address: one local peer
            return "local"

    def _describe(self, sid: str, slot: _OpenSession) -> dict[str, Any]:
        s = slot.session
        compression, above = slot.compression or (None, None)
        return {
            "session": sid,
            "server_version": __version__,
            "protocol": PROTOCOL_VERSION,
            "backend": self.backend,
            "compression": compression,
            "compress_above": above,
            **s.describe(),
        }

    def get(self, sid: str | None) -> _OpenSession:
        """The open session ``sid``, marked used now.

        Raises:
            SessionLostError: no such session (the server restarted, or closed it).
        """
        slot = self._sessions.get(sid) if sid is not None else None
        if slot is None:
            raise SessionLostError(
                f"unknown session {sid!r}: the server restarted or closed it (idle timeout); reset() opens a new one"
            )
        slot.last_used = time.monotonic()
        return slot

    def close(self, sid: str) -> None:
        """Close session ``sid`` (nothing if it is not open); a failing close is logged, not raised."""
        slot = self._sessions.pop(sid, None)
        self.codecs.pop(sid, None)
        if slot is None:
            return
        try:
            slot.session.close()
        except Exception:  # a failing close must not take the server down
            log.exception("closing session %s failed", sid)
        del slot
        if self.freeze_gc:
            _freeze_gc(reclaim=True)
        log.info("session %s closed", sid)

    def close_all(self) -> None:
        """Close every session (the server is closing)."""
        for sid in list(self._sessions):
            self.close(sid)

    def abandon_hello(self, hello_id: str) -> None:
        """A client gave up HELLO ``hello_id``: close the session built for it; refuse its later retries."""
        for sid, slot in list(self._sessions.items()):
            if slot.hello_id == hello_id:
                log.info("session %s closed: its client gave up waiting for the HELLO reply", sid)
                self.close(sid)
        self._abandoned[hello_id[:128]] = None
        while len(self._abandoned) > ABANDONED_HELLOS:
            del self._abandoned[next(iter(self._abandoned))]

    def expire_idle(self) -> None:
        """Close the sessions idle for longer than :attr:`idle_timeout`."""
        if self.idle_timeout is None:
            return
        now = time.monotonic()
        for sid, slot in list(self._sessions.items()):
            if now - slot.last_used > self.idle_timeout:
                log.info("session %s idle for %.0f s: closing it", sid, now - slot.last_used)
                self.close(sid)
