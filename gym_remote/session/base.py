"""The seam between the server loop and a simulator: :class:`Session`, one client's env(s)."""

from __future__ import annotations

import abc
from typing import Any

import gymnasium as gym

from gym_remote.checks import check_reset_mask
from gym_remote.errors import BadRequestError, StateError, clip
from gym_remote.session.limits import _same
from gym_remote.spaces import space_to_dict, validate_action
from gym_remote.state import StateSchema


def is_wrapped_in(env: Any, wrapper: str) -> bool:
    """Whether ``env``'s Gymnasium wrapper chain holds the class named ``module.QualName``, or a subclass
    of it: what SB3's ``VecEnv.env_is_wrapped`` asks of each sub-env, answered by class name because
    the client's class object cannot travel."""
    while isinstance(env, gym.Wrapper):
        if any(f"{c.__module__}.{c.__qualname__}" == wrapper for c in type(env).__mro__):
            return True
        env = env.env
    return False


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
    #: The goal-conditioned methods (``protocol.GOAL_METHODS``) :meth:`call` runs, listed in the HELLO
    #: reply's ``methods`` so a client offers exactly those (SB3 tells a goal env by ``compute_reward``).
    remote_methods: tuple[str, ...] = ()

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
    def reset(self, *, seed: int | list[int] | None, options: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
        """Reset the env, or every sub-env (those ``options["reset_mask"]`` marks, when given).

        Args:
            seed: already checked by :meth:`check_reset`: ``None``, an int >= 0, or (a batched
                session) one int-or-None per sub-env.
            options: ``None``, one map for every sub-env, or (only where :attr:`per_env_options`)
                one map per sub-env.

        Returns:
            ``(obs, info)`` as the env returns them: a single observation and info for a single-env
            session; for ``num_envs = N`` the batch (leading dimension ``N``) and a vector info (its
            ``_``-prefixed masks), as Gymnasium's vector envs give them.

        Raises:
            BadRequestError: options this env cannot honour (e.g. a ``reset_mask`` on an env that
                resets all its sub-envs at once), before anything is reset.
        """

    @abc.abstractmethod
    def step(self, action: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """One step: of the env, or of every sub-env at once.

        Args:
            action: already checked against :attr:`action_space` (single) or its batch (``N``
                rows, one per sub-env).

        Returns:
            ``(obs, reward, terminated, truncated, info)`` with the env's own types: for a single
            env a Python ``float`` or numpy scalar reward and ``bool`` flags; batched, ``(N,)``
            arrays (``float64`` rewards, ``bool`` flags) after the session's
            :attr:`autoreset_mode` is applied (``final_obs``/``final_info`` for ``same_step``).

        Raises:
            BadRequestError: a step the autoreset mode forbids (``disabled`` with finished sub-envs).
        """

    def get_state(self) -> Any:
        """The simulator state in :attr:`state_schema`'s layout.

        Returns:
            float64 ``(D,)`` for a single env, ``(N, D)`` batched (one row per sub-env).

        Raises:
            StateError: the env exposes no state (the default; :attr:`has_state` is then False).
        """
        raise StateError(f"this env ({self.task}) does not expose its state")

    def set_state(self, state: Any) -> dict[str, Any] | None:
        """Write a state in :attr:`state_schema`'s layout (float64 ``(D,)`` or ``(N, D)``).

        Returns:
            ``None``, or ``{"not_restored": [names]}`` for parts the simulator could not restore
            (e.g. ``"cube/root_vel"``: MetaSim's MuJoCo handler zeroes velocities).

        Raises:
            StateError: the env cannot set its state (the default), or ``state`` has the wrong shape.
        """
        raise StateError(f"this env ({self.task}) cannot set its state")

    def render(self) -> Any:
        """A frame (``uint8 (H, W, 3)``), text for ``ansi``, or ``None`` when the session has no render mode."""
        return None

    def call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Call an allow-listed attribute or method of the env (see :data:`~gym_remote.protocol.CALLABLE_ALLOWLIST`).

        Raises:
            StateError: ``name`` is not callable remotely on this env.
        """
        raise StateError(f"{name!r} is not callable remotely on this env")

    @abc.abstractmethod
    def close(self) -> None:
        """Close the env and free what the session holds; called once, also when the server stops."""

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
            "methods": list(self.remote_methods),
        }
