"""STAND-IN for the Franka lift-cube env config (real: isaaclab_tasks/manager_based/manipulation/lift/...).

Only the fields the adapter and the fake env read; plain dataclasses instead of Isaac Lab configclasses.
"""

from dataclasses import dataclass, field


@dataclass
class SimCfg:
    dt: float = 0.01
    device: str = "cuda:0"
    use_fabric: bool = True


@dataclass
class SceneCfg:
    num_envs: int = 4096
    env_spacing: float = 2.5


@dataclass
class FrankaCubeLiftEnvCfg:
    sim: SimCfg = field(default_factory=SimCfg)
    scene: SceneCfg = field(default_factory=SceneCfg)
    decimation: int = 2
    episode_length_s: float = 5.0
    seed: int = 42
