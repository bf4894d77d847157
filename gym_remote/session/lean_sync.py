""":class:`LeanSyncVectorEnv`: Gymnasium's ``SyncVectorEnv`` with a leaner ``step`` in NEXT_STEP mode.

The server steps a client's sub-envs in a ``SyncVectorEnv`` (``serve --vectorization sync``). Its
``step`` in Gymnasium 1.4 pays, per call, two ``functools.singledispatch`` look-ups (``iterate``,
``concatenate``) and, per sub-env, attribute look-ups, an autoreset-mode comparison and an
``_add_info`` call even when the sub-env's info is empty (CartPole's always is). The subclass runs
the same statements in the same order without those, for the default NEXT_STEP mode and the spaces
whose batches are plain arrays; every other case, and every other Gymnasium version, is Gymnasium's
own ``step``. Results are bit-identical (``tests/test_lean_sync.py`` steps both side by side through
episode ends, with infos and their ``_key`` masks); everything but ``step`` is ``SyncVectorEnv``'s.
Measured in isolation on the development machine: CartPole N=1 20.0 -> 16.8 us, N=64 581 -> 550 us,
64 image sub-envs (84x84x3) 307 -> 280 us.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Box, Discrete, MultiBinary, MultiDiscrete
from gymnasium.vector.utils import concatenate, iterate

__all__ = ["LeanSyncVectorEnv"]

#: The Gymnasium versions whose ``SyncVectorEnv.step`` the lean step was checked against.
CHECKED_VERSIONS = ("1.4.",)

_MODE = getattr(gym.vector, "AutoresetMode", None)
_NEXT_STEP = _MODE.NEXT_STEP if _MODE is not None else None
#: Spaces Gymnasium iterates with ``iter(batch)`` and concatenates with ``np.stack(..., out=)``.
_ITER_PLAIN = (Box, MultiDiscrete, MultiBinary)
_STACK_PLAIN = (Box, Discrete, MultiDiscrete, MultiBinary)


class LeanSyncVectorEnv(gym.vector.SyncVectorEnv):
    """``SyncVectorEnv`` (same arguments) whose NEXT_STEP ``step`` skips per-call dispatch and empty infos."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lean = gym.__version__.startswith(CHECKED_VERSIONS) and self.autoreset_mode == _NEXT_STEP
        self._iter_plain = type(self.action_space) in _ITER_PLAIN
        self._stack_plain = type(self.single_observation_space) in _STACK_PLAIN

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._lean:
            return super().step(actions)
        # Gymnasium 1.4's SyncVectorEnv.step, NEXT_STEP branch, statement for statement.
        actions_iter = iter(actions) if self._iter_plain else iterate(self.action_space, actions)
        infos: dict[str, Any] = {}
        env_obs, rewards = self._env_obs, self._rewards
        terminations, truncations = self._terminations, self._truncations
        autoreset, add_info = self._autoreset_envs, self._add_info
        for i, (action, env) in enumerate(zip(actions_iter, self.envs, strict=True)):
            if autoreset[i]:
                env_obs[i], env_info = env.reset()
                rewards[i] = 0.0
                terminations[i] = False
                truncations[i] = False
            else:
                env_obs[i], rewards[i], terminations[i], truncations[i], env_info = env.step(action)
            if env_info or type(env_info) is not dict:  # an empty dict adds nothing (anything else: as Gymnasium)
                infos = add_info(infos, env_info, i)
        if self._stack_plain:
            self._observations = np.stack(env_obs, axis=0, out=self._observations)
        else:
            self._observations = concatenate(self.single_observation_space, env_obs, self._observations)
        self._autoreset_envs = np.logical_or(terminations, truncations)
        return (
            deepcopy(self._observations) if self.copy else self._observations,
            np.copy(rewards),
            np.copy(terminations),
            np.copy(truncations),
            infos,
        )
