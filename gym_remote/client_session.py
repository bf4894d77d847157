"""The client side of one session: HELLO, the session id, and a new HELLO after the server forgot it.

``RemoteEnv`` holds one :class:`ClientSession`; ``RemoteVectorEnv`` holds one per server (shard).
Recovery is written here once: a request answered with ``session_lost`` (the server restarted, or
expired the session after ``--idle-timeout``) marks the session lost and raises
:class:`~gym_remote.errors.SessionLostError`; :meth:`ClientSession.open` (called by the envs'
``reset``) then opens a new one with the same HELLO and checks that the server still serves the same
spaces. A step is never re-sent: the caller decides what a lost step means.

A HELLO retried is the same HELLO: every attempt of one :meth:`ClientSession.open` carries one
``hello_id``, so a server still building the first attempt's env answers the retry with that
session instead of building another. A client that gives up (``RemoteTimeoutError`` on the last
attempt) sends a best-effort CLOSE for that ``hello_id`` on a fresh socket: the server closes the
session it built for it, or, if it has not built it yet, refuses that HELLO when it comes to it.

:class:`ConnectOptions` is the one record of how to reach a server (timeouts, retries, CURVE keys),
shared by every client class; the HELLO body (what the session asks for) travels as a plain map.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from gym_remote import __version__
from gym_remote.client import PROBE_TIMEOUT, Connection
from gym_remote.errors import RemoteEnvError, RemoteTimeoutError, SessionLostError
from gym_remote.protocol import PROTOCOL_VERSION, Kind
from gym_remote.protocol.compression import DEFAULT_COMPRESS_ABOVE
from gym_remote.spaces import space_from_dict

log = logging.getLogger(__name__)

__all__ = ["ClientSession", "ConnectOptions", "ServerHandle", "hello_body"]


@runtime_checkable
class ServerHandle(Protocol):
    """A server this process started, as its client sees it: all a client knows of a launcher.

    :class:`~gym_remote.local.LocalServer` (a subprocess here), the SSH launcher's
    :class:`~gym_remote.launch.handle.SshServerHandle` and the Ray pool's
    :class:`~gym_remote.launch.ray_pool.RayServerHandle` all are one. A client given one
    (``RemoteEnv(server=...)``, ``RemoteVectorEnv(servers=...)``) connects to it and stops it on close.

    Attributes:
        local_host, local_port: where to connect (a tunnel's local end, or the server itself).
        endpoint: ``tcp://local_host:local_port``.
    """

    local_host: str
    local_port: int

    @property
    def endpoint(self) -> str: ...

    def log_tail(self, n: int = 40, /) -> str:
        """The last ``n`` lines of the server's log, for error messages; never raises."""
        ...

    def close(self) -> None:
        """Stop the server and release what reaches it (tunnel, SSH, actor). Idempotent."""
        ...


@dataclass(frozen=True)
class ConnectOptions:
    """How a client reaches a server: the one record every client class takes as ``options``.

    ``gym.make`` and ``gym.make_vec`` take these fields as keywords too and fold them into this
    record (:mod:`gym_remote.entry`).

    Raises:
        TypeError, ValueError: a field of the wrong type or value (named, with what it takes).

    Example:
        >>> from gym_remote import ConnectOptions
        >>> ConnectOptions(timeout=5.0, retries=0).connect_timeout
        120.0
        >>> ConnectOptions(timeout=-1)
        Traceback (most recent call last):
        ...
        ValueError: ConnectOptions(timeout=...) takes a number of seconds > 0, got -1 (int)
    """

    #: Seconds to wait for each reply.
    timeout: float = 30.0
    #: Seconds to wait for the HELLO reply (a GPU server may take a minute to build its simulator).
    connect_timeout: float = 120.0
    #: Re-sends of idempotent requests (HELLO, PING, GET_STATE) after a timeout; never of a step.
    retries: int = 2
    #: The server's Z85 CURVE public key: encrypts the link and authenticates the server.
    curve_server_key: bytes | str | None = None
    #: This client's CURVE key pair (generated when not given).
    curve_public_key: bytes | str | None = None
    curve_secret_key: bytes | str | None = None
    #: Seconds a TCP connection may take to open before a HELLO (fast failure for a wrong endpoint).
    probe_timeout: float = PROBE_TIMEOUT
    #: Lossless compression of large array frames, ``"zstd"`` or ``"lz4"`` (``pip install
    #: 'gym-remote[compress]'``), if the server agrees at HELLO; ``None``: frames travel raw. It pays on
    #: links slower than the codec (~100 Mbit/s and below) with compressible data (images with flat
    #: regions); on loopback or a fast LAN it costs time (see docs/benchmarks.md).
    compression: str | None = None
    #: Bytes below which a frame travels raw even with compression on (both directions).
    compress_above: int = DEFAULT_COMPRESS_ABOVE

    def __post_init__(self) -> None:
        from gym_remote.checks import check_client_keywords

        check_client_keywords("ConnectOptions", **dataclasses.asdict(self))

    @classmethod
    def fields(cls) -> frozenset[str]:
        """The field names: the keywords ``gym.make`` folds into this record."""
        return frozenset(f.name for f in dataclasses.fields(cls))

    @classmethod
    def of(cls, scope: Mapping[str, Any]) -> ConnectOptions:
        """The options among ``scope``'s names (keyword arguments); others are ignored."""
        return cls(**{name: scope[name] for name in cls.fields() if name in scope})

    def connect(self, host: str, port: int, server: Any = None) -> Connection:
        """A :class:`Connection` to ``host:port``.

        Args:
            server: the handle of a server this process started (``LocalServer``, an SSH launch):
                its log tail is attached to errors, and no TCP probe is made (it printed READY,
                and a tunnel's local end accepts whatever the far end does).
        """
        return Connection(
            host,
            port,
            timeout=self.timeout,
            retries=self.retries,
            curve_server_key=self.curve_server_key,
            curve_public_key=self.curve_public_key,
            curve_secret_key=self.curve_secret_key,
            diagnostics=getattr(server, "log_tail", None),
            probe_timeout=None if server is not None else self.probe_timeout,
            compression=self.compression,
            compress_above=self.compress_above,
        )


def hello_body(client: str, **fields: Any) -> dict[str, Any]:
    """A HELLO body without its ``hello_id`` (added per attempt): protocol, client name, ``fields``."""
    return {"protocol": PROTOCOL_VERSION, "client": f"gym-remote/{__version__} {client} ({platform.node()})", **fields}


def same_service(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two HELLO replies describe the same task, spaces and sub-env count."""
    return (
        a.get("task") == b.get("task")
        and a.get("num_envs") == b.get("num_envs")
        and space_from_dict(a["observation_space"]) == space_from_dict(b["observation_space"])
        and space_from_dict(a["action_space"]) == space_from_dict(b["action_space"])
    )


class ClientSession:
    """One session on one server.

    Args:
        conn: the connection (owned: :meth:`close` closes it).
        hello: the HELLO body (see :func:`hello_body`); the same body re-opens a lost session.
        connect_timeout: seconds to wait for a HELLO reply.
        server: the handle of a server this process started, closed with the session.

    Attributes:
        id: the session id, ``None`` before :meth:`open` and after the server forgot it.
        info: the latest HELLO reply (spaces, metadata, state schema...).
    """

    def __init__(self, conn: Connection, hello: dict[str, Any], connect_timeout: float, server: Any = None) -> None:
        self.conn = conn
        self.hello = dict(hello)
        self.connect_timeout = connect_timeout
        self.server = server
        self.id: str | None = None
        self.info: dict[str, Any] = {}
        self.opened = 0  # how many HELLOs succeeded (1 + re-opened sessions)
        self._hello_id: str | None = None  # the HELLO in progress: the same for each of its retries

    @property
    def name(self) -> str:
        return f"{self.conn.host}:{self.conn.port}"

    @property
    def lost(self) -> bool:
        return self.id is None

    # -------------------------------------------------------------------------------- HELLO

    def send_open(self) -> None:
        """Send a HELLO; :meth:`recv_open` collects the reply.

        The ``hello_id`` is new unless a HELLO is in progress (sent, its reply not collected and not
        given up), whose retry this then is: the server answers it with the session it built for it.
        """
        retry = self._hello_id is not None
        if not retry:
            self._hello_id = uuid.uuid4().hex
        try:
            body = {**self.hello, **self.conn.hello_fields(), "hello_id": self._hello_id}
            self.conn.send(Kind.HELLO, body, None, self.connect_timeout)
        except RemoteTimeoutError:
            if not retry:  # never handed to a server: nothing was built for it
                self._hello_id = None
            raise

    def recv_open(self, give_up: bool = True) -> dict[str, Any]:
        """The HELLO reply; the session id is taken from it.

        Args:
            give_up: on a timeout, abandon this HELLO (:meth:`abandon_open`); ``False`` keeps it in
                progress, for :meth:`send_open` to retry it.

        Raises:
            RemoteEnvError: a re-opened session serves another task or other spaces than before.
            ServerError, RemoteTimeoutError, ConnectError: as for any request.
        """
        try:
            reply = self.conn.recv(self.connect_timeout)
        except RemoteTimeoutError:
            if give_up:
                self.abandon_open()
            raise
        except RemoteEnvError:  # the server answered: no session was made for this HELLO
            self._hello_id = None
            raise
        self._hello_id = None
        if self.info and not same_service(reply, self.info):
            self.conn.request(Kind.CLOSE, session=reply["session"], timeout=min(self.conn.timeout, 2.0))
            raise RemoteEnvError(
                f"the server at {self.name} came back serving {reply.get('task')!r} with other spaces than "
                f"{self.info.get('task')!r}: make a new env",
                host=self.conn.host,
                port=self.conn.port,
                request=Kind.HELLO.value,
            )
        if self.opened:
            log.warning("session on %s was lost; opened session %s", self.name, reply["session"])
        self.id, self.info = reply["session"], reply
        self.conn.agree(reply)
        self.opened += 1
        return reply

    def abandon_open(self, timeout: float = 0.5) -> None:
        """Give up the HELLO in progress: CLOSE its ``hello_id`` (best effort) so the server keeps no session for it.

        The CLOSE goes on a fresh socket (the timed-out one was replaced) and its reply is awaited
        ``timeout`` seconds at most: a server still building that HELLO's env handles it afterwards.
        """
        hello_id, self._hello_id = self._hello_id, None
        if hello_id is None or self.conn.closed:
            return
        try:
            self.conn.send(Kind.CLOSE, {"hello_id": hello_id}, None, timeout)
            self.conn.recv(timeout)
        except RemoteEnvError as exc:  # a busy or gone server: its --idle-timeout is the last resort
            log.debug("CLOSE of abandoned HELLO %s on %s: %s", hello_id, self.name, exc)

    def open(self) -> dict[str, Any]:
        """HELLO with retries of the HELLO itself (one ``hello_id``); returns the reply (see :meth:`recv_open`).

        Raises:
            RemoteTimeoutError: no reply to the last attempt; the HELLO was abandoned (:meth:`abandon_open`).
        """
        attempts = 1 + self.conn.retries
        for attempt in range(attempts):
            try:
                self.send_open()
            except RemoteTimeoutError:  # no server took it: give up (an earlier attempt's HELLO may stand)
                self.abandon_open()
                raise
            try:
                return self.recv_open(give_up=attempt + 1 >= attempts)
            except RemoteTimeoutError:
                if attempt + 1 >= attempts:
                    raise
                log.warning("hello to %s timed out; retrying (%d/%d)", self.name, attempt + 1, self.conn.retries)
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------------------ requests

    def send(self, kind: Kind, body: Any = None, timeout: float | None = None) -> None:
        """Send a request in this session (see :meth:`Connection.send`)."""
        self.conn.send(kind, body, self.id, timeout)

    def recv(self, timeout: float | None = None) -> Any:
        """The reply of the pending request.

        Raises:
            SessionLostError: the server forgot the session; it is marked lost (:attr:`lost`).
        """
        try:
            return self.conn.recv(timeout)
        except SessionLostError:
            self.id = None
            raise

    def request(self, kind: Kind, body: Any = None, timeout: float | None = None) -> Any:
        """Send and wait, with :class:`Connection`'s retries of idempotent requests."""
        try:
            return self.conn.request(kind, body, session=self.id, timeout=timeout)
        except SessionLostError:
            self.id = None
            raise

    def call_reopening(self, kind: Kind, body: Any, on_open: Callable[[dict[str, Any]], None]) -> Any:
        """A request that is safe to repeat in a new session (a reset): re-open once if the session is lost.

        ``on_open`` gets the new HELLO reply before the request is sent again.
        """
        if self.lost:
            on_open(self.open())
        try:
            return self.request(kind, body)
        except SessionLostError:
            on_open(self.open())
            return self.request(kind, body)

    def close(self, timeout: float = 2.0) -> None:
        """CLOSE the session (best effort), close the socket and any server this process started."""
        if self.id is not None and not self.conn.closed:
            try:
                self.conn.request(Kind.CLOSE, session=self.id, timeout=min(self.conn.timeout, timeout))
            except RemoteEnvError as exc:  # the server may already be gone; closing must not fail
                log.debug("closing session %s on %s: %s", self.id, self.name, exc)
            self.id = None
        self.conn.close()
        if self.server is not None:
            self.server.close()
            self.server = None
