"""Small deterministic envs the tests serve through real server processes (``--import tests.envs``)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class DictObsEnv(gym.Env):
    """Dict and Tuple observations of several dtypes, seeded dynamics, a numpy scalar in info."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, episode_length: int = 40) -> None:
        self.render_mode = render_mode
        self.episode_length = episode_length
        self.observation_space = spaces.Dict(
            {
                "pos": spaces.Box(-np.inf, np.inf, (3,), np.float64),
                "image": spaces.Box(0, 255, (8, 8, 3), np.uint8),
                "mode": spaces.Discrete(4, start=1),
                "flags": spaces.MultiBinary(5),
                "pair": spaces.Tuple((spaces.Discrete(3), spaces.Box(-1, 1, (2,), np.float32))),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
        self._pos = np.zeros(3)
        self._t = 0

    def _obs(self) -> dict[str, Any]:
        r = self.np_random
        return {
            "pos": self._pos.copy(),
            "image": r.integers(0, 256, (8, 8, 3), dtype=np.uint8),
            "mode": int(r.integers(1, 5)),
            "flags": r.integers(0, 2, 5).astype(np.int8),
            "pair": (int(r.integers(0, 3)), r.uniform(-1, 1, 2).astype(np.float32)),
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._pos = self.np_random.normal(size=3)
        self._t = 0
        return self._obs(), {"start": self._pos.copy()}

    def step(self, action):
        self._t += 1
        self._pos = self._pos + np.asarray(action, np.float64)
        dist = float(np.linalg.norm(self._pos))
        info = {"dist": np.float32(dist), "t": self._t, "tag": "step"}
        return self._obs(), -dist, dist < 0.1, self._t >= self.episode_length, info

    def render(self):
        frame = np.zeros((16, 16, 3), np.uint8)
        frame[..., 0] = self._t % 256
        return frame


class RaisingEnv(gym.Env):
    """Raises inside step when the action is 2: the server must report it and keep serving."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-10, 10, (2,), np.float32)
        self.action_space = spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        if action == 2:
            raise RuntimeError("boom: action 2 breaks this env")
        return np.full(2, action, np.float32), 1.0, False, False, {}


class OldStyleEnv:
    """A gym<0.26 env: reset() -> obs, step() -> (obs, reward, done, info), seed(), get/set_state."""

    def __init__(self, limit: int = 5) -> None:
        self.observation_space = spaces.Box(-100, 100, (1,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.limit = limit
        self._x = 0.0
        self._t = 0
        self._rng = np.random.default_rng()

    def seed(self, seed=None):
        self._rng = np.random.default_rng(seed)
        return [seed]

    def reset(self):
        self._x, self._t = float(self._rng.integers(0, 10)), 0
        return np.array([self._x], np.float32)

    def step(self, action):
        self._t += 1
        self._x += 1.0 if action else -1.0
        done = self._t >= self.limit
        info = {"TimeLimit.truncated": True} if done else {}
        return np.array([self._x], np.float32), self._x, done, info

    def get_state(self):
        return {"x": self._x, "t": self._t}

    def set_state(self, state):
        self._x, self._t = float(state["x"]), int(state["t"])


class ChattyEnv(RaisingEnv):
    """Prints 1 KiB to stdout every step, as some simulators do."""

    def step(self, action):
        print("x" * 1024, flush=True)
        return super().step(action)


def make_old_style(limit: int = 5) -> OldStyleEnv:
    return OldStyleEnv(limit)


for _id, _entry in (
    ("tests/DictObs-v0", "tests.envs:DictObsEnv"),
    ("tests/Raising-v0", "tests.envs:RaisingEnv"),
    ("tests/Chatty-v0", "tests.envs:ChattyEnv"),
):
    if _id not in gym.registry:
        gym.register(_id, entry_point=_entry)


class SlowBuildEnv(RaisingEnv):
    """Takes ``build_seconds`` to construct, as a GPU simulator does: clients must wait, not fail."""

    def __init__(self, build_seconds: float = 3.0) -> None:
        import time

        time.sleep(build_seconds)
        super().__init__()


if "tests/SlowBuild-v0" not in gym.registry:
    gym.register("tests/SlowBuild-v0", entry_point="tests.envs:SlowBuildEnv")


def wire_spaces() -> dict[str, spaces.Space]:
    """Fresh instances of the spaces beyond Box and Discrete that must travel, by name."""
    box = spaces.Box(-1.0, 1.0, (2,), np.float32)
    return {
        "graph": spaces.Graph(box, spaces.Discrete(3)),
        "graph-no-edges": spaces.Graph(spaces.Discrete(4), None),
        "sequence": spaces.Sequence(box),
        "sequence-stacked": spaces.Sequence(spaces.Discrete(5), stack=True),
        "oneof": spaces.OneOf((spaces.Discrete(3), box)),
        "text": spaces.Text(8),
        "dict-with-graph": spaces.Dict({"g": spaces.Graph(box, box), "x": box}),
        "tuple-with-sequence": spaces.Tuple((spaces.Sequence(spaces.Discrete(2)), spaces.Discrete(2))),
    }


def sb3_spaces() -> dict[str, spaces.Space]:
    """The spaces SB3's own VecEnv tests step with per-env actions (``actions[i]``), Dict and Tuple included."""
    parts = {
        "discrete": spaces.Discrete(2),
        "multidiscrete": spaces.MultiDiscrete([2, 3]),
        "multibinary": spaces.MultiBinary(3),
        "continuous": spaces.Box(np.zeros(2, np.float32), np.ones(2, np.float32)),
    }
    return {
        **{f"sb3-{k}": v for k, v in parts.items()},
        "sb3-dict": spaces.Dict(parts),
        "sb3-tuple": spaces.Tuple(parts.values()),
    }


class SpaceEchoEnv(gym.Env):
    """Observation and action space ``wire_spaces()[space]`` (or ``sb3_spaces()``); a step returns the action it got as obs.

    Samples come from ``np_random``, so seeded runs (and autoresets after them) are reproducible.
    """

    def __init__(self, space: str = "graph", episode_length: int = 7) -> None:
        made = {**wire_spaces(), **sb3_spaces()}
        self.observation_space = made[space]
        self.action_space = {**wire_spaces(), **sb3_spaces()}[space]
        self.episode_length = episode_length
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.observation_space.seed(int(self.np_random.integers(2**31)))
        self._t = 0
        return self.observation_space.sample(), {"t": self._t}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"{action!r} is not in {self.action_space}")
        self._t += 1
        return action, float(self._t), False, self._t >= self.episode_length, {"t": self._t}


if "tests/SpaceEcho-v0" not in gym.registry:
    gym.register("tests/SpaceEcho-v0", entry_point="tests.envs:SpaceEchoEnv")


class EpisodeCounterEnv(gym.Env):
    """Reset info counts episodes; odd episodes terminate after 3 steps, even ones run into the limit.

    For SB3's contract: ``reset_infos`` must follow automatic resets, ``TimeLimit.truncated`` be
    on every step (registered with ``max_episode_steps=5``).
    """

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-10.0, 10.0, (2,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.episodes = 0
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.episodes += 1
        self._t = 0
        return self.np_random.uniform(-1, 1, 2).astype(np.float32), {"episode": self.episodes}

    def step(self, action):
        self._t += 1
        obs = np.array([self._t, action], np.float32)
        terminated = self.episodes % 2 == 1 and self._t >= 3
        return obs, float(action) - 0.5, terminated, False, {"t": self._t}


if "tests/EpisodeCounter-v0" not in gym.registry:
    gym.register("tests/EpisodeCounter-v0", entry_point="tests.envs:EpisodeCounterEnv", max_episode_steps=5)


class FramesEnv(EpisodeCounterEnv):
    """``EpisodeCounterEnv`` rendering 16x16 frames at a ``render_fps`` of 10 (not SB3's default 30)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__()
        self.render_mode = render_mode

    def render(self):
        frame = np.zeros((16, 16, 3), np.uint8)
        frame[..., 1] = 16 * self._t
        return frame


if "tests/Frames-v0" not in gym.registry:
    gym.register("tests/Frames-v0", entry_point="tests.envs:FramesEnv", max_episode_steps=5)
