"""Stack-cube task: kinematics, Gymnasium contract, determinism, expert and rendering (real MuJoCo)."""

from __future__ import annotations

import os
import sys

# MuJoCo fixes its GL backend at import: default to EGL on a display-less Linux box.
if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

import warnings
from collections.abc import Iterator

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from gym_remote.tasks.expert import StackCubeExpert, evaluate_expert
from gym_remote.tasks.stack_cube import (
    ARM_JOINTS,
    CUBE_HALF,
    OBS_DIM,
    OBS_SLICES,
    StackCubeEnv,
)

# Craig's modified DH parameters of the Franka Panda: (a, d, alpha) per joint, then the flange.
PANDA_DH = [
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -np.pi / 2),
    (0.0, 0.316, np.pi / 2),
    (0.0825, 0.0, np.pi / 2),
    (-0.0825, 0.384, -np.pi / 2),
    (0.0, 0.0, np.pi / 2),
    (0.088, 0.0, np.pi / 2),
]
FLANGE_D = 0.107
TCP_OFFSET = 0.1034


def _rot_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1.0]])


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])


def _trans(x: float, y: float, z: float) -> np.ndarray:
    out = np.eye(4)
    out[:3, 3] = x, y, z
    return out


def dh_flange(q: np.ndarray) -> np.ndarray:
    """Flange pose in the robot base frame: prod RotX(alpha) TransX(a) RotZ(theta) TransZ(d)."""
    pose = np.eye(4)
    for (a, d, alpha), theta in zip(PANDA_DH, q, strict=True):
        pose = pose @ _rot_x(alpha) @ _trans(a, 0, 0) @ _rot_z(theta) @ _trans(0, 0, d)
    return pose @ _trans(0, 0, FLANGE_D)


@pytest.fixture
def env() -> Iterator[StackCubeEnv]:
    env = StackCubeEnv()
    yield env
    env.close()


def test_model_matches_panda_dh_kinematics(env: StackCubeEnv) -> None:
    m, d = env.model, env.data
    ranges = np.array([m.joint(j).range for j in ARM_JOINTS])
    rng = np.random.default_rng(0)
    for _ in range(5):
        q = rng.uniform(ranges[:, 0], ranges[:, 1])
        d.qpos[[m.joint(j).qposadr[0] for j in ARM_JOINTS]] = q
        mujoco.mj_kinematics(m, d)
        base = np.eye(4)
        base[:3, :3] = d.body("franka").xmat.reshape(3, 3)
        base[:3, 3] = d.body("franka").xpos
        # The real hand is mounted on the flange turned by -45 degrees about z.
        expected = base @ dh_flange(q) @ _rot_z(-np.pi / 4)
        np.testing.assert_allclose(d.body("panda_hand").xpos, expected[:3, 3], atol=1e-9)
        np.testing.assert_allclose(d.body("panda_hand").xmat.reshape(3, 3), expected[:3, :3], atol=1e-9)
        tcp = expected @ np.array([0, 0, TCP_OFFSET, 1.0])
        np.testing.assert_allclose(d.site("tcp").xpos, tcp[:3], atol=1e-9)


def test_model_structure(env: StackCubeEnv) -> None:
    m = env.model
    assert m.body("franka").parentid == 0 and m.body("franka").jntnum == 0  # fixed base
    assert {int(t) for t in m.jnt_type} <= {
        mujoco.mjtJoint.mjJNT_FREE,
        mujoco.mjtJoint.mjJNT_HINGE,
        mujoco.mjtJoint.mjJNT_SLIDE,
    }
    for name in ("panda_finger_joint1", "panda_finger_joint2"):
        np.testing.assert_allclose(m.joint(name).range, [0.0, 0.04])
    assert m.joint("cube").type == mujoco.mjtJoint.mjJNT_FREE
    assert m.joint("base").type == mujoco.mjtJoint.mjJNT_FREE


def test_check_env_passes(env: StackCubeEnv) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*infinity.*")  # the unbounded Box is intended
        warnings.filterwarnings("ignore", message=".*spec.*")
        check_env(env)


def test_observation_layout(env: StackCubeEnv) -> None:
    obs, _ = env.reset(seed=3)
    assert obs.shape == (OBS_DIM,) and obs.dtype == np.float32
    covered = sorted(i for s in OBS_SLICES.values() for i in range(OBS_DIM)[s])
    assert covered == list(range(OBS_DIM))
    np.testing.assert_allclose(obs[OBS_SLICES["tcp_pos"]], env.data.site("tcp").xpos, atol=1e-6)
    np.testing.assert_allclose(obs[OBS_SLICES["cube_pos"]], env.data.body("cube").xpos, atol=1e-6)
    assert obs[OBS_SLICES["cube_pos"]][2] == pytest.approx(CUBE_HALF)


def test_reset_and_rollouts_are_deterministic() -> None:
    envs = [StackCubeEnv(), StackCubeEnv()]
    first = [e.reset(seed=42)[0] for e in envs]
    np.testing.assert_array_equal(first[0], first[1])
    assert not np.array_equal(envs[0].reset(seed=43)[0], first[0])

    actions = np.random.default_rng(1).uniform(-1, 1, size=(15, 8)).astype(np.float32)
    trajectories = []
    for e in envs:
        e.reset(seed=7)
        trajectories.append([e.step(a)[:2] for a in actions])
    for (obs_a, rew_a), (obs_b, rew_b) in zip(*trajectories, strict=True):
        np.testing.assert_array_equal(obs_a, obs_b)
        assert rew_a == rew_b


def test_released_cube_on_base_terminates_with_success(env: StackCubeEnv) -> None:
    env.reset(seed=0)
    d = env.data
    base = d.body("base").xpos.copy()
    base_half = env.model.geom("base").size[2]
    cube_adr = env.model.joint("cube").qposadr[0]
    d.qpos[cube_adr : cube_adr + 7] = [base[0], base[1], base[2] + base_half + CUBE_HALF, 1, 0, 0, 0]
    mujoco.mj_forward(env.model, d)
    ranges = np.array([env.model.joint(j).range for j in ARM_JOINTS])
    hold = np.r_[2 * (d.qpos[:7] - ranges[:, 0]) / (ranges[:, 1] - ranges[:, 0]) - 1, 1.0]
    _, reward, terminated, truncated, info = env.step(hold.astype(np.float32))
    assert terminated and not truncated and info["success"] and reward == 5.0


def test_expert_stacks_the_cube() -> None:
    def make_env() -> gym.Env:
        return gym.wrappers.TimeLimit(StackCubeEnv(), max_episode_steps=250)

    result = evaluate_expert(make_env, episodes=3, seed=100)
    assert result["successes"] == 3, result
    assert result["mean_steps_to_success"] < 250


def test_expert_uses_only_observations(env: StackCubeEnv) -> None:
    expert = StackCubeExpert()
    assert expert.model is not env.model  # its own copy of the robot, as on a remote client
    obs, _ = env.reset(seed=5)
    action = expert.act(obs)
    assert action.shape == (8,) and action.dtype == np.float32
    assert np.all(np.abs(action) <= 1.0)


def test_render_frame_changes_when_arm_moves() -> None:
    env = StackCubeEnv(render_mode="rgb_array")
    try:
        env.reset(seed=0)
        before = env.render()
        assert before.shape == (480, 640, 3) and before.dtype == np.uint8
        action = np.zeros(8, dtype=np.float32)  # joint range centres: far from the default pose
        for _ in range(10):
            env.step(action)
        after = env.render()
        assert np.abs(after.astype(int) - before.astype(int)).mean() > 1.0
    finally:
        env.close()
