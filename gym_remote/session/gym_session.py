"""A :class:`Session` over any Gymnasium env or ``VectorEnv``, and its state access (own hooks or MuJoCo)."""

from __future__ import annotations

import logging
from typing import Any

import gymnasium as gym
import numpy as np

from gym_remote.errors import BadRequestError, StateError
from gym_remote.protocol import CALLABLE_ALLOWLIST, GOAL_METHODS, ObjectList
from gym_remote.session.base import Session, is_wrapped_in
from gym_remote.state import MujocoBinding, StateSchema, check_state, mujoco_schema

log = logging.getLogger("gym_remote.session")


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


def _has_method(env: Any, name: str) -> bool:
    """Whether ``env`` (through its wrappers, as ``get_wrapper_attr`` looks) has a method ``name``."""
    try:
        return callable(env.get_wrapper_attr(name))
    except AttributeError:
        return False


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
        self._goal_envs: list[Any] = subs if isinstance(env, gym.vector.VectorEnv) else [env]
        head = self._goal_envs[0] if self._goal_envs else None  # none: sub-envs in worker processes
        self.remote_methods = tuple(sorted(m for m in GOAL_METHODS if head is not None and _has_method(head, m)))

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
        # np.asarray returns Gymnasium's own float64 and bool arrays as they are (no copy); the
        # casts are for other vector envs.
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
        """The env's frame; a render mode the server lacks the packages for is refused in one line.

        Raises:
            BadRequestError: the env's renderer is not installed on the server (Gymnasium's
                ``DependencyNotInstalled``, e.g. classic-control's pygame): the message says which
                package the server's operator installs, not a 40-line remote traceback.
        """
        try:
            return self.env.render()
        except gym.error.DependencyNotInstalled as exc:
            first = (str(exc).splitlines() or [""])[0]
            mode = getattr(self.env, "render_mode", None)
            message = f"render_mode={mode!r} cannot render on this server: {first} (on the server)"
            raise BadRequestError(message) from None

    def call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if name == "env_is_wrapped":  # SB3's VecEnv.env_is_wrapped, answered from the real wrapper chains
            return self._env_is_wrapped(str(args[0]) if args else "")
        if name in self.remote_methods:  # a goal env's compute_reward...: the env's own code, per (sub-)env
            values = [env.get_wrapper_attr(name)(*args, **kwargs) for env in self._goal_envs]
            return values[0] if self.num_envs is None else values
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
        answers = [is_wrapped_in(env, wrapper) for env in envs]
        return answers[0] if self.num_envs is None else answers

    def close(self) -> None:
        self.env.close()
