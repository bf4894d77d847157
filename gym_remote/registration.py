"""Gymnasium ids for remote envs, so that code which only calls ``gym.make(env_id)`` reaches a server.

Importing :mod:`gym_remote` registers ``Remote-IsaacSim-v0`` (single and vector entry points) and the
built-in tasks. Scripts that take an env id and call ``gym.make(env_id)`` (CleanRL, RL Zoo, most
tutorials) then reach a server with no code change in one of two ways:

- **Ids bound in code**, importable by Gymnasium's ``module:id`` form::

      # mytasks.py
      import gym_remote
      gym_remote.register("Cartpole-Remote-v0", host="127.0.0.1", port=5555, task="Isaac-Cartpole")

  and then ``python cleanrl_ppo.py --env-id mytasks:Cartpole-Remote-v0``: Gymnasium imports
  ``mytasks`` before it looks the id up.

- **Ids from the environment**, with nothing written at all: ``GYM_REMOTE_ENVS`` holds a JSON object
  of ``{id: {keyword: value}}``, registered when :mod:`gym_remote` is imported, so
  ``--env-id gym_remote:Cartpole-Remote-v0`` works::

      export GYM_REMOTE_ENVS='{"Cartpole-Remote-v0": {"host": "127.0.0.1", "port": 5555, "task": "Isaac-Cartpole"}}'

The keywords bound to an id are :class:`~gym_remote.env.RemoteEnv`'s (``host``, ``port``, ``task``,
``task_kwargs``, ``timeout``...); keywords given to ``gym.make`` win over them, as for any Gymnasium
spec. They are checked where every keyword is checked, when the env is made.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from gym_remote.errors import ConfigError

__all__ = ["ENVS_VARIABLE", "REMOTE_ENV_ID", "register", "register_builtin", "register_from_environment"]

#: The id every remote env is reachable by (``host``/``task`` given to ``gym.make``).
REMOTE_ENV_ID = "Remote-IsaacSim-v0"
#: The environment variable read by :func:`register_from_environment`.
ENVS_VARIABLE = "GYM_REMOTE_ENVS"

_ENTRY_POINT = "gym_remote.entry:make_env"
_VECTOR_ENTRY_POINT = "gym_remote.entry:make_vector_env"


def register(env_id: str, *, max_episode_steps: int | None = None, **kwargs: Any) -> None:
    """Register ``env_id`` as a remote env with ``kwargs`` bound (``host``, ``port``, ``task``...).

    ``gym.make(env_id)`` then builds a :class:`~gym_remote.env.RemoteEnv` and ``gym.make_vec(env_id,
    num_envs=N)`` a :class:`~gym_remote.vector.RemoteVectorEnv` (one batched session), both with
    these keywords; keywords given to ``gym.make`` win. Registering an id again replaces it.

    Args:
        env_id: a Gymnasium id (``"[namespace/]Name-vN"``).
        max_episode_steps: a client-side time limit to ask the server for (default: the server's).
        **kwargs: :class:`~gym_remote.env.RemoteEnv` keywords, checked when the env is made.

    Raises:
        TypeError: ``env_id`` is not a string.
        gymnasium.error.Error: ``env_id`` is not a valid Gymnasium id.

    Example:
        >>> import gymnasium as gym
        >>> import gym_remote
        >>> gym_remote.register("RemoteCartPole-v1", task="CartPole-v1")
        >>> gym.spec("RemoteCartPole-v1").kwargs
        {'task': 'CartPole-v1'}
    """
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a string, got {type(env_id).__name__}")
    bound = dict(kwargs)
    if max_episode_steps is not None:
        bound["max_episode_steps"] = max_episode_steps
    gym.registry.pop(env_id, None)
    gym.register(
        env_id,
        entry_point=_ENTRY_POINT,
        vector_entry_point=_VECTOR_ENTRY_POINT,
        nondeterministic=True,  # the remote simulator decides; a GPU simulator is not bit-exact
        kwargs=bound,
    )


def register_from_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """Register the ids that ``GYM_REMOTE_ENVS`` describes; returns them (none when it is unset).

    Raises:
        ConfigError: the variable is not a JSON object of ``{id: {keyword: value}}``.
    """
    text = (os.environ if environ is None else environ).get(ENVS_VARIABLE, "").strip()
    if not text:
        return []
    try:
        table = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{ENVS_VARIABLE} is not JSON ({exc}): {text[:200]!r}") from None
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise ConfigError(
            f"{ENVS_VARIABLE} must be a JSON object of {{id: {{keyword: value}}}}, e.g. "
            '\'{"Cartpole-Remote-v0": {"host": "127.0.0.1", "port": 5555, "task": "Isaac-Cartpole"}}\''
        )
    for env_id, kwargs in table.items():
        register(env_id, **kwargs)
    return list(table)


def register_builtin() -> None:
    """``Remote-IsaacSim-v0`` and the built-in tasks (kept when already registered)."""
    specs: dict[str, dict[str, Any]] = {
        REMOTE_ENV_ID: dict(
            entry_point=_ENTRY_POINT,
            vector_entry_point=_VECTOR_ENTRY_POINT,
            nondeterministic=True,  # the remote simulator decides; IsaacSim on a GPU is not bit-exact
        ),
        "gym_remote/StackCube-v0": dict(entry_point="gym_remote.tasks.stack_cube:StackCubeEnv", max_episode_steps=250),
        "gym_remote/Payload-v0": dict(entry_point="gym_remote.tasks.payload:PayloadEnv", disable_env_checker=True),
    }
    for env_id, spec in specs.items():
        if env_id not in gym.registry:
            gym.register(env_id, **spec)
