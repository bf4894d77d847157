"""A trivial env whose observation is a large image-like array: for measuring transport, not RL."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class PayloadEnv(gym.Env):
    """Observations of ``shape`` ``uint8`` (default 1 MiB); reward is the step count.

    The observation buffer is made once, so a benchmark measures moving it, not producing it.
    """

    metadata = {"render_modes": []}

    def __init__(self, shape: tuple[int, ...] | list[int] = (1024, 1024), episode_length: int = 1000) -> None:
        self.observation_space = gym.spaces.Box(0, 255, tuple(shape), np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.episode_length = episode_length
        self._obs = np.zeros(tuple(shape), np.uint8)
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._t = 0
        self._obs.flat[0] = 0
        return self._obs, {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._t += 1
        self._obs.flat[0] = self._t % 256
        return self._obs, float(self._t), False, self._t >= self.episode_length, {}
