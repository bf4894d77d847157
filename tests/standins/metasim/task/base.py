"""STAND-IN for ``metasim.task.base.BaseTaskEnv`` (same constructor, step/reset contract and defaults:
observation = the TensorState itself, empty Box spaces, zero reward, no reset inside step)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from metasim.sim.base import BaseSimHandler


class BaseTaskEnv:
    max_episode_steps = 100
    scenario: Any = None

    def __init__(self, scenario: Any = None, device: str | torch.device | None = None) -> None:
        self.scenario = scenario if scenario is not None else type(self).scenario
        self.num_envs = self.scenario.num_envs
        self.handler = BaseSimHandler(self.scenario)
        self.handler.launch()
        self._initial_states = self._get_initial_states()
        self.device = self.handler.device
        self._episode_steps = torch.zeros(self.num_envs, dtype=torch.int32)

    def _get_initial_states(self) -> Any:
        return None

    def _observation(self, env_states: Any) -> Any:
        return env_states

    def _reward(self, env_states: Any) -> torch.Tensor:
        return torch.zeros(self.num_envs)

    def _terminated(self, env_states: Any) -> torch.Tensor:
        return torch.zeros(self.num_envs, dtype=torch.bool)

    def _time_out(self, env_states: Any) -> torch.Tensor:
        return self._episode_steps >= self.max_episode_steps

    def step(self, actions: Any):
        self.handler.set_dof_targets(actions)
        self.handler.simulate()
        env_states = self.handler.get_states(mode="tensor")
        rewards = self._reward(env_states)
        terminated = self._terminated(env_states)
        self._episode_steps = self._episode_steps + 1
        timeout = self._time_out(env_states)
        return (
            self._observation(env_states),
            rewards,
            terminated,
            timeout,
            {"privileged_observation": env_states},
        )

    def reset(self, states: Any = None, env_ids: list[int] | None = None):
        if env_ids is None:
            env_ids = list(range(self.num_envs))
        states_to_set = self._initial_states if states is None else states
        self.handler.set_states(states=states_to_set, env_ids=env_ids)
        env_states = self.handler.get_states(env_ids=env_ids, mode="tensor")
        self._episode_steps[torch.tensor(env_ids, dtype=torch.long)] = 0
        return self._observation(env_states), {"privileged_observation": env_states}

    def close(self) -> None:
        self.handler.close()

    @property
    def observation_space(self) -> gym.Space:
        return gym.spaces.Box(low=-np.inf, high=np.inf, shape=(0,))

    @property
    def action_space(self) -> gym.Space:
        return gym.spaces.Box(low=-np.inf, high=np.inf, shape=(0,))
