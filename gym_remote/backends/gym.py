"""The ``gymnasium`` and ``python`` backends, and the adapter for old-style (gym < 0.26) envs."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import re
from functools import partial
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

from gym_remote.backends import DEFAULT_MAX_PROCESSES
from gym_remote.errors import BadRequestError, ConfigError, RemoteEnvError, ServerBusyError, clip, did_you_mean
from gym_remote.session import GymSession, Session, SessionOptions, choose_task

log = logging.getLogger(__name__)


class ProcessBudget:
    """The worker processes of ``--vectorization async`` (one per sub-env), bounded over all sessions.

    Args:
        limit: the most worker processes alive at once (``serve --max-processes``).
    """

    def __init__(self, limit: int = DEFAULT_MAX_PROCESSES) -> None:
        self.limit = int(limit)
        self._envs: list[gym.vector.VectorEnv] = []

    @property
    def in_use(self) -> int:
        self._envs = [e for e in self._envs if not e.closed]
        return sum(e.num_envs for e in self._envs)

    def check(self, n: int) -> None:
        """Refuse ``n`` more processes: BadRequestError past the limit alone, ServerBusyError past what is left.

        Raises:
            BadRequestError: ``n`` alone exceeds the limit (no wait makes room).
            ServerBusyError: other sessions' workers leave too few.
        """
        if n > self.limit:
            raise BadRequestError(
                f"num_envs={n} would start {n} worker processes, past this server's limit of {self.limit} "
                "(serve --max-processes raises it; serve --vectorization sync runs sub-envs without processes)"
            )
        used = self.in_use
        if used + n > self.limit:
            raise ServerBusyError(
                f"server busy: its sessions run {used} of {self.limit} worker processes, {n} more asked "
                "(serve --max-processes raises the limit); retry when sessions close"
            )

    def add(self, env: gym.vector.VectorEnv) -> None:
        self._envs.append(env)


def _vectorize(
    make_one: Any, opts: SessionOptions, vectorization: str, budget: ProcessBudget | None = None
) -> gym.vector.VectorEnv:
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
        budget = budget or ProcessBudget()
        budget.check(opts.num_envs)
        env = gym.vector.AsyncVectorEnv(fns, **kwargs)
        budget.add(env)
        return env
    return gym.vector.SyncVectorEnv(fns, **kwargs)


#: Modules whose entry points make gym-remote clients (``gym.make``'s ``gym_remote.entry:make_env``).
_CLIENT_MODULES = ("gym_remote.entry:", "gym_remote.env:", "gym_remote.vector:")

#: Keywords ``gym.make`` itself takes, on top of the env creator's own.
_MAKE_KEYWORDS = frozenset({"max_episode_steps", "disable_env_checker", "render_mode"})

_UNEXPECTED_KEYWORD = re.compile(r"unexpected keyword argument '(\w+)'")


def _keywords(creator: Any) -> tuple[set[str], bool]:
    """The keyword names ``creator`` takes (a class: along its MRO), and whether it takes ``**kwargs``."""
    try:
        params = inspect.signature(creator).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: nothing can be said
        return set(), True
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    open_ended = any(p.kind is p.VAR_KEYWORD for p in params)
    if open_ended and isinstance(creator, type):  # **kwargs passed up: suggest the bases' names too
        for base in creator.__mro__[1:]:
            init = base.__dict__.get("__init__")
            if init is not None and init is not object.__init__:
                with contextlib.suppress(TypeError, ValueError):
                    names |= {n for n in inspect.signature(init).parameters if n not in ("self", "args", "kwargs")}
    return names, open_ended


def check_task(task: str, kwargs: dict[str, Any], error: type[RemoteEnvError]) -> gym.envs.registration.EnvSpec:
    """The spec of Gymnasium id ``task``, after checking that it exists and takes ``kwargs``.

    Args:
        task: a registered id.
        kwargs: the keywords the env would be made with (``gym.make``'s own ones included).
        error: the exception class to raise (``ConfigError`` at start-up, ``BadRequestError`` at HELLO).

    Raises:
        error: the id is unknown (with close matches), or a keyword is one the env's constructor does
            not take (with close matches and the keywords it does take).
    """
    try:
        spec = gym.spec(task)
    except gym.error.Error:
        raise error(
            f"unknown Gymnasium id {task!r}.{did_you_mean(task, gym.registry)} The gymnasium backend serves "
            "registered ids: Gymnasium's own, gym_remote's, and those of modules imported with serve --import MODULE"
        ) from None
    try:
        creator = spec.entry_point if callable(spec.entry_point) else load_env_creator(str(spec.entry_point))
    except (ImportError, AttributeError) as exc:
        raise error(f"{task!r} is registered, but its entry point {spec.entry_point!r} does not load: {exc}") from None
    names, open_ended = _keywords(creator)
    known = names | set(spec.kwargs) | _MAKE_KEYWORDS
    unknown = sorted(set(kwargs) - known)
    if unknown and not open_ended:
        name = unknown[0]
        raise error(
            f"{task} takes no keyword {name!r}.{did_you_mean(name, known)} "
            f"Its keywords: {', '.join(sorted(names - {'self'}))}"
        )
    return spec


def _build_error(task: str, kwargs: dict[str, Any], exc: BaseException, error: type[RemoteEnvError]) -> RemoteEnvError:
    """``error`` saying that making ``task`` failed, with close matches for a misspelled keyword."""
    hint = ""
    match = _UNEXPECTED_KEYWORD.search(str(exc)) if isinstance(exc, TypeError) else None
    if match:
        with contextlib.suppress(gym.error.Error, ImportError, AttributeError):
            spec = gym.spec(task)
            creator = spec.entry_point if callable(spec.entry_point) else load_env_creator(str(spec.entry_point))
            hint = did_you_mean(match.group(1), _keywords(creator)[0] | _MAKE_KEYWORDS)
    text = clip(f"{type(exc).__name__}: {exc}", 600)
    return error(f"making {task!r} with keywords {clip(repr(kwargs), 300)} failed: {text}.{hint}")


class GymnasiumFactory:
    """Serve registered Gymnasium ids; clients may pick another id unless ``allow_any_task`` is False.

    Args:
        default_task: the id served when a client names none (``None``: clients must name one).
        default_kwargs: keywords for every env, under the client's own.
        vectorization: ``"sync"`` or ``"async"``: how a batch of ``num_envs`` sub-envs is stepped.
        allow_any_task: let clients name another registered id.
        max_processes: the most ``async`` worker processes alive at once, over all sessions.
    """

    def __init__(
        self,
        default_task: str | None,
        default_kwargs: dict[str, Any],
        *,
        vectorization: str = "sync",
        allow_any_task: bool = True,
        max_processes: int = DEFAULT_MAX_PROCESSES,
    ) -> None:
        self.default_task = default_task
        self.default_kwargs = dict(default_kwargs)
        self.vectorization = vectorization
        self.allow_any_task = allow_any_task
        self.processes = ProcessBudget(max_processes)

    def validate(self) -> None:
        """Check the default task at start-up: the id exists, takes the keywords, and one env builds.

        Raises:
            ConfigError: what is wrong, in one paragraph with close matches (a ``ValueError``).
        """
        if not self.default_task:
            return
        check_task(self.default_task, self.default_kwargs, ConfigError)
        try:
            env = gym.make(self.default_task, **self.default_kwargs)
        except Exception as exc:
            raise _build_error(self.default_task, self.default_kwargs, exc, ConfigError) from exc
        env.close()

    def __call__(self, opts: SessionOptions) -> Session:
        task = choose_task(opts, self.default_task, self.allow_any_task)
        if ":" in task and task != self.default_task:
            # gym.make("module:Env-v0") imports `module`: the network must not choose what gets imported.
            raise BadRequestError(
                f"module-qualified id {task!r} refused: the server registers its envs (serve --import MODULE)"
            )
        kwargs = {**self.default_kwargs, **opts.task_kwargs}
        if opts.max_episode_steps is not None:
            kwargs["max_episode_steps"] = opts.max_episode_steps
        spec = check_task(task, kwargs, BadRequestError)
        entry = spec.entry_point
        if not isinstance(entry, str):  # a callable: where it was defined
            entry = f"{getattr(entry, '__module__', '')}:{getattr(entry, '__qualname__', '')}"
        if entry.startswith(_CLIENT_MODULES):
            # A remote env inside the server would let a client start servers with any backend,
            # the python one included: code execution chosen by the network.
            raise BadRequestError(f"{task!r} is a gym-remote client env; a server does not serve clients")
        if opts.render_mode is not None:
            kwargs["render_mode"] = opts.render_mode
        make_one = partial(gym.make, task, **kwargs)
        try:
            if opts.num_envs is None:
                env = make_one()
            else:
                env = _vectorize(make_one, opts, self.vectorization, self.processes)
        except TypeError as exc:
            if not _UNEXPECTED_KEYWORD.search(str(exc)):
                raise
            raise _build_error(task, kwargs, exc, BadRequestError) from exc
        return GymSession(env, task, kwargs.get("max_episode_steps", spec.max_episode_steps))


def gymnasium_factory(default_task: str | None, default_kwargs: dict[str, Any], **options: Any) -> GymnasiumFactory:
    """The ``gymnasium`` backend's session factory (see :class:`GymnasiumFactory`)."""
    return GymnasiumFactory(default_task, default_kwargs, **options)


class PythonFactory:
    """Serve ``factory(**kwargs)`` from a ``pkg.module:factory`` entry point fixed by the server.

    Raises:
        ConfigError: the entry point does not import (at construction).
    """

    def __init__(
        self,
        entry: str,
        default_kwargs: dict[str, Any],
        *,
        vectorization: str = "sync",
        max_processes: int = DEFAULT_MAX_PROCESSES,
        **_: Any,
    ) -> None:
        from gym_remote.backends import load_entry_point

        try:
            self.build = load_entry_point(entry)
        except (ImportError, AttributeError, ValueError) as exc:
            module, _, attr = entry.partition(":")
            hint = ""
            if isinstance(exc, AttributeError):
                with contextlib.suppress(ImportError):
                    hint = did_you_mean(attr, dir(importlib.import_module(module)))
            raise ConfigError(
                f"cannot load the python backend's entry point {entry!r}: {type(exc).__name__}: {exc}.{hint} "
                f"It must be 'pkg.module:factory' with {module!r} importable on this server (PYTHONPATH)"
            ) from None
        self.entry = entry
        self.default_kwargs = dict(default_kwargs)
        self.vectorization = vectorization
        self.processes = ProcessBudget(max_processes)

    def make_one(self, opts: SessionOptions) -> gym.Env:
        kwargs = {**self.default_kwargs, **opts.task_kwargs}
        if opts.render_mode is not None:
            kwargs["render_mode"] = opts.render_mode
        env = self.build(**kwargs)
        if not isinstance(env, gym.Env):
            env = LegacyEnv(env)
        if opts.max_episode_steps is not None:
            env = gym.wrappers.TimeLimit(env, opts.max_episode_steps)
        return env

    def validate(self) -> None:
        """Build one env with the server's keywords and close it.

        Raises:
            ConfigError: the factory raised (a misspelled keyword names its close matches).
        """
        try:
            env = self.make_one(SessionOptions(task=self.entry))
        except Exception as exc:
            hint = ""
            match = _UNEXPECTED_KEYWORD.search(str(exc)) if isinstance(exc, TypeError) else None
            if match:
                hint = did_you_mean(match.group(1), _keywords(self.build)[0])
            raise ConfigError(
                f"{self.entry}(**{clip(repr(self.default_kwargs), 300)}) failed: "
                f"{clip(f'{type(exc).__name__}: {exc}', 600)}.{hint}"
            ) from exc
        env.close()

    def __call__(self, opts: SessionOptions) -> Session:
        choose_task(opts, self.entry, allow_any_task=False)  # clients never name code to import
        if opts.num_envs is None:
            return GymSession(self.make_one(opts), self.entry, opts.max_episode_steps)
        vector = _vectorize(partial(self.make_one, opts), opts, self.vectorization, self.processes)
        return GymSession(vector, self.entry, opts.max_episode_steps)


def python_factory(entry: str, default_kwargs: dict[str, Any], **options: Any) -> PythonFactory:
    """The ``python`` backend's session factory (see :class:`PythonFactory`)."""
    return PythonFactory(entry, default_kwargs, **options)


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
