"""A trivial env whose observation is a large image-like array: for measuring transport, not RL."""

from __future__ import annotations

import itertools
from typing import Any

import gymnasium as gym
import numpy as np

#: What a payload holds: ``zeros`` (compresses to almost nothing), ``noise`` (uniform random bytes:
#: incompressible), ``camera`` (a camera-like frame: flat regions of a few shades over three quarters,
#: sensor-like noise of 16 levels over the rest; zstd level 1 shrinks it ~8x, lz4 ~4x).
CONTENTS = ("zeros", "noise", "camera")


def payload(shape: tuple[int, ...], content: str = "zeros", seed: int = 0) -> np.ndarray:
    """A ``uint8`` array of ``shape`` holding ``content`` (see :data:`CONTENTS`), the same for a seed.

    Raises:
        ValueError: an unknown ``content``.
    """
    if content not in CONTENTS:
        raise ValueError(f"content must be one of {', '.join(CONTENTS)}, got {content!r}")
    if content == "zeros":
        return np.zeros(shape, np.uint8)
    rng = np.random.default_rng(seed)
    if content == "noise":
        return rng.integers(0, 256, shape, np.uint8)
    flat = np.empty(int(np.prod(shape)), np.uint8)
    quarter = flat.size // 4
    bands = np.linspace(0, 3 * quarter, 7, dtype=int)  # six flat bands: sky, walls, floor...
    for i, (lo, hi) in enumerate(itertools.pairwise(bands)):
        flat[lo:hi] = 40 * i + 10
    flat[3 * quarter :] = 100 + rng.integers(0, 16, flat.size - 3 * quarter, np.uint8)  # a textured object
    return flat.reshape(shape)


class PayloadEnv(gym.Env):
    """Observations of ``shape`` ``uint8`` (default 1 MiB) holding ``content``; reward is the step count.

    The observation buffer is made once, so a benchmark measures moving it, not producing it.
    """

    metadata = {"render_modes": []}

    def __init__(
        self, shape: tuple[int, ...] | list[int] = (1024, 1024), episode_length: int = 1000, content: str = "zeros"
    ) -> None:
        self.observation_space = gym.spaces.Box(0, 255, tuple(shape), np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.episode_length = episode_length
        self._obs = payload(tuple(shape), content)
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
