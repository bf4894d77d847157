"""One exception hierarchy for everything that can go wrong talking to a remote env.

Every error carries where it happened (host, port), what was being asked (request) and, when the
server raised, the remote traceback text, so a failure on a GPU box is debuggable from the laptop.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RemoteEnvError(RuntimeError):
    """Base class of every gym-remote error."""

    def __init__(
        self,
        message: str,
        *,
        host: str | None = None,
        port: int | None = None,
        request: str | None = None,
        remote_type: str | None = None,
        remote_traceback: str | None = None,
        log_tail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.host = host
        self.port = port
        self.request = request
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback
        self.log_tail = log_tail

    def __str__(self) -> str:
        where = []
        if self.host is not None:
            where.append(f"{self.host}:{self.port}" if self.port is not None else self.host)
        if self.request is not None:
            where.append(f"request {self.request}")
        text = f"{self.message} [{', '.join(where)}]" if where else self.message
        if self.remote_type:
            text += f"\nremote exception: {self.remote_type}"
        if self.remote_traceback:
            text += f"\n--- remote traceback ---\n{self.remote_traceback.rstrip()}"
        if self.log_tail:
            text += f"\n--- remote log (tail) ---\n{self.log_tail.rstrip()}"
        return text


class ProtocolError(RemoteEnvError):
    """A message that does not follow the wire format (bad bytes, forbidden types, limits)."""


class RemoteTimeoutError(RemoteEnvError, TimeoutError):
    """The server did not answer within the timeout; the socket has been reset."""


class ConnectError(RemoteEnvError, ConnectionError):
    """No TCP connection to the server could be opened (refused, unreachable, or an unknown host name).

    Raised within about ``probe_timeout`` seconds (2 s by default), before any request is sent, so a
    wrong port fails at once instead of after the long HELLO timeout. The message says what to check.
    """


class SessionLostError(RemoteEnvError):
    """The server no longer knows our session (it restarted or expired it); reset() opens a new one."""


class ServerError(RemoteEnvError):
    """The server answered a request with an error (the env raised, bad action, busy...)."""


class BadRequestError(ServerError, ValueError):
    """A well-formed request that does not fit the env (wrong action shape or dtype, bad option)."""


class ServerBusyError(ServerError):
    """The server already hosts its maximum number of sessions."""


class VersionMismatchError(ServerError):
    """Client and server speak different protocol versions."""


class ConfigError(RemoteEnvError, ValueError):
    """What a server was told to serve cannot be served (unknown task id, wrong keyword, bad entry point).

    Raised at start-up, before the server reports READY, by the backend's ``validate()`` step.
    """


class LaunchError(RemoteEnvError):
    """Starting, tunnelling to or stopping a server failed."""


class SpaceError(RemoteEnvError, ValueError):
    """A Gymnasium space that cannot be described on the wire."""


class StateError(RemoteEnvError, ValueError):
    """A state that does not match its schema, or names that match nothing."""


#: The one table between the wire's error codes (``protocol.ErrorCode`` values) and exceptions: a
#: client raises the class of a reply's code; a server replies with the code of the first class its
#: exception is an instance of (see :func:`error_code`).
ERROR_CLASSES: dict[str, type[RemoteEnvError]] = {
    "protocol": ProtocolError,
    "session_lost": SessionLostError,
    "busy": ServerBusyError,
    "version": VersionMismatchError,
    "bad_request": BadRequestError,
    "env": ServerError,
}


def error_code(exc: BaseException) -> str:
    """The wire code a server answers ``exc`` with.

    The first of :data:`ERROR_CLASSES` (before ``"env"``) that ``exc`` is an instance of; any other
    :class:`RemoteEnvError` (a ``StateError``, a ``ConfigError``...) is the client's mistake,
    ``"bad_request"``; every other exception is the env's own, ``"env"``.
    """
    for code, cls in ERROR_CLASSES.items():
        if code != "env" and isinstance(exc, cls):
            return code
    return "bad_request" if isinstance(exc, RemoteEnvError) else "env"


def restated(error: RemoteEnvError, message: str) -> RemoteEnvError:
    """A new error of ``error``'s class saying ``message``, with its host, port, request, remote type,
    remote traceback and log tail: raise it ``from error``, so a raised exception is never edited.

    Args:
        error: the error to restate (its class must take :class:`RemoteEnvError`'s arguments, as
            every class here does).
        message: the new message, usually the old one with what the caller knows added (which
            server of several failed).

    Returns:
        The new error, not raised.
    """
    return type(error)(
        message,
        host=error.host,
        port=error.port,
        request=error.request,
        remote_type=error.remote_type,
        remote_traceback=error.remote_traceback,
        log_tail=error.log_tail,
    )


def did_you_mean(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """``" Did you mean 'a' or 'b'?"`` for the close matches of ``name`` (difflib), else ``""``."""
    matches = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.6)
    if not matches:
        return ""
    return " Did you mean " + " or ".join(repr(m) for m in matches) + "?"


def clip(text: str, limit: int = 2000) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut (for logs and error replies)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"
