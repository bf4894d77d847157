"""STAND-IN for ``metasim.scenario.scenario.ScenarioCfg`` (plus the robot/object configs it holds,
which live in ``robot.py``/``objects.py`` in the real package)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RobotCfg:
    name: str
    joint_limits: dict[str, tuple[float, float]] = field(default_factory=dict)
    default_joint_positions: dict[str, float] = field(default_factory=dict)


@dataclass
class PrimitiveCubeCfg:
    name: str
    size: tuple[float, float, float] = (0.04, 0.04, 0.04)


FRANKA = RobotCfg(
    "franka",
    joint_limits={
        "panda_joint1": (-2.8973, 2.8973),
        "panda_joint2": (-1.7628, 1.7628),
        "panda_joint3": (-2.8973, 2.8973),
        "panda_joint4": (-3.0718, -0.0698),
        "panda_joint5": (-2.8973, 2.8973),
        "panda_joint6": (-0.0175, 3.7525),
        "panda_joint7": (-2.8973, 2.8973),
        "panda_finger_joint1": (0.0, 0.04),
        "panda_finger_joint2": (0.0, 0.04),
    },
    default_joint_positions={
        "panda_joint1": 0.0,
        "panda_joint2": -0.785398,
        "panda_joint3": 0.0,
        "panda_joint4": -2.356194,
        "panda_joint5": 0.0,
        "panda_joint6": 1.570796,
        "panda_joint7": 0.785398,
        "panda_finger_joint1": 0.04,
        "panda_finger_joint2": 0.04,
    },
)


@dataclass
class ScenarioCfg:
    robots: list[Any] = field(default_factory=list)
    objects: list[Any] = field(default_factory=list)
    cameras: list[Any] = field(default_factory=list)
    simulator: str | None = None
    num_envs: int = 1
    headless: bool = False
    env_spacing: float = 1.0
    decimation: int = 3

    def __post_init__(self) -> None:
        self.robots = [FRANKA if r == "franka" else r for r in self.robots]

    def update(self, **kwargs: Any) -> ScenarioCfg:
        """Patch fields then rerun post-init (as the real one)."""
        for key, value in kwargs.items():
            setattr(self, key, value)
        self.__post_init__()
        return self
