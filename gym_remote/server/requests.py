"""One request in, one reply out: decode, dispatch by kind to the session, and every failure as an
ERROR reply (a code, the exception type, a clipped message and the remote traceback).

:class:`RequestHandler` holds the server's :class:`~gym_remote.server.sessions.SessionTable` and its
codec; the serving loop hands it each request's frames and who sent them."""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

from gym_remote import __version__
from gym_remote.errors import (
    BadRequestError,
    RemoteEnvError,
    StateError,
    clip,
    error_code,
)
from gym_remote.protocol import (
    Codec,
    ErrorCode,
    ErrorInfo,
    Kind,
    Reply,
    Request,
)
from gym_remote.server.sessions import SessionTable
from gym_remote.session import Session

__all__ = ["LOG_CLIP", "REPLY_CLIP", "TRACEBACK_CLIP", "RequestHandler"]

log = logging.getLogger("gym_remote.server")

#: Characters of client-influenced text kept in a log line, an error reply's message, its traceback.
LOG_CLIP = 500
REPLY_CLIP = 4000
TRACEBACK_CLIP = 20000


class RequestHandler:
    """One decoded request to one reply for :class:`~gym_remote.server.EnvServer`, dispatched by kind
    to the sessions of ``table``; every failure becomes an ERROR reply.

    Args:
        table: the server's sessions.
        codec: the server's packer and decoder.
    """

    def __init__(self, table: SessionTable, codec: Codec) -> None:
        self.table = table
        self._codec = codec

    def handle(self, payload: list[Any], identity: bytes, frame: Any) -> tuple[Reply, Codec]:
        """The reply to one request, and the codec to pack it with.

        Args:
            payload: the request's frames (header, then array buffers).
            identity: the sender's routing id; ``frame``: its request frame, ``None`` when the
                table already knows the sender's peer (read at HELLO only).

        Returns:
            The reply, or an ERROR reply: nothing raises. The codec is the session's compressing
            one when its HELLO agreed to compression, else the server's.
        """
        seq = 0
        try:
            request = self._codec.unpack_request(payload)
            seq = request.seq
            body = self._dispatch(request, identity, frame)
            return Reply(seq, body), self.table.codecs.get(request.session, self._codec)
        except Exception as exc:  # every failure is a reply; the server keeps serving
            code = ErrorCode(error_code(exc))
            if code is ErrorCode.ENV:  # the env raised: its traceback is the useful part
                log.warning("env raised %s: %s", type(exc).__name__, clip(str(exc), LOG_CLIP))
                return self.error_reply(seq, code, exc, traceback.format_exc()), self._codec
            if code is ErrorCode.PROTOCOL:
                log.warning("malformed request: %s", clip(getattr(exc, "message", str(exc)), LOG_CLIP))
            cause = exc.__cause__ if code is ErrorCode.BAD_REQUEST else None  # an env that failed to build
            tb = "".join(traceback.format_exception(cause)) if cause is not None else ""
            return self.error_reply(seq, code, exc, tb), self._codec

    @staticmethod
    def error_reply(seq: int, code: ErrorCode, exc: BaseException, tb: str = "") -> Reply:
        """An ERROR reply to request ``seq``: ``code``, the exception's type, its message and ``tb``, clipped."""
        # Error texts may quote what a client sent (kwargs, actions): bounded, so a 1 MiB HELLO
        # does not come back as a multi-megabyte error or fill the log.
        message = exc.message if isinstance(exc, RemoteEnvError) else str(exc)
        info = ErrorInfo(code, type(exc).__name__, clip(message, REPLY_CLIP), clip(tb, TRACEBACK_CLIP))
        return Reply(seq, error=info)

    def _dispatch(self, req: Request, identity: bytes, frame: Any) -> Any:
        if req.kind is Kind.STEP:  # the hot path first
            return self._step(self.table.get(req.session).session, req.body)
        if req.kind is Kind.PING:
            return {"time": time.time(), "sessions": len(self.table), "version": __version__}
        if req.kind is Kind.HELLO:
            return self.table.hello(req.body, identity, frame)
        if req.kind is Kind.CLOSE:
            if req.session is not None:
                self.table.close(req.session)
            elif isinstance(req.body, dict) and req.body.get("hello_id"):  # a client gave up its HELLO
                self.table.abandon_hello(str(req.body["hello_id"]))
            return None
        slot = self.table.get(req.session)
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
