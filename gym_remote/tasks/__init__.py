"""Simulated tasks shipped with gym-remote (MuJoCo stand-ins for IsaacSim scenes).

Submodules are imported on demand (``gym_remote.tasks.stack_cube``, ``gym_remote.tasks.expert``)
so that importing one task does not pay for the others.
"""

import os
import sys

# MuJoCo picks its GL backend when it is first imported; a headless Linux box has no display, so
# default to EGL there before any task imports mujoco (an explicit MUJOCO_GL always wins).
if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")
