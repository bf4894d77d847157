"""STAND-IN for ``metasim.types``: the TensorState dataclasses (same fields as the real ones)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ObjectState:
    root_state: torch.Tensor  # [N, 13]: pos, quat (w, x, y, z), lin vel, ang vel
    body_names: list[str] | None = None
    body_state: torch.Tensor | None = None
    joint_pos: torch.Tensor | None = None  # [N, J], columns sorted by joint name
    joint_vel: torch.Tensor | None = None


@dataclass
class RobotState:
    root_state: torch.Tensor
    body_names: list[str] | None = None
    body_state: torch.Tensor | None = None
    joint_pos: torch.Tensor | None = None
    joint_vel: torch.Tensor | None = None
    joint_pos_target: torch.Tensor | None = None
    joint_vel_target: torch.Tensor | None = None
    joint_effort_target: torch.Tensor | None = None


@dataclass
class TensorState:
    objects: dict[str, ObjectState]
    robots: dict[str, RobotState]
    cameras: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)
