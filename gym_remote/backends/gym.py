"""The ``gymnasium`` and ``python`` backends, and the adapter for old-style (gym < 0.26) envs."""

from __future__ import annotations

import inspect
import logging
from functools import partial
from typing import Any

import gymnasium as gym

from gym_remote.errors import BadRequestError
from gym_remote.session import GymSession, Session, SessionOptions, choose_task

log = logging.getLogger(__name__)


def _vectorize(make_one: Any, opts: SessionOptions, vectorization: str) -> gym.vector.VectorEnv:
    assert opts.num_envs is not None
    fns = [make_one] * opts.num_envs
    # copy=False: the reply is serialised (or sent zero-copy and fully delivered) before the
    # client can ask for the next step, so the vector env's own output copy is wasted work.
    kwargs: dict[str, Any] = {"copy": False}
    mode = getattr(gym.vector, "AutoresetMode", None)
    if mode is not None:
        kwargs["autoreset_mode"] = mode[opts.autoreset_mode.upper()]
    elif opts.autoreset_mode != "next_step":
        raise BadRequestError(f"this server's Gymnasium {gym.__version__} only supports next_step autoreset")
    if vectorization == "async":
        return gym.vector.AsyncVectorEnv(fns, **kwargs)
    return gym.vector.SyncVectorEnv(fns, **kwargs)


_CLIENT_MODULES = ("gym_remote.env:", "gym_remote.vector:")


def gymnasium_factory(
    default_task: str | None,
    default_kwargs: dict[str, Any],
    *,
    vectorization: str = "sync",
    allow_any_task: bool = True,
) -> Any:
    """Serve registered Gymnasium ids; clients may pick another id unless ``allow_any_task`` is False."""
    if default_task:
        gym.spec(default_task)  # a bad id fails at start-up, with its traceback, not at the first HELLO

    def factory(opts: SessionOptions) -> Session:
        task = choose_task(opts, default_task, allow_any_task)
        if ":" in task and task != default_task:
            # gym.make("module:Env-v0") imports `module`: the network must not choose what gets imported.
            raise BadRequestError(
                f"module-qualified id {task!r} refused: the server registers its envs (serve --import MODULE)"
            )
        kwargs = {**default_kwargs, **opts.task_kwargs}
        if opts.max_episode_steps is not None:
            kwargs["max_episode_steps"] = opts.max_episode_steps
        try:
            spec = gym.spec(task)
        except gym.error.Error as exc:
            raise BadRequestError(f"unknown Gymnasium id {task!r}: {exc}") from exc
        entry = spec.entry_point if isinstance(spec.entry_point, str) else ""
        if entry.startswith(_CLIENT_MODULES):
            # A remote env inside the server would let a client start servers with any backend,
            # the python one included: code execution chosen by the network.
            raise BadRequestError(f"{task!r} is a gym-remote client env; a server does not serve clients")
        if opts.render_mode is not None:
            kwargs["render_mode"] = opts.render_mode
        make_one = partial(gym.make, task, **kwargs)
        env = make_one() if opts.num_envs is None else _vectorize(make_one, opts, vectorization)
        return GymSession(env, task)

    return factory


def python_factory(entry: str, default_kwargs: dict[str, Any], *, vectorization: str = "sync", **_: Any) -> Any:
    """Serve ``factory(**kwargs)`` from a ``pkg.module:factory`` entry point fixed by the server."""
    from gym_remote.backends import load_entry_point

    build = load_entry_point(entry)

    def make_one(opts: SessionOptions) -> gym.Env:
        kwargs = {**default_kwargs, **opts.task_kwargs}
        if opts.render_mode is not None:
            kwargs["render_mode"] = opts.render_mode
        env = build(**kwargs)
        if not isinstance(env, gym.Env):
            env = LegacyEnv(env)
        if opts.max_episode_steps is not None:
            env = gym.wrappers.TimeLimit(env, opts.max_episode_steps)
        return env

    def factory(opts: SessionOptions) -> Session:
        choose_task(opts, entry, allow_any_task=False)  # clients never name code to import
        if opts.num_envs is None:
            return GymSession(make_one(opts), entry)
        return GymSession(_vectorize(partial(make_one, opts), opts, vectorization), entry)

    return factory


class LegacyEnv(gym.Env):
    """Gymnasium face for an old-style env: ``reset() -> obs``, ``step() -> (obs, r, done, info)``.

    ``done`` splits into ``terminated``/``truncated`` by the old ``TimeLimit.truncated`` info key,
    ``seed`` goes through the env's ``seed()`` method when its ``reset`` takes none, and the env's
    own ``get_state``/``set_state`` are kept when it has them.
    """

    def __init__(self, env: Any) -> None:
        for attr in ("observation_space", "action_space"):
            if not isinstance(getattr(env, attr, None), gym.Space):
                raise TypeError(f"{type(env).__name__} has no Gymnasium {attr}")
        self.legacy = env
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.metadata = dict(getattr(env, "metadata", {}) or {})
        self.render_mode = getattr(env, "render_mode", None)
        self._reset_params = set(inspect.signature(env.reset).parameters)
        for name in ("get_state", "set_state"):
            if callable(getattr(env, name, None)):
                setattr(self, name, getattr(env, name))
        if hasattr(env, "state_schema"):
            self.state_schema = env.state_schema

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        kwargs: dict[str, Any] = {}
        if "seed" in self._reset_params:
            kwargs["seed"] = seed
        elif seed is not None and callable(getattr(self.legacy, "seed", None)):
            self.legacy.seed(seed)
        if options is not None and "options" in self._reset_params:
            kwargs["options"] = options
        result = self.legacy.reset(**kwargs)
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict):
            return result
        return result, {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        result = self.legacy.step(action)
        if len(result) == 5:
            obs, reward, terminated, truncated, info = result
            return obs, float(reward), bool(terminated), bool(truncated), dict(info)
        obs, reward, done, info = result
        info = dict(info)
        truncated = bool(info.pop("TimeLimit.truncated", False))
        return obs, float(reward), bool(done) and not truncated, truncated, info

    def render(self) -> Any:
        return self.legacy.render() if callable(getattr(self.legacy, "render", None)) else None

    def close(self) -> None:
        if callable(getattr(self.legacy, "close", None)):
            self.legacy.close()
