"""``RemoteEnv``: a Gymnasium env whose simulation runs in an env server, local or remote.

Spaces and metadata come from the server's HELLO reply, so a laptop gets the right
``observation_space`` without the simulator installed. Actions are validated here, before anything
is sent. When the server forgets the session (it restarted), ``step`` raises
:class:`~gym_remote.errors.SessionLostError` and the next ``reset`` opens a new session.

Values come back exactly as the server's env returned them, types included (an ``np.float64``
reward, a Python ``int`` observation, an ``np.bool_`` flag), so ``check_environments_match`` against
the local env passes with no skip flags. ``spec.max_episode_steps`` is the server's time limit, and
``metadata["render_modes"]`` lists the server's modes that work here (all but ``"human"``, which
would open a window on the server).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import warnings
import weakref
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec

from gym_remote.checks import CLIENT_KEYWORDS, check_client_keywords, unexpected_keyword
from gym_remote.client import Connection
from gym_remote.client_session import ClientSession, ConnectOptions, ServerHandle, hello_body
from gym_remote.config import DEFAULT_PORT
from gym_remote.errors import RemoteEnvError, SessionLostError
from gym_remote.protocol import CLOCK_METHODS, GOAL_METHODS, Kind, ObjectList
from gym_remote.spaces import needs_restore, restore_sample, space_from_dict, validate_action
from gym_remote.state import StateSchema

log = logging.getLogger(__name__)


#: Render modes a client cannot have: "human" would open a window on the server, not here.
SERVER_ONLY_RENDER_MODES = frozenset({"human"})


def client_metadata(server_metadata: dict[str, Any] | None) -> dict[str, Any]:
    """The server env's metadata with ``render_modes`` cut to those whose output travels here."""
    meta = dict(server_metadata or {})
    meta["render_modes"] = [m for m in meta.get("render_modes") or [] if m not in SERVER_ONLY_RENDER_MODES]
    return meta


def check_render_mode(render_mode: str | None) -> None:
    """A ValueError for a render mode the client cannot have, naming what to use instead."""
    if render_mode in SERVER_ONLY_RENDER_MODES:
        raise ValueError(
            f"render_mode={render_mode!r} would open a window on the server, not here: use "
            "render_mode='rgb_array' and wrap the env in gymnasium.wrappers.HumanRendering to watch it locally"
        )


def remote_methods(hello: dict[str, Any]) -> tuple[str, ...]:
    """The methods a HELLO reply says the server's env has (only known names): goal-conditioned ones
    (:data:`~gym_remote.protocol.GOAL_METHODS`) and episode clocks (:data:`~gym_remote.protocol.CLOCK_METHODS`)."""
    return tuple(m for m in hello.get("methods") or () if m in GOAL_METHODS or m in CLOCK_METHODS)


def to_wire(value: Any) -> Any:
    """``value`` with its numpy object arrays marked to travel element by element (:class:`ObjectList`).

    SB3's HER passes a transition batch's infos as an object array of dicts; raw object arrays are
    refused on the wire (they would be pickled). The server gets a numpy object array back.
    """
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_wire(v) for v in value]
    if isinstance(value, np.ndarray) and value.dtype == object:
        return ObjectList(to_wire(v) for v in value)  # rows of a 2-D one are object arrays in turn
    return value


def close_links(links: Sequence[Any]) -> None:
    """Close every session of ``links`` (a request still in flight is abandoned first), each server too.

    Args:
        links: :class:`ClientSession` objects, or objects holding one as ``link`` (a vector env's shards).

    The one way a client class closes what it opened: from ``close()``, or from the
    ``weakref.finalize`` of an env that was garbage-collected without ``close()``. It holds the
    sessions, never the env, so the env can be collected.
    """
    for item in list(links):
        link = getattr(item, "link", item)
        if link.conn.pending:
            link.conn.abandon()
        try:
            link.close()  # its server too
        except Exception as exc:  # one failing close must not keep the others open
            log.debug("closing session on %s: %s", link.name, exc)


def check_env_keywords(owner: str, options: Any, **keywords: Any) -> None:
    """Check an env class's own keywords and its ``options`` record, before anything starts.

    Raises:
        TypeError, ValueError: a keyword of the wrong type or value, or ``options`` not a ConnectOptions.
    """
    check_client_keywords(owner, **keywords)
    check_render_mode(keywords.get("render_mode"))
    if options is not None and not isinstance(options, ConnectOptions):
        raise TypeError(f"{owner}(options=...) takes a ConnectOptions, got {type(options).__name__}")


def take_over(env: Any, made: Any) -> None:
    """``env`` becomes ``made`` (an env of its class, just built): its state, and the finalizer that
    closes what ``made`` opened (the deprecated flat-keyword path of the env classes)."""
    _, close, args, kwargs = made._finalizer.detach()
    env.__dict__.update({k: v for k, v in made.__dict__.items() if k != "_finalizer"})
    env._finalizer = weakref.finalize(env, close, *args, **kwargs)


class _Owned:
    """What a :class:`RemoteEnv` opened, closed by its finalizer: the session, or only a server."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.link: ClientSession | None = None

    def close(self) -> None:
        if self.link is not None:
            close_links([self.link])  # the server too
        elif self.server is not None:
            self.server.close()


def default_local_task() -> str:
    """The task a server started for the user serves: the MuJoCo stack-cube stand-in."""
    return "gym_remote/StackCube-v0"


class RemoteEnv(gym.Env):
    """A Gymnasium env served by ``gym-remote serve`` at ``host:port``.

    Args:
        host, port: the server (or the local end of a tunnel to it).
        task, task_kwargs: the server-side env id and its keyword arguments (``None``: the
            server's default).
        options: how to reach the server (:class:`~gym_remote.client_session.ConnectOptions`:
            timeouts, retries, CURVE keys); the defaults when not given.
        server: a server this process started (:class:`~gym_remote.client_session.ServerHandle`:
            :class:`~gym_remote.local.LocalServer`, :func:`gym_remote.launch.launch_server`'s, a
            Ray pool's); the env connects to it instead of ``host``/``port``, attaches its log tail
            to errors, and stops it on :meth:`close`.
        render_mode: ``"rgb_array"`` renders on the server.
        with_state: attach the simulator state to every reset/step reply (see :attr:`last_state`).
        max_episode_steps: a time limit to ask the server for (default: the server's own).

    ``gym.make("Remote-IsaacSim-v0", ...)`` also takes the fields of ``ConnectOptions`` and the launch
    keywords (``launch``, ``backend``, ``config``...) flat, and folds them into these records
    (:mod:`gym_remote.entry`); so did this class until 0.2, which still takes them with a
    ``DeprecationWarning``.

    Raises:
        TypeError, ValueError: a keyword of the wrong type or value, named.
        ConnectError, RemoteTimeoutError: the server cannot be reached, or did not answer the HELLO.
        BadRequestError: the server refused the task or its keyword arguments.

    Example:
        With no ``host``, a local server subprocess serves the task; the values are the local env's:

        >>> import gymnasium as gym
        >>> import gym_remote
        >>> env = gym.make("Remote-IsaacSim-v0", task="CartPole-v1")
        >>> env.observation_space.shape, env.spec.max_episode_steps
        ((4,), 500)
        >>> obs, info = env.reset(seed=42)
        >>> local = gym.make("CartPole-v1")
        >>> bool((obs == local.reset(seed=42)[0]).all())
        True
        >>> obs, reward, terminated, truncated, info = env.step(1)
        >>> reward, terminated, type(obs).__name__, obs.dtype
        (1.0, False, 'ndarray', dtype('float32'))
        >>> env.close(); local.close()
    """

    #: The server env's metadata, set from its HELLO reply (``render_modes`` without ``"human"``).
    metadata: dict[str, Any] = {"render_modes": []}

    @property  # type: ignore[override]
    def spec(self) -> EnvSpec | None:
        """The spec ``gym.make`` gave; when it has no ``max_episode_steps``, the server's time limit is it."""
        spec = self.__dict__.get("_spec")
        steps = self.__dict__.get("_server_max_steps")
        if spec is None or spec.max_episode_steps is not None or steps is None:
            return spec
        return dataclasses.replace(spec, max_episode_steps=steps)

    @spec.setter
    def spec(self, value: EnvSpec | None) -> None:
        self.__dict__["_spec"] = value

    def __init__(
        self,
        host: str | None = None,
        port: int = DEFAULT_PORT,
        task: str | None = None,
        task_kwargs: dict[str, Any] | None = None,
        *,
        options: ConnectOptions | None = None,
        server: ServerHandle | None = None,
        render_mode: str | None = None,
        with_state: bool = False,
        max_episode_steps: int | None = None,
        **deprecated: Any,
    ) -> None:
        stray = [k for k in deprecated if k not in ConnectOptions.fields() and k not in ("launch", "backend")]
        if stray and not deprecated.get("launch"):  # a misspelling, not an old keyword: Python's own error
            raise unexpected_keyword("RemoteEnv", stray[0], CLIENT_KEYWORDS | {"options", "server"})
        if deprecated or (host is None and server is None):
            # Until 0.2 the class took gym.make's flat keywords and started servers itself.
            warnings.warn(
                "RemoteEnv(timeout=..., launch=..., host=None, ...) is deprecated: pass options=ConnectOptions(...) "
                "and server=<a started server's handle>, or call gym.make('Remote-IsaacSim-v0', ...), which takes "
                "the flat keywords",
                DeprecationWarning,
                stacklevel=2,
            )
            from gym_remote.entry import make_env  # the one place flat keywords are folded

            keywords = dict(render_mode=render_mode, with_state=with_state, max_episode_steps=max_episode_steps)
            if options is not None:
                keywords.update(dataclasses.asdict(options))
            made = make_env(host, port, task, task_kwargs, **keywords, **deprecated)
            take_over(self, made)
            return
        check_env_keywords(
            "RemoteEnv",
            options,
            host=host,
            port=port,
            task=task,
            task_kwargs=task_kwargs,
            render_mode=render_mode,
            with_state=with_state,
            max_episode_steps=max_episode_steps,
        )
        if server is not None and not isinstance(server, ServerHandle):
            raise TypeError(
                f"RemoteEnv(server=...) takes a started server's handle (local_host, local_port, endpoint, "
                f"log_tail(), close()), got {type(server).__name__}"
            )
        self.task = task
        self.task_kwargs = dict(task_kwargs or {})
        self.render_mode = render_mode
        self.with_state = with_state
        self.options = options or ConnectOptions()
        self.connect_timeout = self.options.connect_timeout
        self._remote_max_steps = max_episode_steps
        self._server = server
        # Closed by close(), or when the env is garbage-collected: the finalizer holds what was opened.
        self._owned = _Owned(server)
        self._finalizer = weakref.finalize(self, self._owned.close)
        if server is not None:
            host, port = server.local_host, server.local_port
        self.host, self.port = str(host), int(port)
        hello = hello_body(
            "RemoteEnv",
            task=task,
            task_kwargs=self.task_kwargs,
            num_envs=None,
            render_mode=render_mode,
            max_episode_steps=max_episode_steps,
        )
        self.last_state: np.ndarray | None = None
        self.state_schema: StateSchema | None = None
        try:
            conn = self.options.connect(self.host, self.port, self._server)
            self._link = self._owned.link = ClientSession(conn, hello, self.options.connect_timeout, server)
            self._apply_hello(self._link.open())
        except BaseException:
            self.close()
            raise

    @property
    def session(self) -> str | None:
        """The server's id for this env's session; ``None`` once the server forgot it."""
        return self._link.id

    @property
    def compression(self) -> str | None:
        """The codec large array frames travel compressed with, both ways, as the server agreed at HELLO
        (``ConnectOptions(compression=...)`` asks); ``None``: raw."""
        return self._link.conn.compressing

    @property
    def _conn(self) -> Connection:
        return self._link.conn

    # --------------------------------------------------------------------------- handshake

    def _apply_hello(self, reply: dict[str, Any]) -> None:
        self.server_info = reply
        self.task = reply.get("task") or self.task
        self.observation_space = space_from_dict(reply["observation_space"])
        self.action_space = space_from_dict(reply["action_space"])
        self._restore_obs = needs_restore(self.observation_space)  # a Graph arrives as a plain tuple
        self.metadata = client_metadata(reply.get("metadata"))
        self._server_max_steps = reply.get("max_episode_steps")
        if self.render_mode is not None and self.render_mode not in self.metadata["render_modes"]:
            gym.logger.warn(  # what gym.make says locally for a mode the env does not list
                f"The environment is being initialised with render_mode={self.render_mode!r} "
                f"that is not in the possible render_modes ({self.metadata['render_modes']})."
            )
        schema = reply.get("state_schema")
        self.state_schema = StateSchema.from_dict(schema) if schema else None
        self._methods = remote_methods(reply)
        log.info("connected to %s:%d session %s (task %s)", self.host, self.port, self.session, self.task)

    def _check_open(self, request: str) -> None:
        if self._closed:
            raise RemoteEnvError(
                f"{request}() on a closed env: close() ended its session; make a new env to go on",
                host=self.host,
                port=self.port,
                request=request,
            )

    def _request(self, kind: Kind, body: Any = None) -> Any:
        self._check_open(kind.value)
        return self._link.request(kind, body)

    # ------------------------------------------------------------------------------ gym API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the remote env; a session the server forgot is replaced by a new one first.

        Raises:
            RemoteEnvError: the server came back serving other spaces, or the env was closed.
            RemoteTimeoutError, ServerError: as for :meth:`step`.
        """
        self._check_open("reset")
        super().reset(seed=seed)
        # The server forgot us (restart, idle timeout): a reset opens a new session by itself.
        body = {"seed": seed, "options": options, "with_state": self.with_state}
        reply = self._link.call_reopening(Kind.RESET, body, self._apply_hello)
        self.last_state = reply.get("state")
        obs = restore_sample(self.observation_space, reply["obs"]) if self._restore_obs else reply["obs"]
        return obs, reply["info"]

    def step(self, action: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """Step the remote env; every value is returned as the server's env returned it.

        Raises:
            ValueError: the action does not fit :attr:`action_space` (nothing is sent).
            SessionLostError: the server no longer knows this session (the next ``reset`` opens one).
            RemoteTimeoutError: no reply within ``timeout`` (a step is never re-sent).
            ServerError: the remote env raised (``remote_traceback`` holds its traceback).
            RemoteEnvError: the env was closed.
        """
        self._check_open("step")
        action = validate_action(self.action_space, action)
        if type(action) is np.int64:  # a Discrete action: a plain int packs in half the time
            action = int(action)
        if self.session is None:
            raise SessionLostError("no session: call reset() first", host=self.host, port=self.port, request="step")
        reply = self._link.request(Kind.STEP, {"action": action, "with_state": self.with_state})
        self.last_state = reply.get("state")
        obs = restore_sample(self.observation_space, reply["obs"]) if self._restore_obs else reply["obs"]
        return obs, reply["reward"], reply["terminated"], reply["truncated"], reply["info"]

    def render(self) -> Any:
        if self.render_mode is None:
            return None
        return self._request(Kind.RENDER)["frame"]

    def get_state(self) -> Any:
        """The simulator state now: a flat array laid out by :attr:`state_schema` when it has one."""
        return self._request(Kind.GET_STATE)["state"]

    def set_state(self, state: Any) -> dict[str, Any] | None:
        """Set the remote env's state (a flat ``float64`` array of ``state_schema.size``).

        Returns:
            ``None`` when all of it was restored, else ``{"not_restored": [names]}`` for the parts
            the simulator could not restore (e.g. velocities on MetaSim's MuJoCo handler).
        Raises:
            StateError: the env has no settable state, or ``state`` does not fit the schema.
        """
        return self._request(Kind.SET_STATE, {"state": state})

    def ping(self) -> dict[str, Any]:
        return self._conn.request(Kind.PING)

    @property
    def _closed(self) -> bool:
        finalizer = self.__dict__.get("_finalizer")
        return finalizer is None or not finalizer.alive

    def close(self) -> None:
        """Close the session, the socket and any server this env started. Idempotent.

        Also done when the env is garbage-collected without ``close()``.
        """
        finalizer = self.__dict__.get("_finalizer")
        if finalizer is not None and finalizer.alive:
            finalizer()
            super().close()

    # ------------------------------------------------------------- goal-conditioned envs

    @property
    def remote_methods(self) -> tuple[str, ...]:
        """The goal-conditioned methods the server's env has: these are attributes of this env too."""
        return self.__dict__.get("_methods", ())

    def __getattr__(self, name: str) -> Any:
        # Only the goal methods the server's env has exist here, so ``hasattr(env.unwrapped,
        # "compute_reward")`` (how SB3's check_env and HER tell a goal env) answers as locally.
        if name in self.__dict__.get("_methods", ()):
            return functools.partial(self.call_method, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def call_method(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the server env's goal-conditioned method ``name`` (one of :attr:`remote_methods`).

        ``compute_reward(achieved_goal, desired_goal, info)`` and ``compute_terminated``/
        ``compute_truncated`` take single goals or batches (``(B, goal_dim)`` arrays with an info
        per row, e.g. SB3's HER), as the env's own do; the server runs the env's method, since code
        does not travel. One round trip per call.

        Raises:
            AttributeError: the server's env has no such method.
            ServerError: the env's method raised (``remote_traceback`` holds its traceback).
        """
        if name not in self.remote_methods:
            raise AttributeError(
                f"the server's env has no goal-conditioned method {name!r}; it has {list(self.remote_methods)}"
            )
        body = {"name": name, "args": to_wire(list(args)), "kwargs": to_wire(kwargs)}
        return self._request(Kind.CALL, body)["value"]
