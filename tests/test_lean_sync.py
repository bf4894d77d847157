"""LeanSyncVectorEnv steps exactly as Gymnasium's SyncVectorEnv: the oracle side by side, bit for bit."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from gym_remote.backends.gym import GymnasiumFactory
from gym_remote.session import LeanSyncVectorEnv, SessionOptions

MODES = ["next_step", "same_step", "disabled"]


class InfoEnv(gym.Env):
    """Dict observations, Tuple actions, infos of every kind on some steps and none on others."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Dict(
            {"pos": gym.spaces.Box(-10, 10, (2,), np.float32), "k": gym.spaces.Discrete(5)}
        )
        self.action_space = gym.spaces.Tuple((gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2,), np.float32)))
        self.t = 0

    def _obs(self) -> dict[str, Any]:
        return {"pos": self.np_random.uniform(-1, 1, 2).astype(np.float32), "k": int(self.np_random.integers(5))}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), ({"start": np.float32(1.5)} if self.np_random.random() < 0.5 else {})

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self.t += 1
        u = self.np_random.random()
        info: dict[str, Any] = {}
        if u < 0.3:
            info = {"n": self.t, "x": float(u), "name": f"s{self.t}", "vec": np.arange(3) * self.t}
        elif u < 0.4:
            info = {"nested": {"a": self.t, "flag": bool(self.t % 2)}}
        return self._obs(), float(action[0]) + u, u > 0.93, self.t >= 9, info


def _same(a: Any, b: Any, where: str = "") -> None:
    assert type(a) is type(b), where
    if isinstance(a, tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        if a.dtype == object:
            assert len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b, strict=True)), where
        else:
            np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert _eq(a, b), where


def _eq(x: Any, y: Any) -> bool:
    if isinstance(x, (dict, tuple, np.ndarray)):
        _same(x, y)
        return True
    return type(x) is type(y) and x == y


def _pair(make: Any, n: int, mode: str, copy: bool) -> tuple[gym.vector.SyncVectorEnv, LeanSyncVectorEnv]:
    kwargs = {"autoreset_mode": gym.vector.AutoresetMode[mode.upper()], "copy": copy}
    return gym.vector.SyncVectorEnv([make] * n, **kwargs), LeanSyncVectorEnv([make] * n, **kwargs)


@pytest.mark.parametrize("copy", [True, False])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("make", [lambda: gym.make("CartPole-v1"), InfoEnv], ids=["CartPole", "InfoEnv"])
def test_steps_bit_identical_to_sync_vector_env(make: Any, mode: str, copy: bool) -> None:
    ref, lean = _pair(make, 6, mode, copy)
    try:
        assert isinstance(lean, gym.vector.SyncVectorEnv)
        _same(ref.reset(seed=3), lean.reset(seed=3), "reset")
        ref.action_space.seed(7)
        ends = 0
        for t in range(300):
            actions = ref.action_space.sample()
            out_ref, out_lean = ref.step(actions), lean.step(actions)
            _same(out_ref, out_lean, f"step {t}")
            done = out_ref[2] | out_ref[3]
            ends += int(done.sum())
            if mode == "disabled" and done.any():
                _same(*(e.reset(options={"reset_mask": done}) for e in (ref, lean)), f"masked reset {t}")
        assert ends > 10  # episodes did end: the autoreset branch ran
    finally:
        ref.close()
        lean.close()


def test_the_lean_step_runs_where_it_was_checked() -> None:
    env = LeanSyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2)
    try:
        assert env._lean == gym.__version__.startswith("1.4.")
    finally:
        env.close()
    same = LeanSyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    try:
        assert not same._lean  # Gymnasium's own step
    finally:
        same.close()


def test_the_gymnasium_backend_serves_sub_envs_in_it() -> None:
    session = GymnasiumFactory("CartPole-v1", {})(SessionOptions(task="CartPole-v1", num_envs=3))
    try:
        assert type(session.env) is LeanSyncVectorEnv
        assert session.env.copy is False
    finally:
        session.close()
