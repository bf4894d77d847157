"""STAND-IN for NVIDIA's ``isaaclab_tasks`` package (the real one needs IsaacSim and a GPU).

Like the real package, importing it registers the Isaac-* task ids with Gymnasium, and it only
imports once the simulation app is running (the real one fails on ``omni``/``pxr`` imports before).
"""

import gymnasium as gym
from isaaclab.app import EVENTS, is_launched

if not is_launched():
    raise ImportError(
        "stand-in: isaaclab_tasks needs the running simulation app; create isaaclab.app.AppLauncher first "
        "(the real package fails with \"No module named 'omni...'\")"
    )
EVENTS.append("import isaaclab_tasks")

if "Isaac-Lift-Cube-Franka-v0" not in gym.registry:
    gym.register(
        id="Isaac-Lift-Cube-Franka-v0",
        entry_point="isaaclab.envs:ManagerBasedRLEnv",
        kwargs={"env_cfg_entry_point": "isaaclab_tasks.lift_env_cfg:FrankaCubeLiftEnvCfg"},
        disable_env_checker=True,
    )
