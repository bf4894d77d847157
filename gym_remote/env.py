"""``RemoteEnv``: a Gymnasium env whose simulation runs in an env server, local or remote.

Spaces and metadata come from the server's HELLO reply, so a laptop gets the right
``observation_space`` without the simulator installed. Actions are validated here, before anything
is sent. When the server forgets the session (it restarted), ``step`` raises
:class:`~gym_remote.errors.SessionLostError` and the next ``reset`` opens a new session.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import uuid
from typing import Any

import gymnasium as gym
import numpy as np

from gym_remote import __version__
from gym_remote.client import Connection
from gym_remote.errors import SessionLostError
from gym_remote.protocol import PROTOCOL_VERSION, Kind
from gym_remote.spaces import space_from_dict, validate_action
from gym_remote.state import StateSchema

log = logging.getLogger(__name__)

DEFAULT_PORT = 5555


def default_local_task() -> str:
    """The task a server started for the user serves: the MuJoCo stack-cube stand-in."""
    return "gym_remote/StackCube-v0"


def start_server_for(
    host: str | None,
    *,
    launch: bool | dict[str, Any],
    backend: str,
    task: str | None,
    task_kwargs: dict[str, Any] | None,
    launch_options: dict[str, Any],
) -> Any:
    """A server handle (``local_host``, ``local_port``, ``log_tail()``, ``close()``), or None.

    No host: a subprocess on this machine. ``launch=True``: started over SSH by
    :mod:`gym_remote.launch` (imported only then; this module knows nothing of SSH).
    """
    if host is None:
        from gym_remote.local import LocalServer

        return LocalServer(backend, task or default_local_task(), task_kwargs)
    if launch:
        from gym_remote.launch import launch_server

        options = {**(launch if isinstance(launch, dict) else {}), **launch_options}
        return launch_server(host=host, backend=backend, task=task, task_kwargs=task_kwargs, **options)
    return None


class RemoteEnv(gym.Env):
    """A Gymnasium env served by ``gym-remote serve`` at ``host:port``.

    Args:
        host: server host; ``None`` starts a local server subprocess (the default task is the
            built-in MuJoCo stack-cube stand-in).
        port: server port (or the local end of a tunnel).
        task, task_kwargs: the server-side env id and its keyword arguments (``None``: the
            server's default).
        timeout: seconds to wait for each reply; ``connect_timeout`` for HELLO (env creation on a
            GPU box can take a minute).
        retries: re-sends of idempotent requests after a timeout (never of a step).
        render_mode: ``"rgb_array"`` renders on the server.
        curve_server_key (+ optional ``curve_public_key``/``curve_secret_key``): CURVE encryption.
        with_state: attach the simulator state to every reset/step reply (see :attr:`last_state`).
        launch, backend, config and other keywords: start the server over SSH first (see
            :mod:`gym_remote.launch`).
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self,
        host: str | None = None,
        port: int = DEFAULT_PORT,
        task: str | None = None,
        task_kwargs: dict[str, Any] | None = None,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 120.0,
        retries: int = 2,
        render_mode: str | None = None,
        curve_server_key: bytes | str | None = None,
        curve_public_key: bytes | str | None = None,
        curve_secret_key: bytes | str | None = None,
        with_state: bool = False,
        launch: bool | dict[str, Any] = False,
        backend: str = "gymnasium",
        max_episode_steps: int | None = None,
        **launch_options: Any,
    ) -> None:
        if launch_options and not launch:
            raise TypeError(
                f"unexpected keyword arguments {sorted(launch_options)} (launch options need launch=True)"
            )
        self.task = task
        self.task_kwargs = dict(task_kwargs or {})
        self.render_mode = render_mode
        self.with_state = with_state
        self.connect_timeout = connect_timeout
        self._remote_max_steps = max_episode_steps
        self._server = start_server_for(
            host,
            launch=launch,
            backend=backend,
            task=task,
            task_kwargs=task_kwargs,
            launch_options=launch_options,
        )
        if self._server is not None:
            host, port = self._server.local_host, self._server.local_port
        self.host, self.port = str(host), int(port)
        self._conn = Connection(
            self.host,
            self.port,
            timeout=timeout,
            retries=retries,
            curve_server_key=curve_server_key,
            curve_public_key=curve_public_key,
            curve_secret_key=curve_secret_key,
            diagnostics=getattr(self._server, "log_tail", None),
        )
        self.session: str | None = None
        self.last_state: np.ndarray | None = None
        self.state_schema: StateSchema | None = None
        self._closed = False
        try:
            self._hello()
        except BaseException:
            self.close()
            raise

    # --------------------------------------------------------------------------- handshake

    def _hello(self) -> None:
        reply = self._conn.request(
            Kind.HELLO,
            {
                "protocol": PROTOCOL_VERSION,
                "client": f"gym-remote/{__version__} RemoteEnv ({platform.node()})",
                "hello_id": uuid.uuid4().hex,
                "task": self.task,
                "task_kwargs": self.task_kwargs,
                "num_envs": None,
                "render_mode": self.render_mode,
                "max_episode_steps": self._remote_max_steps,
            },
            timeout=self.connect_timeout,
        )
        self.session = reply["session"]
        self.server_info = reply
        self.task = reply.get("task") or self.task
        self.observation_space = space_from_dict(reply["observation_space"])
        self.action_space = space_from_dict(reply["action_space"])
        self.metadata = {**type(self).metadata, **(reply.get("metadata") or {})}
        schema = reply.get("state_schema")
        self.state_schema = StateSchema.from_dict(schema) if schema else None
        log.info("connected to %s:%d session %s (task %s)", self.host, self.port, self.session, self.task)

    def _request(self, kind: Kind, body: Any = None) -> Any:
        try:
            return self._conn.request(kind, body, session=self.session)
        except SessionLostError:
            self.session = None
            raise

    # ------------------------------------------------------------------------------ gym API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        if self.session is None:  # the server forgot us: open a new session transparently
            self._hello()
        reply = self._request(Kind.RESET, {"seed": seed, "options": options, "with_state": self.with_state})
        self.last_state = reply.get("state")
        return reply["obs"], reply["info"]

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        action = validate_action(self.action_space, action)
        if type(action) is np.int64:  # a Discrete action: a plain int packs in half the time
            action = int(action)
        if self.session is None:
            raise SessionLostError(
                "no session: call reset() first", host=self.host, port=self.port, request="step"
            )
        reply = self._request(Kind.STEP, {"action": action, "with_state": self.with_state})
        self.last_state = reply.get("state")
        return (
            reply["obs"],
            float(reply["reward"]),
            bool(reply["terminated"]),
            bool(reply["truncated"]),
            reply["info"],
        )

    def render(self) -> Any:
        if self.render_mode is None:
            return None
        return self._request(Kind.RENDER)["frame"]

    def get_state(self) -> Any:
        """The simulator state now: a flat array laid out by :attr:`state_schema` when it has one."""
        return self._request(Kind.GET_STATE)["state"]

    def set_state(self, state: Any) -> None:
        self._request(Kind.SET_STATE, {"state": state})

    def ping(self) -> dict[str, Any]:
        return self._conn.request(Kind.PING)

    def close(self) -> None:
        """Close the session, the socket and any server this env started. Idempotent."""
        if self._closed:
            return
        self._closed = True
        conn = getattr(self, "_conn", None)
        if conn is not None:
            if self.session is not None:
                try:
                    conn.request(Kind.CLOSE, session=self.session, timeout=min(conn.timeout, 2.0))
                except Exception as exc:  # the server may already be gone; closing must not fail
                    log.debug("closing session %s: %s", self.session, exc)
                self.session = None
            conn.close()
        if getattr(self, "_server", None) is not None:
            self._server.close()
        super().close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self.close()
