"""What the server hosts for one client: a single env or a batch of sub-envs, behind one interface.

:class:`Session` is the seam between the server loop and a simulator. :class:`GymSession` adapts any
Gymnasium env or ``VectorEnv``; natively batched simulators (Isaac Lab, RoboVerse) subclass
:class:`Session` directly in :mod:`gym_remote.backends`.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from gym_remote.checks import check_reset_mask
from gym_remote.errors import BadRequestError, StateError, clip
from gym_remote.protocol import CALLABLE_ALLOWLIST, ObjectList
from gym_remote.spaces import space_to_dict, validate_action
from gym_remote.state import MujocoBinding, StateSchema, check_state, mujoco_schema

log = logging.getLogger(__name__)

AUTORESET_MODES = ("next_step", "same_step", "disabled")


#: Longest task id a client may name.
MAX_TASK_CHARS = 256


def _looks_like_path(text: str) -> bool:
    """Whether a client's string names a file on the server: absolute, home-relative, dot-relative
    (Gymnasium's MuJoCo envs open ``.``- and ``/``-prefixed ``xml_file`` values as they are), a
    Windows drive, or a ``..`` step out of wherever the env joins it to. For ``key=value`` strings
    (Isaac Lab's Hydra overrides), the value counts too."""
    if "=" in text and text != text.rpartition("=")[2] and _looks_like_path(text.rpartition("=")[2]):
        return True
    if text.startswith(("/", "~", ".", "\\")) or (len(text) > 2 and text[1] == ":" and text[2] in "/\\"):
        return True
    return ".." in text.replace("\\", "/").split("/")


def _paths_in(value: Any, where: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(where, value)] if _looks_like_path(value) else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _paths_in(v, f"{where}[{k!r}]")]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in _paths_in(v, f"{where}[{i}]")]
    return []


@dataclass(frozen=True)
class SessionLimits:
    """What one client may make a server build, set by ``gym-remote serve`` options.

    A HELLO past a limit is refused with a :class:`~gym_remote.errors.BadRequestError` that names
    the limit and the serve option that changes it. Sizes are checked in :meth:`SessionOptions.from_hello`
    (before any backend runs); keywords in :func:`choose_task` (after the backend's own checks).
    """

    #: Sub-envs one session may ask for (``serve --max-envs``). The gymnasium and python backends
    #: build each sub-env in turn on the server's one thread, which serves nobody else meanwhile.
    max_envs: int = 1024
    #: Bytes of ``task_kwargs`` as encoded on the wire (``serve --max-kwargs-bytes``).
    max_kwargs_bytes: int = 64 * 1024
    #: Keywords a client may set; ``None``: any (``serve --allow-kwargs a,b``; ``''``: none).
    allowed_kwargs: frozenset[str] | None = None
    #: Keywords the server fixed (its ``--kwargs`` under ``--fixed-task``): a client may not change them.
    fixed_kwargs: Mapping[str, Any] = field(default_factory=dict)
    #: Whether client keywords may hold file paths (``serve --allow-client-paths``); by default a
    #: string that names a server file (``/x``, ``~/x``, ``./x``, ``a/../b``) is refused.
    allow_client_paths: bool = False

    def check_size(self, opts: SessionOptions) -> None:
        """Refuse a ``num_envs`` or ``task_kwargs`` past the limits (BadRequestError naming the option)."""
        if opts.num_envs is not None and opts.num_envs > self.max_envs:
            raise BadRequestError(
                f"num_envs={opts.num_envs} exceeds this server's limit of {self.max_envs} sub-envs per session "
                f"(serve --max-envs raises it); split the batch over several sessions or servers (hosts=[...])"
            )
        if opts.task_kwargs:
            from gym_remote.protocol import encode

            header, buffers = encode(opts.task_kwargs)
            size = len(header) + sum(memoryview(b).nbytes for b in buffers)
            if size > self.max_kwargs_bytes:
                raise BadRequestError(
                    f"task_kwargs of {size} bytes exceed this server's limit of {self.max_kwargs_bytes} "
                    "(serve --max-kwargs-bytes raises it)"
                )

    def check_kwargs(self, kwargs: Mapping[str, Any]) -> None:
        """Refuse keywords the server fixed or did not allow, and file paths (BadRequestError)."""
        changed = sorted(k for k, v in kwargs.items() if k in self.fixed_kwargs and not _same(v, self.fixed_kwargs[k]))
        if changed:
            raise BadRequestError(
                f"task keywords {changed} are fixed by this server (serve --fixed-task with --kwargs or a task "
                "config); leave them out"
            )
        if self.allowed_kwargs is not None:
            refused = sorted(set(kwargs) - self.allowed_kwargs - set(self.fixed_kwargs))
            if refused:
                allowed = ", ".join(sorted(self.allowed_kwargs)) or "none"
                raise BadRequestError(
                    f"task keywords {clip(repr(refused), 300)} are not allowed by this server; it allows: "
                    f"{allowed} (serve --allow-kwargs, or allow_kwargs in a task config)"
                )
        if not self.allow_client_paths:
            paths = _paths_in(dict(kwargs), "task_kwargs")
            if paths:
                where, value = paths[0]
                raise BadRequestError(
                    f"{clip(where, 200)}={clip(repr(value), 200)} names a file on the server, which clients may "
                    "not do; give a bare file name the env resolves itself, or let the server's operator set it "
                    "(serve --kwargs), or allow it (serve --allow-client-paths)"
                )


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # arrays compare element-wise: not the same keyword value
        return False


@dataclass
class SessionOptions:
    """What a client asked for at HELLO."""

    task: str | None = None
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    num_envs: int | None = None  # None: a single env (RemoteEnv); N: a batch (RemoteVectorEnv)
    autoreset_mode: str = "next_step"
    render_mode: str | None = None
    max_episode_steps: int | None = None
    #: The server's limits on what a client may ask for (checked by ``from_hello`` and ``choose_task``).
    limits: SessionLimits = field(default_factory=SessionLimits)

    @classmethod
    def from_hello(cls, body: dict[str, Any], limits: SessionLimits | None = None) -> SessionOptions:
        """The options of a HELLO body, checked for types and against ``limits``.

        Raises:
            BadRequestError: a field of the wrong type or value, or past a limit (named, with the
                serve option that raises it).
        """
        limits = limits or SessionLimits()
        task = body.get("task")
        if task is not None and not isinstance(task, str):
            raise BadRequestError(f"task must be a string, got {type(task).__name__}")
        if task is not None and len(task) > MAX_TASK_CHARS:
            raise BadRequestError(f"a task id of {len(task)} characters is longer than {MAX_TASK_CHARS}")
        kwargs = body.get("task_kwargs") or {}
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise BadRequestError("task_kwargs must be a map with string keys")
        num_envs = body.get("num_envs")
        if num_envs is not None and (type(num_envs) is not int or num_envs < 1):
            raise BadRequestError(f"num_envs must be a positive integer, got {clip(repr(num_envs), 100)}")
        mode = body.get("autoreset_mode", "next_step")
        if mode not in AUTORESET_MODES:
            raise BadRequestError(f"autoreset_mode must be one of {AUTORESET_MODES}, got {clip(repr(mode), 100)}")
        render_mode = body.get("render_mode")
        if render_mode is not None and not isinstance(render_mode, str):
            raise BadRequestError("render_mode must be a string or None")
        steps = body.get("max_episode_steps")
        if steps is not None and (type(steps) is not int or steps < 1):
            raise BadRequestError(f"max_episode_steps must be a positive integer, got {clip(repr(steps), 100)}")
        opts = cls(task, dict(kwargs), num_envs, mode, render_mode, steps, limits)
        limits.check_size(opts)
        return opts


def choose_task(
    opts: SessionOptions, default: str | None, allow_any_task: bool, server_keys: frozenset[str] = frozenset()
) -> str:
    """The task a HELLO asks for, checked against what this server serves and lets clients set.

    Raises:
        BadRequestError: no task, another task than a fixed one, a server setting among the
            keywords, or keywords the server's :class:`SessionLimits` refuse (fixed, not allowed, paths).
    """
    name = opts.task or default
    if not name:
        raise BadRequestError("no task: the client named none and the server has no default")
    if name != default and not allow_any_task:
        raise BadRequestError(
            f"this server only serves {default!r}, not {clip(repr(name), 300)} (it runs with --fixed-task)"
        )
    refused = server_keys & set(opts.task_kwargs)
    if refused:
        raise BadRequestError(f"task keywords {sorted(refused)} are server settings; clients may not set them")
    opts.limits.check_kwargs(opts.task_kwargs)
    return name


class Session(abc.ABC):
    """One client's env(s) on the server. Spaces are the *single* env's spaces."""

    observation_space: gym.Space
    action_space: gym.Space
    num_envs: int | None = None
    metadata: dict[str, Any]
    state_schema: StateSchema | None = None
    task: str | None = None
    #: The time limit each (sub-)env enforces, reported to clients as ``spec.max_episode_steps``.
    max_episode_steps: int | None = None

    @property
    def batched_action_space(self) -> gym.Space:
        if self.num_envs is None:
            return self.action_space
        if not hasattr(self, "_batched_action_space"):
            self._batched_action_space = gym.vector.utils.batch_space(self.action_space, self.num_envs)
        return self._batched_action_space

    def check_action(self, action: Any) -> Any:
        """The action cast to the space's dtype; a ValueError naming the mismatch otherwise."""
        return validate_action(self.batched_action_space, action)

    #: Whether :meth:`reset` takes a list of options, one map per sub-env (SB3's ``set_options``);
    #: otherwise per-sub-env options are accepted only when they are all equal.
    per_env_options: bool = False

    @property
    def has_state(self) -> bool:
        """Whether :meth:`get_state` can answer (checked before a ``with_state`` request acts)."""
        return type(self).get_state is not Session.get_state

    def check_reset(self, seed: Any, options: Any) -> tuple[Any, Any]:
        """A client's reset arguments, checked as Gymnasium's vector envs check them.

        Returns:
            ``(seed, options)``; per-sub-env options that are all equal become one map.
        Raises:
            BadRequestError: a seed that is not an int >= 0 (or a list of them, one per sub-env,
                ``None`` allowed), options that are not a map (or a list of maps, one per sub-env),
                or a ``reset_mask`` that is not a bool array of shape ``(num_envs,)`` with a True.
        """
        n = self.num_envs
        if seed is not None:
            if isinstance(seed, list):
                if n is None:
                    raise BadRequestError("a single env takes an int seed, not a list")
                if len(seed) != n:
                    raise BadRequestError(f"{len(seed)} seeds for {n} sub-envs: give one per sub-env")
            for s in seed if isinstance(seed, list) else [seed]:
                if s is not None and (type(s) is not int or s < 0):
                    raise BadRequestError(f"a seed must be an int >= 0 or None, got {clip(repr(s), 100)}")
        if isinstance(options, list):
            if n is None or len(options) != n:
                raise BadRequestError(f"{len(options)} option maps for {n or 1} (sub-)envs: give one per sub-env")
            if not all(o is None or isinstance(o, dict) for o in options):
                raise BadRequestError("per-sub-env options must each be a map or None")
            if all(_same(o, options[0]) for o in options):
                options = options[0]
            elif not self.per_env_options:
                raise BadRequestError(
                    f"this {type(self).__name__} resets every sub-env with the same options; different options per "
                    "sub-env are refused"
                )
        elif options is not None and not isinstance(options, dict):
            raise BadRequestError(f"options must be a map or None, got {type(options).__name__}")
        for opts in options if isinstance(options, list) else [options]:
            if opts and "reset_mask" in opts:
                check_reset_mask(opts["reset_mask"], n, BadRequestError, BadRequestError)
        return seed, options

    @abc.abstractmethod
    def reset(self, *, seed: int | list[int] | None, options: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]: ...

    @abc.abstractmethod
    def step(self, action: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]: ...

    def get_state(self) -> Any:
        raise StateError(f"this env ({self.task}) does not expose its state")

    def set_state(self, state: Any) -> dict[str, Any] | None:
        """Set the state; return ``None``, or ``{"not_restored": [names]}`` for parts the simulator
        could not restore (e.g. ``"cube/root_vel"``: MetaSim's MuJoCo handler zeroes velocities)."""
        raise StateError(f"this env ({self.task}) cannot set its state")

    def render(self) -> Any:
        return None

    def call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        raise StateError(f"{name!r} is not callable remotely on this env")

    @abc.abstractmethod
    def close(self) -> None: ...

    def describe(self) -> dict[str, Any]:
        """The session's half of the HELLO reply."""
        meta = {k: v for k, v in self.metadata.items() if isinstance(v, (int, float, str, bool, list, type(None)))}
        return {
            "task": self.task,
            "observation_space": space_to_dict(self.observation_space),
            "action_space": space_to_dict(self.action_space),
            "num_envs": self.num_envs,
            "max_episode_steps": self.max_episode_steps,
            "metadata": meta,
            "state_schema": self.state_schema.to_dict() if self.state_schema else None,
        }


def wrap_object_arrays(tree: Any) -> Any:
    """Mark the object arrays of a vector info (strings, tuples...) to travel as ObjectList."""
    if isinstance(tree, dict):
        return {k: wrap_object_arrays(v) for k, v in tree.items()}
    if isinstance(tree, np.ndarray) and tree.dtype == object:
        return ObjectList(wrap_object_arrays(v) for v in tree)
    return tree


class _StateAccess:
    """How to read and write one Gymnasium env's state: its own hooks, else its MuJoCo model."""

    def __init__(self, env: gym.Env) -> None:
        inner: Any = env.unwrapped  # duck-typed: get_state/set_state hooks or a MuJoCo model
        self.env = inner
        self.schema: StateSchema | None = None
        self.binding: MujocoBinding | None = None
        self.opaque = False
        custom = getattr(inner, "get_state", None)
        if callable(custom):
            self.opaque = not isinstance(getattr(inner, "state_schema", None), StateSchema)
            self.schema = None if self.opaque else inner.state_schema
        elif _is_mujoco(inner):
            try:
                self.schema = mujoco_schema(inner.model)
                self.binding = MujocoBinding(inner.model, self.schema)
            except StateError as exc:
                log.info("no state schema for %s: %s", type(self.env).__name__, exc)

    @property
    def available(self) -> bool:
        return self.opaque or self.schema is not None

    def get(self) -> Any:
        if self.binding is not None:
            return self.binding.read(self.env.data)
        if self.available:
            return self.env.get_state()
        raise StateError(f"{type(self.env).__name__} has neither get_state() nor a MuJoCo model")

    def set(self, state: Any) -> None:
        if self.binding is not None:
            import mujoco

            self.binding.write(self.env.data, state)
            mujoco.mj_forward(self.env.model, self.env.data)
        elif callable(getattr(self.env, "set_state", None)):
            if self.schema is not None:
                state = check_state(self.schema, state, batched=False)
            self.env.set_state(state)
        else:
            raise StateError(f"{type(self.env).__name__} has neither set_state() nor a MuJoCo model")


def _is_mujoco(env: Any) -> bool:
    try:
        import mujoco
    except ImportError:  # pragma: no cover - mujoco is a dependency, but keep servers importable
        return False
    return isinstance(getattr(env, "model", None), mujoco.MjModel) and isinstance(
        getattr(env, "data", None), mujoco.MjData
    )


class GymSession(Session):
    """A Gymnasium env (``num_envs=None``) or a Gymnasium ``VectorEnv`` of sub-envs.

    A single env's values go back exactly as the env returned them (an ``np.float64`` reward stays
    one, a Python ``int`` stays an ``int``), so a remote env is indistinguishable from a local one.

    Args:
        env: the env or vector env this session owns (closed with the session).
        task: the id it was made from, reported to clients.
        max_episode_steps: the time limit per (sub-)env; default: read from the env's spec.
    """

    def __init__(
        self, env: gym.Env | gym.vector.VectorEnv, task: str | None = None, max_episode_steps: int | None = None
    ) -> None:
        self.env = env
        self.task = task
        self.metadata = dict(env.metadata)
        if isinstance(env, gym.vector.VectorEnv):
            self.num_envs = env.num_envs
            self.observation_space = env.single_observation_space
            self.action_space = env.single_action_space
            subs = list(getattr(env, "envs", []))
            self._access = [_StateAccess(e) for e in subs] if subs else []
            first_spec = subs[0].spec if subs else None
        else:
            self.observation_space = env.observation_space
            self.action_space = env.action_space
            self._access = [_StateAccess(env)]
            first_spec = env.spec
        if max_episode_steps is None and first_spec is not None:
            max_episode_steps = first_spec.max_episode_steps
        self.max_episode_steps = max_episode_steps
        first = self._access[0] if self._access else None
        self.state_schema = first.schema if first is not None else None

    def reset(self, *, seed: int | list[int] | None, options: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
        if self.num_envs is None:
            if isinstance(seed, list):
                raise BadRequestError("a single env takes an int seed, not a list")
            return self.env.reset(seed=seed, options=options)
        obs, info = self.env.reset(seed=seed, options=options)  # type: ignore[arg-type]  # lists are fine
        return obs, wrap_object_arrays(info)

    def step(self, action: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.num_envs is None:  # exactly what the env returned: types included
            return obs, reward, terminated, truncated, info
        return (
            obs,
            np.asarray(reward, dtype=np.float64),
            np.asarray(terminated),
            np.asarray(truncated),
            wrap_object_arrays(info),
        )

    @property
    def has_state(self) -> bool:
        return bool(self._access) and self._access[0].available

    def get_state(self) -> Any:
        if not self._access or not self._access[0].available:
            return super().get_state()
        states = [a.get() for a in self._access]
        if self.num_envs is None:
            return states[0]
        return np.stack(states) if self.state_schema is not None else states

    def set_state(self, state: Any) -> dict[str, Any] | None:
        if not self._access or not self._access[0].available:
            super().set_state(state)
        if self.num_envs is None:
            self._access[0].set(state)
            return None
        if len(state) != len(self._access):
            raise StateError(f"batched state has {len(state)} rows for {len(self._access)} sub-envs")
        for access, row in zip(self._access, state, strict=True):
            access.set(row)
        return None

    def render(self) -> Any:
        return self.env.render()

    def call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if name == "env_is_wrapped":  # SB3's VecEnv.env_is_wrapped, answered from the real wrapper chains
            return self._env_is_wrapped(str(args[0]) if args else "")
        if name not in CALLABLE_ALLOWLIST:
            raise StateError(f"{name!r} is not on the remote call allow-list {sorted(CALLABLE_ALLOWLIST)}")
        envs = [a.env for a in self._access] or [self.env.unwrapped]
        values = []
        for env in envs:
            if name == "spec_id":
                values.append(env.spec.id if env.spec else None)
            elif name == "get_state_schema":
                values.append(self.state_schema.to_dict() if self.state_schema else None)
            else:
                value = getattr(env, name, None)
                values.append(dict(value) if isinstance(value, dict) else value)
        return values[0] if self.num_envs is None else values

    def _env_is_wrapped(self, wrapper: str) -> Any:
        """Whether each (sub-)env is wrapped in the class named ``module.QualName`` (or a subclass)."""
        envs = [self.env] if self.num_envs is None else list(getattr(self.env, "envs", []))
        if not envs:
            raise StateError(
                "env_is_wrapped cannot be answered here: the sub-envs live in worker processes "
                "(serve --vectorization async)"
            )
        answers = []
        for env in envs:
            found = False
            while isinstance(env, gym.Wrapper) and not found:
                found = any(f"{c.__module__}.{c.__qualname__}" == wrapper for c in type(env).__mro__)
                env = env.env
            answers.append(found)
        return answers[0] if self.num_envs is None else answers

    def close(self) -> None:
        self.env.close()
