"""STAND-IN for ``isaaclab.envs.ManagerBasedRLEnv`` and the scene it holds (real ones: GPU only).

Reproduced: a batched ``gym.Env`` (``is_vector_env = True``) on torch tensors; ``step(Tensor[N, A])``
returns ``({"policy": Tensor[N, D]}, rew[N], terminated[N], time_outs[N], extras)`` from persistent
buffers; finished sub-envs are reset INSIDE step with no final observation; ``extras["log"]`` holds
scalar tensors; ``reset(seed, env_ids, options)``; ``scene.get_state(is_relative)`` /
``scene.reset_to(state, env_ids, is_relative)``, which also sets the joint targets to the state;
articulations with ``joint_names`` and joint targets; env origins on a grid. The dynamics are a toy: arm joints integrate the action, the gripper action (index 7) moves the
cube up or down, and the cube dropping below -5 cm terminates (Isaac Lab's ``object_dropping``).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import isaaclab
from isaaclab.app import EVENTS, is_launched

JOINTS = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1", "panda_finger_joint2"]
DEFAULT_Q = [0.0, -0.569, 0.0, -2.810, 0.0, 3.037, 0.741, 0.04, 0.04]
CUBE_START = (0.5, 0.0, 0.055)
OBS_DIM, ACT_DIM = 36, 8


def _xyzw() -> bool:
    return int(isaaclab.__version__.split(".")[0]) >= 3


class _Data:
    def __init__(self, n: int, joints: list[str] | None) -> None:
        self.root_pose_w = torch.zeros(n, 7)
        self.root_pose_w[:, 3] = 1.0  # stored w-first; converted at the API for 3.x
        self.root_vel_w = torch.zeros(n, 6)
        if joints is not None:
            self.joint_names = list(joints)
            self.joint_pos = torch.tensor(DEFAULT_Q).repeat(n, 1)
            self.joint_vel = torch.zeros(n, len(joints))
            self.joint_pos_target = self.joint_pos.clone()  # the controller's commands (2.x API)
            self.joint_vel_target = torch.zeros(n, len(joints))


class Articulation:
    def __init__(self, n: int) -> None:
        self.data = _Data(n, JOINTS)

    @property
    def joint_names(self) -> list[str]:
        return self.data.joint_names

    def set_joint_position_target(self, target: torch.Tensor, joint_ids: Any = None, env_ids: Any = None) -> None:
        self.data.joint_pos_target[slice(None) if env_ids is None else env_ids] = target

    def set_joint_velocity_target(self, target: torch.Tensor, joint_ids: Any = None, env_ids: Any = None) -> None:
        self.data.joint_vel_target[slice(None) if env_ids is None else env_ids] = target


class RigidObject:
    def __init__(self, n: int) -> None:
        self.data = _Data(n, None)


class InteractiveScene:
    def __init__(self, num_envs: int, spacing: float) -> None:
        self.num_envs = num_envs
        side = math.ceil(math.sqrt(num_envs))
        grid = [(spacing * (i // side), spacing * (i % side), 0.0) for i in range(num_envs)]
        self.env_origins = torch.tensor(grid, dtype=torch.float32)
        self.articulations = {"robot": Articulation(num_envs)}
        self.rigid_objects = {"object": RigidObject(num_envs)}
        self.reset_to_calls: list[dict[str, Any]] = []
        for asset in (*self.articulations.values(), *self.rigid_objects.values()):
            asset.data.root_pose_w[:, :3] += self.env_origins

    def _pose_out(self, pose: torch.Tensor) -> torch.Tensor:
        return torch.cat([pose[:, :3], pose[:, [4, 5, 6, 3]]], dim=-1) if _xyzw() else pose

    def _pose_in(self, pose: torch.Tensor) -> torch.Tensor:
        return torch.cat([pose[:, :3], pose[:, [6, 3, 4, 5]]], dim=-1) if _xyzw() else pose

    def get_state(self, is_relative: bool = False) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
        state: dict[str, Any] = {
            "articulation": {},
            "deformable_object": {},
            "rigid_object": {},
            "gripper": {},
        }
        for kind, assets in (("articulation", self.articulations), ("rigid_object", self.rigid_objects)):
            for name, asset in assets.items():
                pose = self._pose_out(asset.data.root_pose_w.clone())
                if is_relative:
                    pose[:, :3] -= self.env_origins
                entry = {"root_pose": pose, "root_velocity": asset.data.root_vel_w.clone()}
                if kind == "articulation":
                    entry["joint_position"] = asset.data.joint_pos.clone()
                    entry["joint_velocity"] = asset.data.joint_vel.clone()
                state[kind][name] = entry
        return state

    def reset_to(self, state: dict[str, Any], env_ids: Any = None, is_relative: bool = False) -> None:
        self.reset_to_calls.append({"env_ids": env_ids, "is_relative": is_relative})
        ids = slice(None) if env_ids is None else env_ids
        for kind, assets in (("articulation", self.articulations), ("rigid_object", self.rigid_objects)):
            for name, asset in assets.items():
                entry = state[kind][name]
                pose = self._pose_in(entry["root_pose"].clone())
                if is_relative:
                    pose[:, :3] += self.env_origins[ids]
                asset.data.root_pose_w[ids] = pose
                asset.data.root_vel_w[ids] = entry["root_velocity"].clone()
                if kind == "articulation":
                    asset.data.joint_pos[ids] = entry["joint_position"].clone()
                    asset.data.joint_vel[ids] = entry["joint_velocity"].clone()
                    # as Isaac Lab's reset_to does ("assumes PD control over the joints")
                    asset.set_joint_position_target(entry["joint_position"].clone(), env_ids=env_ids)
                    asset.set_joint_velocity_target(entry["joint_velocity"].clone(), env_ids=env_ids)


class _Sim:
    def __init__(self) -> None:
        self.forward_calls = 0

    def forward(self) -> None:
        self.forward_calls += 1


class ManagerBasedRLEnv(gym.Env):
    is_vector_env = True
    metadata = {"render_modes": [None, "human", "rgb_array"]}

    def __init__(self, cfg: Any, render_mode: str | None = None, **kwargs: Any) -> None:
        if not is_launched():
            raise RuntimeError("stand-in: the simulation app is not running (AppLauncher first)")
        if str(cfg.sim.device).startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"stand-in: device {cfg.sim.device!r} is not available on this machine")
        EVENTS.append("gym.make")
        self.cfg = cfg
        self.render_mode = render_mode
        self.num_envs = cfg.scene.num_envs
        self.device = cfg.sim.device
        self.step_dt = cfg.sim.dt * cfg.decimation
        self.metadata = {**type(self).metadata, "render_fps": 1.0 / self.step_dt}
        self.scene = InteractiveScene(self.num_envs, cfg.scene.env_spacing)
        self.sim = _Sim()
        self.single_observation_space = gym.spaces.Dict({"policy": gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,))})
        self.single_action_space = gym.spaces.Box(-np.inf, np.inf, (ACT_DIM,))
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        n = self.num_envs
        self.episode_length_buf = torch.zeros(n, dtype=torch.long)
        self.reward_buf = torch.zeros(n)
        self.reset_terminated = torch.zeros(n, dtype=torch.bool)
        self.reset_time_outs = torch.zeros(n, dtype=torch.bool)
        self.extras: dict[str, Any] = {}
        self._last_action = torch.zeros(n, ACT_DIM)
        self._command = torch.tensor([0.5, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0]).repeat(n, 1)
        self._gen = torch.Generator().manual_seed(int(cfg.seed))
        self.reset_calls = 0
        self._is_closed = False

    @property
    def max_episode_length(self) -> int:
        return math.ceil(self.cfg.episode_length_s / self.step_dt)

    def seed(self, seed: int = -1) -> int:
        self._gen.manual_seed(seed)
        return seed

    def reset(self, seed: int | None = None, env_ids: Any = None, options: dict | None = None):
        self.reset_calls += 1
        if seed is not None:
            self.seed(seed)
        ids = torch.arange(self.num_envs) if env_ids is None else torch.as_tensor(env_ids, dtype=torch.long)
        self._reset_idx(ids)
        self.obs_buf = self._observations()
        return self.obs_buf, self.extras

    def step(self, action: torch.Tensor):
        action = action.to(self.device)
        self._last_action = action.clone()
        robot = self.scene.articulations["robot"].data
        cube = self.scene.rigid_objects["object"].data
        before = robot.joint_pos.clone()
        robot.joint_pos[:, :7] += 0.05 * action[:, :7]
        robot.joint_pos[:, 7:] = torch.where(action[:, 7:8] >= 0, 0.04, 0.0).expand(-1, 2)
        robot.joint_vel[:] = (robot.joint_pos - before) / self.step_dt
        cube.root_pose_w[:, 2] += 0.05 * action[:, 7]
        self.episode_length_buf += 1
        self.reset_terminated[:] = cube.root_pose_w[:, 2] < -0.05
        self.reset_time_outs[:] = self.episode_length_buf >= self.max_episode_length
        self.reward_buf[:] = cube.root_pose_w[:, 2]
        done = (self.reset_terminated | self.reset_time_outs).nonzero(as_tuple=False).squeeze(-1)
        if len(done) > 0:
            self._reset_idx(done)
        self.obs_buf = self._observations()
        return self.obs_buf, self.reward_buf, self.reset_terminated, self.reset_time_outs, self.extras

    def _reset_idx(self, ids: torch.Tensor) -> None:
        robot = self.scene.articulations["robot"].data
        cube = self.scene.rigid_objects["object"].data
        robot.joint_pos[ids] = torch.tensor(DEFAULT_Q)
        robot.joint_vel[ids] = 0.0
        noise = (torch.rand(len(ids), 2, generator=self._gen) - 0.5) * torch.tensor([0.2, 0.5])
        cube.root_pose_w[ids] = torch.tensor([*CUBE_START, 1.0, 0.0, 0.0, 0.0])
        cube.root_pose_w[ids, :2] += noise
        cube.root_pose_w[ids, :3] += self.scene.env_origins[ids]
        cube.root_vel_w[ids] = 0.0
        self._last_action[ids] = 0.0
        self.episode_length_buf[ids] = 0
        self.extras["log"] = {
            "Episode_Termination/time_out": torch.tensor(float(self.reset_time_outs[ids].sum())),
            "Episode_Termination/object_dropping": torch.tensor(float(self.reset_terminated[ids].sum())),
        }

    def _observations(self) -> dict[str, torch.Tensor]:
        robot = self.scene.articulations["robot"].data
        cube = self.scene.rigid_objects["object"].data
        cube_in_robot = cube.root_pose_w[:, :3] - robot.root_pose_w[:, :3]
        policy = torch.cat(
            [
                robot.joint_pos - torch.tensor(DEFAULT_Q),
                robot.joint_vel,
                cube_in_robot,
                self._command,
                self._last_action,
            ],
            dim=-1,
        )
        return {"policy": policy}

    def render(self, recompute: bool = False) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return np.zeros((48, 64, 3), dtype=np.uint8)

    def close(self) -> None:
        if not self._is_closed:
            EVENTS.append("close")
            self._is_closed = True
