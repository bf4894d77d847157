"""MuJoCo stand-in for IsaacSim's Franka stack-cube task.

A Panda-kinematics arm must pick up a 4 cm red ``cube`` and leave it resting on a blue ``base``.
The env is deliberately plain MuJoCo + Gymnasium so it runs on a CPU box and can be served remotely
exactly like the GPU simulator it replaces: the server reads generic state from ``model``/``data``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

ASSET_PATH: Path = Path(__file__).resolve().parent.parent / "assets" / "stack_cube.xml"

ARM_JOINTS: tuple[str, ...] = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINTS: tuple[str, ...] = ("panda_finger_joint1", "panda_finger_joint2")
#: Isaac Lab's default Franka pose (arm joints 1..7); fingers start fully open.
DEFAULT_ARM_QPOS = np.array([0.0, -0.569, 0.0, -2.810, 0.0, 3.037, 0.741])
FINGER_OPEN = 0.04

#: Layout of the flat observation vector; quaternions are w-first like MuJoCo and Isaac Lab 2.x.
OBS_SLICES: dict[str, slice] = {
    "qpos": slice(0, 9),  # panda_joint1..7, panda_finger_joint1..2
    "qvel": slice(9, 18),
    "cube_pos": slice(18, 21),
    "cube_quat": slice(21, 25),
    "base_pos": slice(25, 28),
    "base_quat": slice(28, 32),
    "tcp_pos": slice(32, 35),  # centre between the finger tips
}
OBS_DIM = 35

CUBE_HALF = 0.02
#: Spawn area on the table (x, y ranges in the robot base frame) and minimum cube-base distance.
SPAWN_LOW = np.array([0.40, -0.20])
SPAWN_HIGH = np.array([0.60, 0.20])
MIN_SEPARATION = 0.15

#: Success tolerances: vertical gap to "resting on top", horizontal offset, linear speed.
HEIGHT_TOL = 0.01
CENTRE_TOL = 0.02
REST_SPEED = 0.05


class StackCubeEnv(gym.Env[np.ndarray, np.ndarray]):
    """Stack the red cube on the blue base with a position-controlled Franka-like arm.

    Action (8,): normalised joint-position targets in [-1, 1] for ``panda_joint1..7`` (mapped
    linearly onto each joint's range) and the gripper (-1 closed ... +1 open, both fingers).
    Observation (35,): see :data:`OBS_SLICES`. Reward is dense and staged (reach, grasp, lift,
    place); the episode terminates with ``info["success"]`` once the released cube rests on the
    base. Truncation is left to a ``TimeLimit`` wrapper (250 steps when registered).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}

    def __init__(
        self,
        render_mode: str | None = None,
        width: int = 640,
        height: int = 480,
        camera: str = "front",
        frame_skip: int = 20,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unsupported render_mode {render_mode!r}")
        self.render_mode = render_mode
        self.width, self.height, self.camera = width, height, camera
        self.frame_skip = frame_skip

        self.model = mujoco.MjModel.from_xml_path(str(ASSET_PATH))
        self.data = mujoco.MjData(self.model)
        # Keep render_fps honest if someone changes frame_skip: videos then play in real time.
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.dt)}

        m = self.model
        joints = ARM_JOINTS + FINGER_JOINTS
        self._joint_qadr = np.array([m.joint(j).qposadr[0] for j in joints], dtype=np.intp)
        self._joint_vadr = np.array([m.joint(j).dofadr[0] for j in joints], dtype=np.intp)
        self._arm_range = np.array([m.joint(j).range for j in ARM_JOINTS])
        self._arm_act = np.array([m.actuator(j).id for j in ARM_JOINTS], dtype=np.intp)
        self._finger_act = np.array([m.actuator(j).id for j in FINGER_JOINTS], dtype=np.intp)
        self._cube_qadr = int(m.joint("cube").qposadr[0])
        self._cube_vadr = int(m.joint("cube").dofadr[0])
        self._base_qadr = int(m.joint("base").qposadr[0])
        self._tcp_site = m.site("tcp").id
        self._cube_geom = m.geom("cube").id
        self._pad_geoms = (m.geom("left_pad").id, m.geom("right_pad").id)
        self._base_half_height = float(m.geom("base").size[2])

        self.action_space = spaces.Box(-1.0, 1.0, shape=(8,), dtype=np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(OBS_DIM,), dtype=np.float32)
        self._renderer: mujoco.Renderer | None = None

    @property
    def dt(self) -> float:
        """Control period in seconds (physics timestep x frame_skip)."""
        return self.model.opt.timestep * self.frame_skip

    # ------------------------------------------------------------------ Gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)  # also clears warm-starts, so equal seeds give equal rollouts
        d.qpos[self._joint_qadr] = np.r_[DEFAULT_ARM_QPOS, FINGER_OPEN, FINGER_OPEN]
        d.ctrl[self._arm_act] = DEFAULT_ARM_QPOS
        d.ctrl[self._finger_act] = FINGER_OPEN

        cube_xy, base_xy = self._sample_positions()
        cube_yaw, base_yaw = self.np_random.uniform(-np.pi, np.pi, size=2)
        self._place(self._cube_qadr, cube_xy, CUBE_HALF, cube_yaw)
        self._place(self._base_qadr, base_xy, self._base_half_height, base_yaw)
        mujoco.mj_forward(m, d)
        return self._get_obs(), self._get_info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        low, high = self._arm_range[:, 0], self._arm_range[:, 1]
        self.data.ctrl[self._arm_act] = low + (a[:7] + 1.0) * 0.5 * (high - low)
        self.data.ctrl[self._finger_act] = (a[7] + 1.0) * 0.5 * FINGER_OPEN
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)

        info = self._get_info()
        return self._get_obs(), self._reward(info), bool(info["success"]), False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, self.height, self.width)
        self._renderer.update_scene(self.data, camera=self.camera)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ------------------------------------------------------------------ helpers

    def _sample_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Draw cube and base positions far enough apart that the base never blocks the grasp."""
        while True:
            cube_xy, base_xy = self.np_random.uniform(SPAWN_LOW, SPAWN_HIGH, size=(2, 2))
            if np.linalg.norm(cube_xy - base_xy) >= MIN_SEPARATION:
                return cube_xy, base_xy

    def _place(self, qadr: int, xy: np.ndarray, half_height: float, yaw: float) -> None:
        self.data.qpos[qadr : qadr + 7] = [
            xy[0],
            xy[1],
            half_height,
            np.cos(yaw / 2),
            0.0,
            0.0,
            np.sin(yaw / 2),
        ]

    def _get_obs(self) -> np.ndarray:
        d = self.data
        return np.concatenate(
            [
                d.qpos[self._joint_qadr],
                d.qvel[self._joint_vadr],
                d.qpos[self._cube_qadr : self._cube_qadr + 7],
                d.qpos[self._base_qadr : self._base_qadr + 7],
                d.site_xpos[self._tcp_site],
            ]
        ).astype(np.float32)

    def _pad_contacts(self) -> tuple[bool, bool]:
        """Whether the left / right finger pad currently touches the cube."""
        pairs = self.data.contact.geom[: self.data.ncon]
        with_cube = pairs[(pairs == self._cube_geom).any(axis=1)]
        left, right = (bool((with_cube == pad).any()) for pad in self._pad_geoms)
        return left, right

    def _get_info(self) -> dict[str, Any]:
        d = self.data
        cube = d.qpos[self._cube_qadr : self._cube_qadr + 3]
        base = d.qpos[self._base_qadr : self._base_qadr + 3]
        tcp = d.site_xpos[self._tcp_site]
        goal = base + np.array([0.0, 0.0, self._base_half_height + CUBE_HALF])
        left, right = self._pad_contacts()
        height_error = abs(cube[2] - goal[2])
        centre_error = float(np.linalg.norm(cube[:2] - goal[:2]))
        speed = float(np.linalg.norm(d.qvel[self._cube_vadr : self._cube_vadr + 3]))
        success = height_error < HEIGHT_TOL and centre_error < CENTRE_TOL and speed < REST_SPEED and not (left or right)
        return {
            "success": bool(success),
            "grasped": bool(left and right),
            "tcp_to_cube": float(np.linalg.norm(tcp - cube)),
            "cube_to_goal": float(np.linalg.norm(cube - goal)),
            "cube_height": float(cube[2] - CUBE_HALF),
        }

    @staticmethod
    def _reward(info: dict[str, Any]) -> float:
        """Staged dense reward in [0, 5] so that each stage of the task pays more than the last.

        Reach (0..1); while grasped +1 and lift up to 5 cm (0..1); while the cube is off the table
        (carried or lying on the base) closeness to the goal (0..1). Success pays 5, so finishing
        always beats hovering near the goal.
        """
        if info["success"]:
            return 5.0
        reward = 1.0 - np.tanh(10.0 * info["tcp_to_cube"])
        if info["grasped"]:
            reward += 1.0 + min(info["cube_height"], 0.05) / 0.05
        if info["cube_height"] > 0.01:  # carried, or already lying on the base
            reward += 1.0 - np.tanh(10.0 * info["cube_to_goal"])
        return float(reward)
