"""Simulated tasks shipped with gym-remote (MuJoCo stand-ins for IsaacSim scenes)."""

import os
import sys

# MuJoCo picks its GL backend when it is first imported; a headless Linux box has no display, so
# default to EGL there (an explicit MUJOCO_GL from the user always wins).
if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

from gym_remote.tasks.stack_cube import ASSET_PATH, OBS_SLICES, StackCubeEnv

__all__ = ["ASSET_PATH", "OBS_SLICES", "StackCubeEnv"]
