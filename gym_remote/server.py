"""The env server: a ZeroMQ ROUTER socket that hosts one env (or batch of envs) per client session.

One thread serves every session in turn: simulators are rarely thread-safe, and a GPU simulator is
one batched env anyway. Every failure inside a request becomes an ERROR reply carrying the remote
traceback; the server itself only stops on SIGINT/SIGTERM or :meth:`EnvServer.stop`.
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import os
import secrets
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import urlsplit

import zmq

from gym_remote import __version__
from gym_remote.errors import (
    BadRequestError,
    ProtocolError,
    RemoteEnvError,
    ServerBusyError,
    SessionLostError,
    StateError,
    VersionMismatchError,
    clip,
)
from gym_remote.protocol import (
    DEFAULT_LIMITS,
    PROTOCOL_VERSION,
    READY_PREFIX,
    Codec,
    ErrorCode,
    ErrorInfo,
    Kind,
    Limits,
    Reply,
    Request,
    recv_frames,
    send_frames,
)
from gym_remote.session import Session, SessionLimits, SessionOptions

log = logging.getLogger(__name__)

#: Characters of client-influenced text kept in a log line, an error reply's message, its traceback.
LOG_CLIP = 500
REPLY_CLIP = 4000
TRACEBACK_CLIP = 20000

_RCVMORE = int(zmq.RCVMORE)

#: What Python raises for bad arguments: when building a client's env raises one, the client's
#: options are the likely cause, and the reply is ``bad_request`` rather than ``env``.
_ARGUMENT_ERRORS: tuple[type[BaseException], ...] = (TypeError, ValueError, LookupError, AssertionError)
_SNDMORE = int(zmq.SNDMORE)


#: Builds the env(s) of one session from what the client asked for at HELLO. A factory may also
#: have a ``validate()`` method: see :func:`validate_factory`.
SessionFactory = Callable[[SessionOptions], Session]


def validate_factory(factory: SessionFactory) -> None:
    """Run the factory's start-up check, ``factory.validate()``, when it has one.

    This is the backend-facing hook that lets ``gym-remote serve`` refuse, before it prints READY,
    a task it was told to serve but cannot (an unknown id, a misspelled keyword): each backend
    checks what it can without a client (the ``gymnasium`` and ``python`` backends build one env).
    A factory without ``validate`` is not checked, so plain callables keep working.

    Raises:
        ConfigError: (a ``ValueError``) raised by the backend, saying what is wrong and what to do.
    """
    check = getattr(factory, "validate", None)
    if callable(check):
        check()


def is_loopback_address(address: str) -> bool:
    """True for ``ipc://``/``inproc://`` and TCP endpoints on 127.0.0.0/8, ::1 or localhost."""
    scheme = address.split("://", 1)[0]
    if scheme in ("ipc", "inproc"):
        return True
    host = urlsplit(address).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', an interface name or a DNS name: may be reachable from outside


def _freeze_gc(reclaim: bool = False) -> None:
    """Move every object alive now out of the garbage collector's sight (``gc.freeze``).

    A built simulator is a large, long-lived object graph; left in the collected generations, each
    full collection walks all of it in the middle of some step: the serving path's tail. Frozen
    after each HELLO, collections only see what requests allocate. ``reclaim`` (a session closed)
    unfreezes and collects first, so a closed session's cycles are freed rather than kept frozen.
    """
    if reclaim:
        gc.unfreeze()
    gc.collect()
    gc.freeze()


@dataclass
class _SessionSlot:
    session: Session
    options: SessionOptions
    hello_id: str
    peer: str = ""
    last_used: float = field(default_factory=time.monotonic)


class EnvServer:
    """Serve envs built by ``factory`` to REQ clients over ZeroMQ.

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
        idle_timeout: seconds without a request after which a session is closed (``None``: never).
        max_message_bytes: larger incoming messages are dropped by libzmq (ZMQ_MAXMSGSIZE).
        curve_secret_key, curve_public_key: Z85 keys; enable CURVE encryption and authentication
            of the server.
        curve_clients: a folder of the client public-key certificates allowed to connect
            (``zmq.auth`` format). Without it, CURVE encrypts but lets any client key in.
        insecure: allow binding a non-loopback address without CURVE.
        watch_pid: stop when this process is gone (a local server outliving a killed client).
        validate: run the factory's start-up check (:func:`validate_factory`) before binding.

    Raises:
        ConfigError: the factory's start-up check failed (nothing is bound then).
        ValueError: a non-loopback ``address`` without CURVE or ``insecure``.
    """

    def __init__(
        self,
        factory: SessionFactory,
        address: str = "tcp://127.0.0.1:5555",
        *,
        max_sessions: int = 16,
        max_sessions_per_peer: int | None = None,
        session_limits: SessionLimits | None = None,
        idle_timeout: float | None = 600.0,
        max_message_bytes: int = 1 << 30,
        limits: Limits = DEFAULT_LIMITS,
        curve_secret_key: bytes | None = None,
        curve_public_key: bytes | None = None,
        curve_clients: str | None = None,
        insecure: bool = False,
        backend: str = "custom",
        task: str | None = None,
        watch_pid: int | None = None,
        validate: bool = True,
    ) -> None:
        if not is_loopback_address(address) and curve_secret_key is None and not insecure:
            raise ValueError(
                f"refusing to bind {address}: it is reachable from other machines. Reach the server "
                "through an SSH tunnel (bind 127.0.0.1), give CURVE keys (--curve-secret), or pass "
                "--insecure if the network is trusted"
            )
        if validate:
            validate_factory(factory)
        self.factory = factory
        self.address = address
        self.max_sessions = max_sessions
        if max_sessions_per_peer is None:
            max_sessions_per_peer = max(1, max_sessions // 2)
        self.max_sessions_per_peer = max_sessions_per_peer
        self.session_limits = session_limits or SessionLimits()
        self._keys_are_peers = curve_secret_key is not None and bool(curve_clients)
        # The peer of a connection is read from a request's frame metadata (Peer-Address, CURVE
        # User-Id) once: ROUTER-assigned routing ids (a zero byte, then a counter) are never reused
        # by this socket, so they map to one peer; a known id's requests arrive as plain bytes.
        self._frame: Any = None  # the latest unknown connection's request frame, read at HELLO
        self._identity = b""
        self._peers: dict[bytes, str] = {}
        self.idle_timeout = idle_timeout
        self.limits = limits
        self.backend = backend
        self.task = task
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
        self._sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
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
        self._sessions: dict[str, _SessionSlot] = {}
        self._codec = Codec(limits)  # one packer and decoder for the serving loop
        self._stop = threading.Event()
        self.requests_served = 0

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
                    self._expire_idle()
                    self._check_watched()
                    next_sweep = time.monotonic() + 1.0
        finally:
            self.close()

    def stop(self) -> None:
        """Ask :meth:`serve_forever` to return (thread-safe)."""
        self._stop.set()

    def close(self) -> None:
        for sid in list(self._sessions):
            self._close_session(sid)
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
        self._identity, self._frame = identity, None
        # REQ clients send [identity, b"", header, arrays...]; anything else is still answered.
        payload: list[Any] = []
        envelope = [identity]
        if sock.get(_RCVMORE):
            if identity in self._peers:
                second = sock.recv(0)
            else:  # a frame, not bytes: its metadata (peer address, CURVE user) is read at HELLO
                self._frame = frame = sock.recv(0, copy=False)
                second = frame.bytes
            if second == b"":
                envelope.append(b"")
            else:
                payload.append(second)
            payload.extend(recv_frames(sock) if sock.get(_RCVMORE) else [])
        reply = self._handle(payload)
        try:
            out = self._codec.pack_reply(reply)
        except ProtocolError as exc:  # the env returned something that cannot travel
            out = self._codec.pack_reply(self._error_reply(reply.seq, ErrorCode.PROTOCOL, exc))
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

    def _handle(self, payload: list[Any]) -> Reply:
        seq = 0
        try:
            request = self._codec.unpack_request(payload)
            seq = request.seq
            body = self._dispatch(request)
            return Reply(seq, body)
        except ProtocolError as exc:
            log.warning("malformed request: %s", clip(exc.message, LOG_CLIP))
            return self._error_reply(seq, ErrorCode.PROTOCOL, exc)
        except SessionLostError as exc:
            return self._error_reply(seq, ErrorCode.SESSION_LOST, exc)
        except ServerBusyError as exc:
            return self._error_reply(seq, ErrorCode.BUSY, exc)
        except VersionMismatchError as exc:
            return self._error_reply(seq, ErrorCode.VERSION, exc)
        except (BadRequestError, RemoteEnvError) as exc:
            cause = exc.__cause__  # a client's env that failed to build: its traceback helps
            tb = "".join(traceback.format_exception(cause)) if cause is not None else ""
            return self._error_reply(seq, ErrorCode.BAD_REQUEST, exc, tb)
        except Exception as exc:  # the env raised: report it, keep serving
            log.warning("env raised %s: %s", type(exc).__name__, clip(str(exc), LOG_CLIP))
            return self._error_reply(seq, ErrorCode.ENV, exc, traceback.format_exc())

    @staticmethod
    def _error_reply(seq: int, code: ErrorCode, exc: BaseException, tb: str = "") -> Reply:
        # Error texts may quote what a client sent (kwargs, actions): bounded, so a 1 MiB HELLO
        # does not come back as a multi-megabyte error or fill the log.
        message = exc.message if isinstance(exc, RemoteEnvError) else str(exc)
        info = ErrorInfo(code, type(exc).__name__, clip(message, REPLY_CLIP), clip(tb, TRACEBACK_CLIP))
        return Reply(seq, error=info)

    def _dispatch(self, req: Request) -> Any:
        if req.kind is Kind.STEP:  # the hot path first
            return self._step(self._slot(req.session).session, req.body)
        if req.kind is Kind.PING:
            return {"time": time.time(), "sessions": len(self._sessions), "version": __version__}
        if req.kind is Kind.HELLO:
            return self._hello(req.body)
        if req.kind is Kind.CLOSE:
            if req.session is not None:
                self._close_session(req.session)
            return None
        slot = self._slot(req.session)
        body = req.body if isinstance(req.body, dict) else {}
        session = slot.session
        if body.get("with_state") and not session.has_state:  # refused before the env acts, not after
            raise StateError(f"this env ({session.task}) does not expose its state: ask without with_state")
        if req.kind is Kind.RESET:
            seed, options = session.check_reset(body.get("seed"), body.get("options"))
            obs, info = session.reset(seed=seed, options=options)
            out: dict[str, Any] = {"obs": obs, "info": info}
        elif req.kind is Kind.GET_STATE:
            return {"state": session.get_state()}
        elif req.kind is Kind.SET_STATE:
            if "state" not in body:
                raise BadRequestError("set_state request lacks a state")
            try:
                return session.set_state(body["state"])  # None, or what the simulator could not restore
            except RemoteEnvError:
                raise
            except (TypeError, ValueError) as exc:  # a state that is no array of numbers, or of the wrong size
                raise BadRequestError(f"set_state: {type(exc).__name__}: {clip(str(exc), LOG_CLIP)}") from exc
        elif req.kind is Kind.RENDER:
            return {"frame": session.render()}
        elif req.kind is Kind.CALL:
            name = body.get("name")
            if not isinstance(name, str):
                raise BadRequestError("call request lacks a name")
            return {"value": session.call(name, body.get("args") or [], body.get("kwargs") or {})}
        else:  # pragma: no cover - every Kind is handled above
            raise BadRequestError(f"unhandled request kind {req.kind}")
        if body.get("with_state"):
            out["state"] = session.get_state()
        return out

    @staticmethod
    def _step(session: Session, body: Any) -> dict[str, Any]:
        if type(body) is not dict or "action" not in body:
            raise BadRequestError("step request lacks an action")
        try:
            action = session.check_action(body["action"])
        except ValueError as exc:
            raise BadRequestError(str(exc)) from exc
        obs, reward, terminated, truncated, info = session.step(action)
        out = {"obs": obs, "reward": reward, "terminated": terminated, "truncated": truncated, "info": info}
        if body.get("with_state"):
            out["state"] = session.get_state()
        return out

    # ------------------------------------------------------------------------------ sessions

    def _hello(self, body: Any) -> dict[str, Any]:
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
        if len(self._sessions) >= self.max_sessions:
            raise ServerBusyError(
                f"server busy: it already hosts {len(self._sessions)} sessions (max_sessions={self.max_sessions}; "
                "serve --max-sessions raises it)"
            )
        peer = self._peer()
        held = sum(1 for s in self._sessions.values() if s.peer == peer)
        if held >= self.max_sessions_per_peer:
            raise ServerBusyError(
                f"server busy for {peer}: it already holds {held} sessions here "
                f"(max_sessions_per_peer={self.max_sessions_per_peer}; serve --max-sessions-per-peer raises it); "
                "close the envs it no longer uses (abandoned sessions close after the server's --idle-timeout)"
            )
        options = SessionOptions.from_hello(body, self.session_limits)
        session = self._build(options)
        sid = secrets.token_hex(8)
        self._sessions[sid] = slot = _SessionSlot(session, options, hello_id, peer)
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

    def _peer(self) -> str:
        """Who sent the request being served: its CURVE key when keys are admitted one by one (a
        key is then a client), else its IP address (``Peer-Address``)."""
        peer = self._peers.get(self._identity)
        if peer is None:
            peer = self._peer_of(self._frame)
            if self._identity[:1] == b"\x00":  # assigned by this socket: never another connection's
                if len(self._peers) >= 65536:
                    self._peers.clear()
                self._peers[self._identity] = peer
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

    def _describe(self, sid: str, slot: _SessionSlot) -> dict[str, Any]:
        s = slot.session
        return {
            "session": sid,
            "server_version": __version__,
            "protocol": PROTOCOL_VERSION,
            "backend": self.backend,
            **s.describe(),
        }

    def _slot(self, sid: str | None) -> _SessionSlot:
        slot = self._sessions.get(sid) if sid is not None else None
        if slot is None:
            raise SessionLostError(
                f"unknown session {sid!r}: the server restarted or closed it (idle timeout); reset() opens a new one"
            )
        slot.last_used = time.monotonic()
        return slot

    def _close_session(self, sid: str) -> None:
        slot = self._sessions.pop(sid, None)
        if slot is None:
            return
        try:
            slot.session.close()
        except Exception:  # a failing close must not take the server down
            log.exception("closing session %s failed", sid)
        del slot
        _freeze_gc(reclaim=True)
        log.info("session %s closed", sid)

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

    def _expire_idle(self) -> None:
        if self.idle_timeout is None:
            return
        now = time.monotonic()
        for sid, slot in list(self._sessions.items()):
            if now - slot.last_used > self.idle_timeout:
                log.info("session %s idle for %.0f s: closing it", sid, now - slot.last_used)
                self._close_session(sid)
