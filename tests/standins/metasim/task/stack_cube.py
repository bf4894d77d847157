"""STAND-IN for RoboVerse's ``stack_cube`` task (real: roboverse_pack/tasks/maniskill/stack_cube.py):
Franka, a red ``cube`` and a blue ``base``; success when the cube rests on the base; 250 steps.
Start states come from ``_get_initial_states`` (the real one reads them from a trajectory file)."""

from __future__ import annotations

from typing import Any

import torch

from metasim.scenario.scenario import PrimitiveCubeCfg, ScenarioCfg
from metasim.task.base import BaseTaskEnv
from metasim.task.registry import register_task
from metasim.task.rl_task import RLTaskEnv


@register_task("maniskill.stack_cube", "stack_cube")
class StackCubeTask(BaseTaskEnv):
    scenario = ScenarioCfg(objects=[PrimitiveCubeCfg("cube"), PrimitiveCubeCfg("base")], robots=["franka"])
    max_episode_steps = 250

    def _get_initial_states(self) -> list[dict[str, Any]]:
        """As the real task: start states from its trajectory file (here: 8 fixed poses), repeated or
        trimmed to ``num_envs``; ``reset`` without states puts sub-env i in start state i."""
        robot = self.handler.robots[0]
        gen = torch.Generator().manual_seed(0)
        poses = []
        for _ in range(8):
            xy = torch.tensor([0.5, 0.0]) + (torch.rand(2, 2, generator=gen) - 0.5) * 0.1
            xy[0, 1] += 0.1
            xy[1, 1] -= 0.1
            poses.append(
                {
                    "robots": {
                        robot.name: {
                            "pos": torch.zeros(3),
                            "rot": torch.tensor([1.0, 0, 0, 0]),
                            "dof_pos": dict(robot.default_joint_positions),
                        }
                    },
                    "objects": {
                        name: {"pos": torch.tensor([*xy[k].tolist(), 0.02]), "rot": torch.tensor([1.0, 0, 0, 0])}
                        for k, name in enumerate(("cube", "base"))
                    },
                }
            )
        return [poses[i % len(poses)] for i in range(self.num_envs)]

    def _terminated(self, env_states: Any) -> torch.Tensor:
        cube = env_states.objects["cube"].root_state[:, :3]
        base = env_states.objects["base"].root_state[:, :3]
        on_top = torch.linalg.norm(cube[:, :2] - base[:, :2], dim=-1) < 0.02
        return on_top & ((cube[:, 2] - base[:, 2] - 0.04).abs() < 0.01)


@register_task("stack_cube_rl")
class StackCubeRLTask(RLTaskEnv, StackCubeTask):
    max_episode_steps = 250
