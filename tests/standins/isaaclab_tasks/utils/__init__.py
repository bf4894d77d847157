"""STAND-IN for ``isaaclab_tasks.utils`` (real: GPU-only Isaac Lab): ``parse_env_cfg`` as in Isaac Lab 2.x."""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym
from isaaclab.app import EVENTS


def parse_env_cfg(
    task_name: str, device: str = "cuda:0", num_envs: int | None = None, use_fabric: bool | None = None
) -> Any:
    EVENTS.append("parse_env_cfg")
    module, _, attr = gym.spec(task_name).kwargs["env_cfg_entry_point"].partition(":")
    cfg = getattr(importlib.import_module(module), attr)()
    cfg.sim.device = device
    if use_fabric is not None:
        cfg.sim.use_fabric = use_fabric
    if num_envs is not None:
        cfg.scene.num_envs = num_envs
    return cfg
