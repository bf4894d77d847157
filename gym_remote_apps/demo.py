"""The whole remote-replay loop in one call (``gym-remote demo``): server, expert, recording, video."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from gym_remote.replay.gl import load_mujoco
from gym_remote.replay.wrappers import MujocoReplayWrapper

__all__ = ["run_demo"]

log = logging.getLogger(__name__)


def run_demo(
    out_dir: str | Path = "demo",
    episodes: int = 3,
    seed: int = 0,
    host: str | None = None,
    port: int | None = None,
    width: int = 640,
    height: int = 480,
    camera: str | int | None = None,
    max_steps: int = 250,
) -> dict[str, Any]:
    """The whole remote-replay loop: a remote stack-cube env (a local server when ``host`` is None),
    the scripted expert acting on observations only, local recording and rendering.

    Writes ``stack_cube.mp4`` and ``stack_cube.npz`` into ``out_dir``; returns success rate, mean
    per-step latency (the wrapped ``step`` call: round trip plus state, excluding the expert),
    frames rendered and the paths.
    """
    load_mujoco()
    from gym_remote.env import DEFAULT_PORT, RemoteEnv
    from gym_remote.tasks.expert import StackCubeExpert

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remote = RemoteEnv(host, port or DEFAULT_PORT)
    try:
        env = MujocoReplayWrapper(remote, camera=camera, width=width, height=height)
    except BaseException:
        remote.close()
        raise
    expert = StackCubeExpert()
    latencies: list[float] = []
    successes: list[bool] = []
    try:
        for episode in range(episodes):
            obs, info = env.reset(seed=seed + episode)
            expert.reset()
            for _ in range(max_steps):
                action = expert.act(obs)
                start = time.perf_counter()
                obs, _, terminated, truncated, info = env.step(action)
                latencies.append(time.perf_counter() - start)
                if terminated or truncated:
                    break
            successes.append(bool(info.get("success", False)))
            log.info("episode %d (seed %d): success=%s", episode, seed + episode, successes[-1])
        video, trajectory = out / "stack_cube.mp4", out / "stack_cube.npz"
        trajectory = env.save_trajectory(trajectory)
        frames = env.save_video(video)
    finally:
        env.close()
    return {
        "episodes": episodes,
        "successes": int(sum(successes)),
        "success_rate": float(np.mean(successes)) if successes else 0.0,
        "steps": len(latencies),
        "mean_step_latency_ms": 1e3 * float(np.mean(latencies)) if latencies else 0.0,
        "frames": frames,
        "video": str(video),
        "trajectory": str(trajectory),
    }
