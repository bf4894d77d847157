"""Local replay rendering speed (``gym-remote bench --render``)."""

from __future__ import annotations

import logging
import time

import numpy as np

from gym_remote.replay.gl import load_mujoco
from gym_remote.replay.replayer import Replayer

__all__ = ["render_benchmark"]

log = logging.getLogger(__name__)


def render_benchmark(width: int = 320, height: int = 240, frames: int = 100, camera: str | int | None = None) -> float:
    """Local replay rendering speed in frames/s (pose from a state + render), built-in scene.

    The arm sweeps joint 1 so every frame needs fresh kinematics, as in a real replay.
    """
    load_mujoco()
    from gym_remote.state import mujoco_get_state
    from gym_remote.tasks.stack_cube import StackCubeEnv

    env = StackCubeEnv()
    env.reset(seed=0)
    schema, state = mujoco_get_state(env.model, env.data)
    env.close()
    joint1 = schema.offsets()["franka"] + 13  # root pose (7) + root velocity (6), then joint positions
    with Replayer(env.model, schema, camera=camera, width=width, height=height) as r:
        for _ in range(3):  # warm-up: GL context, shaders, texture upload
            r.render(state)
        states = np.repeat(state[None], frames, axis=0)
        states[:, joint1] += np.linspace(-1.0, 1.0, frames)
        start = time.perf_counter()
        for s in states:
            r.render(s)
        elapsed = time.perf_counter() - start
    fps = frames / elapsed
    log.info("rendered %d frames at %dx%d: %.1f fps", frames, width, height, fps)
    return fps
