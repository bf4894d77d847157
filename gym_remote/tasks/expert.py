"""Scripted expert for the stack-cube task, driven by observations only.

The expert runs on the client, which may be far from the simulator, so it never touches the env's
MuJoCo state: it keeps its own copy of the robot model (the shipped MJCF), copies the observed joint
positions into it and solves damped-least-squares inverse kinematics for a Cartesian set-point that
a small phase machine walks through approach, grasp, lift, carry, place and retreat.

Benchmark: ``python -m gym_remote_apps.expert --episodes 50 --seed 0``.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from gym_remote.tasks.stack_cube import (
    ARM_JOINTS,
    ASSET_PATH,
    CUBE_HALF,
    DEFAULT_ARM_QPOS,
    OBS_SLICES,
)

__all__ = ["StackCubeExpert", "evaluate_expert"]

logger = logging.getLogger(__name__)


class Phase(enum.IntEnum):
    APPROACH = 0
    DESCEND = 1
    GRASP = 2
    LIFT = 3
    CARRY = 4
    LOWER = 5
    RELEASE = 6
    RETREAT = 7


HOVER = 0.10  # TCP height above the cube before descending onto it
CARRY_Z = 0.15  # TCP height (above the table) while carrying
RELEASE_GAP = 0.004  # cube bottom above the base top when the fingers open
GRASP_STEPS = 8  # control steps to let the fingers squeeze before lifting
RELEASE_STEPS = 5
DROP_DIST = 0.04  # cube further than this from the TCP while carrying = dropped


def _quat_from_mat(mat: np.ndarray) -> np.ndarray:
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(mat, dtype=np.float64).ravel())
    return quat


def _rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """World-frame rotation vector taking ``current`` to ``target`` (both w-first quaternions)."""
    inv, diff, vel = np.empty(4), np.empty(4), np.empty(3)
    mujoco.mju_negQuat(inv, current)
    mujoco.mju_mulQuat(diff, target, inv)
    if diff[0] < 0:  # take the short way round
        diff = -diff
    mujoco.mju_quat2Vel(vel, diff, 1.0)
    return vel


def _top_down_quat(yaw: float) -> np.ndarray:
    """Hand orientation pointing straight down with its x axis at ``yaw`` (fingers close along y)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return _quat_from_mat(np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]]))


def _grasp_yaw(cube_quat: np.ndarray) -> float:
    """Cube yaw folded into [-pi/4, pi/4): a cube looks the same every quarter turn, and small
    hand yaws keep joint 7 well inside its range."""
    mat = np.empty(9)
    mujoco.mju_quat2Mat(mat, np.asarray(cube_quat, dtype=np.float64))
    yaw = np.arctan2(mat[3], mat[0])
    return float((yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4)


class StackCubeExpert:
    """Observation-only pick-and-place controller producing the env's normalised 8-dim action.

    Usage: ``expert.reset()`` at each episode start, then ``action = expert.act(obs)`` per step.
    ``max_step`` (m) and ``max_turn`` (rad) bound how far the Cartesian set-point moves per control
    step; ``damping`` is the DLS damping and ``ik_iters`` the IK iterations per step.
    ``base_half_height`` (m) overrides the base's half height read from the model, for scenes whose
    base differs from the built-in one (RoboVerse's stack_cube base is a 4 cm cube: 0.02).
    """

    def __init__(
        self,
        asset_path: str | Path = ASSET_PATH,
        max_step: float = 0.02,
        max_turn: float = 0.12,
        damping: float = 0.05,
        ik_iters: int = 15,
        base_half_height: float | None = None,
    ) -> None:
        self.model = mujoco.MjModel.from_xml_path(str(asset_path))
        self.data = mujoco.MjData(self.model)
        self.max_step, self.max_turn = max_step, max_turn
        self.damping, self.ik_iters = damping, ik_iters

        m = self.model
        self._qadr = np.array([m.joint(j).qposadr[0] for j in ARM_JOINTS], dtype=np.intp)
        self._dofs = np.array([m.joint(j).dofadr[0] for j in ARM_JOINTS], dtype=np.intp)
        ranges = np.array([m.joint(j).range for j in ARM_JOINTS])
        self._low, self._high = ranges[:, 0], ranges[:, 1]
        self._site = m.site("tcp").id
        self._base_half_height = float(m.geom("base").size[2] if base_half_height is None else base_half_height)
        self._jacp = np.zeros((3, m.nv))
        self._jacr = np.zeros((3, m.nv))
        self.reset()

    def reset(self) -> None:
        """Forget the previous episode (phase, set-points, counters)."""
        self.phase = Phase.APPROACH
        self._steps_in_phase = 0
        # Set by reset() from the first observation; Any keeps the per-step code free of None checks.
        self._sp_pos: Any = None
        self._sp_quat: Any = None
        self._yaw = 0.0

    # ------------------------------------------------------------------ control

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Next action for observation ``obs`` (layout: ``OBS_SLICES``)."""
        obs = np.asarray(obs, dtype=np.float64)
        q = obs[OBS_SLICES["qpos"]][:7]
        tcp = obs[OBS_SLICES["tcp_pos"]]
        cube = obs[OBS_SLICES["cube_pos"]]
        base = obs[OBS_SLICES["base_pos"]]
        if self._sp_pos is None:
            self._sp_pos = tcp.copy()
            self._sp_quat = self._tcp_quat(q)

        goal, gripper_open, step = self._update_phase(tcp, cube, obs[OBS_SLICES["cube_quat"]], base)
        self._steps_in_phase += 1

        # Walk the set-point towards the goal so the stiff position servos never see big jumps.
        delta = goal - self._sp_pos
        dist = np.linalg.norm(delta)
        self._sp_pos = self._sp_pos + (delta if dist <= step else delta * step / dist)
        self._sp_quat = self._turn_towards(self._sp_quat, _top_down_quat(self._yaw))

        q_target = self._solve_ik(q, self._sp_pos, self._sp_quat)
        arm = 2.0 * (q_target - self._low) / (self._high - self._low) - 1.0
        return np.r_[np.clip(arm, -1.0, 1.0), 1.0 if gripper_open else -1.0].astype(np.float32)

    def _update_phase(
        self, tcp: np.ndarray, cube: np.ndarray, cube_quat: np.ndarray, base: np.ndarray
    ) -> tuple[np.ndarray, bool, float]:
        """Advance the phase machine; return the TCP goal, gripper state and set-point speed."""

        def near(goal: np.ndarray, tol: float) -> bool:
            return bool(np.linalg.norm(tcp - goal) < tol)

        carrying = self.phase in (Phase.LIFT, Phase.CARRY, Phase.LOWER)
        if carrying and np.linalg.norm(cube - tcp) > DROP_DIST:
            logger.debug("cube dropped in %s; starting over", self.phase.name)
            self._enter(Phase.APPROACH)

        if self.phase == Phase.APPROACH:
            self._yaw = _grasp_yaw(cube_quat)
            goal = cube + np.array([0.0, 0.0, HOVER])
            if near(goal, 0.01) and self._orientation_gap() < 0.05:
                self._enter(Phase.DESCEND)
            return goal, True, self.max_step
        if self.phase == Phase.DESCEND:
            goal = cube.copy()
            if near(goal, 0.006) or self._steps_in_phase > 40:
                self._enter(Phase.GRASP)
            return goal, True, 0.5 * self.max_step
        if self.phase == Phase.GRASP:
            if self._steps_in_phase >= GRASP_STEPS:
                self._enter(Phase.LIFT)
            return self._sp_pos, False, self.max_step
        # From here on the cube sits in the hand: aim with the cube, not the TCP.
        offset = tcp - cube
        above_base = np.r_[base[:2] + offset[:2], CARRY_Z]
        if self.phase == Phase.LIFT:
            goal = np.r_[self._sp_pos[:2], CARRY_Z]
            if tcp[2] > CARRY_Z - 0.03:
                self._enter(Phase.CARRY)
            return goal, False, self.max_step
        if self.phase == Phase.CARRY:
            if np.linalg.norm(cube[:2] - base[:2]) < 0.006 and near(above_base, 0.02):
                self._enter(Phase.LOWER)
            return above_base, False, self.max_step
        if self.phase == Phase.LOWER:
            place_z = base[2] + self._base_half_height + CUBE_HALF + RELEASE_GAP + offset[2]
            goal = np.r_[above_base[:2], place_z]
            if near(goal, 0.005) or self._steps_in_phase > 40:
                self._enter(Phase.RELEASE)
            return goal, False, 0.5 * self.max_step
        if self.phase == Phase.RELEASE:
            if self._steps_in_phase >= RELEASE_STEPS:
                self._enter(Phase.RETREAT)
            return self._sp_pos, True, self.max_step
        return np.r_[self._sp_pos[:2], CARRY_Z + 0.05], True, 0.5 * self.max_step

    def _enter(self, phase: Phase) -> None:
        logger.debug("phase %s -> %s", self.phase.name, phase.name)
        self.phase, self._steps_in_phase = phase, 0

    def _orientation_gap(self) -> float:
        """Angle still to turn from the orientation set-point to the grasp orientation."""
        return float(np.linalg.norm(_rotation_error(_top_down_quat(self._yaw), self._sp_quat)))

    def _turn_towards(self, current: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Rotate ``current`` towards ``target`` by at most ``max_turn`` radians."""
        err = _rotation_error(target, current)
        angle = np.linalg.norm(err)
        if angle <= self.max_turn:
            return target
        turn, out = np.empty(4), np.empty(4)
        mujoco.mju_axisAngle2Quat(turn, err / angle, self.max_turn)
        mujoco.mju_mulQuat(out, turn, current)  # err is world-frame, so pre-multiply
        return out

    # ------------------------------------------------------------------ kinematics

    def tcp_position(self, q: np.ndarray) -> np.ndarray:
        """The finger-tip centre (m, robot base frame) for arm joints ``q`` (7,) in radians."""
        self.data.qpos[self._qadr] = np.asarray(q, dtype=np.float64)
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self._site].copy()

    def _tcp_quat(self, q: np.ndarray) -> np.ndarray:
        self.data.qpos[self._qadr] = q
        mujoco.mj_kinematics(self.model, self.data)
        return _quat_from_mat(self.data.site_xmat[self._site])

    def _solve_ik(self, q: np.ndarray, pos: np.ndarray, quat: np.ndarray) -> np.ndarray:
        """Damped least squares from the observed joints, pulled towards the default pose in the
        null space so the redundant elbow does not drift over an episode."""
        m, d = self.model, self.data
        q = q.copy()
        for _ in range(self.ik_iters):
            d.qpos[self._qadr] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            err = np.r_[
                pos - d.site_xpos[self._site],
                _rotation_error(quat, _quat_from_mat(d.site_xmat[self._site])),
            ]
            mujoco.mj_jacSite(m, d, self._jacp, self._jacr, self._site)
            jac = np.vstack([self._jacp[:, self._dofs], self._jacr[:, self._dofs]])
            dls = jac.T @ np.linalg.solve(jac @ jac.T + self.damping**2 * np.eye(6), err)
            # The exact projector keeps the posture pull from leaking into the TCP pose.
            null = (np.eye(7) - np.linalg.pinv(jac) @ jac) @ (0.3 * (DEFAULT_ARM_QPOS - q))
            q = np.clip(q + dls + null, self._low, self._high)
            if np.linalg.norm(err) < 1e-4:
                break
        return q


def evaluate_expert(
    make_env: Callable[[], gym.Env],
    episodes: int,
    seed: int = 0,
    max_steps: int = 250,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the expert for ``episodes`` episodes seeded ``seed, seed + 1, ...``.

    Only the public ``reset``/``step``/``close`` API is used, so ``make_env`` may return a remote
    env. ``max_steps`` guards against envs without a ``TimeLimit`` wrapper.
    """
    env = make_env()
    expert = StackCubeExpert()
    successes, steps_to_success, returns, durations = [], [], [], []
    episode_range: Any = range(episodes)
    if progress:
        from tqdm import tqdm

        episode_range = tqdm(episode_range, desc="expert", unit="ep")
    try:
        for episode in episode_range:
            start = time.perf_counter()
            obs, info = env.reset(seed=seed + episode)
            expert.reset()
            total, success, steps = 0.0, False, 0
            while steps < max_steps:
                obs, reward, terminated, truncated, info = env.step(expert.act(obs))
                steps += 1
                total += float(reward)
                success = bool(info.get("success", False))
                if terminated or truncated:
                    break
            durations.append(time.perf_counter() - start)
            successes.append(success)
            returns.append(total)
            if success:
                steps_to_success.append(steps)
            if progress:
                episode_range.set_postfix(success=f"{np.mean(successes):.0%}")
            logger.info("episode %d: success=%s steps=%d return=%.1f", episode, success, steps, total)
    finally:
        env.close()
    return {
        "episodes": episodes,
        "successes": int(sum(successes)),
        "success_rate": float(np.mean(successes)) if episodes else 0.0,
        "mean_steps_to_success": float(np.mean(steps_to_success)) if steps_to_success else None,
        "mean_return": float(np.mean(returns)) if episodes else 0.0,
        "seconds_per_episode": float(np.mean(durations)) if episodes else 0.0,
        "failed_seeds": [seed + i for i, ok in enumerate(successes) if not ok],
    }


if __name__ == "__main__":  # the benchmark moved to gym_remote_apps.expert; this path goes in the next release
    from gym_remote._moved import moved

    moved("gym_remote.tasks.expert", "gym_remote_apps.expert", __name__)
