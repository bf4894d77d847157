"""STAND-IN for ``metasim.task.rl_task.RLTaskEnv``: tensor observations, Box spaces from the robot's
joint limits, and finished sub-envs reset INSIDE step (as the real class does)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from metasim.task.base import BaseTaskEnv


class RLTaskEnv(BaseTaskEnv):
    max_episode_steps = 1000

    def _observation(self, env_states: Any) -> torch.Tensor:
        parts = [r.joint_pos for r in env_states.robots.values()] + [
            o.root_state[:, :3] for o in env_states.objects.values()
        ]
        return torch.cat(parts, dim=-1).float()

    def step(self, actions: Any):
        obs, reward, terminated, time_out, info = super().step(actions)
        done = (terminated | time_out).nonzero(as_tuple=False).squeeze(-1)
        if done.numel():
            self.reset(env_ids=done.tolist())
            obs = obs.clone()
            obs[done] = self._observation(self.handler.get_states(mode="tensor"))[done]
        return obs, reward, terminated, time_out, info

    def reset(self, states: Any = None, env_ids: list[int] | None = None):
        super().reset(states, env_ids)
        self.handler._state_cache_expire = True
        return self._observation(self.handler.get_states(mode="tensor")), {}

    @property
    def observation_space(self) -> gym.Space:
        dim = sum(len(r.joint_limits) for r in self.handler.robots) + 3 * len(self.handler.objects)
        return gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)

    @property
    def action_space(self) -> gym.Space:
        robot = self.handler.robots[0]
        names = self.handler.get_joint_names(robot.name, sort=True)
        low = np.array([robot.joint_limits[j][0] for j in names], np.float32)
        high = np.array([robot.joint_limits[j][1] for j in names], np.float32)
        return gym.spaces.Box(low, high, dtype=np.float32)
