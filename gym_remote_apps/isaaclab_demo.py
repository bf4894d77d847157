"""The seed's loop on the real Isaac Lab (``gym-remote demo --backend isaaclab``): server, expert, replay.

1. Start the Isaac Lab 3.0 server locally from its own venv (``scripts/build_isaaclab_venv.sh``),
   serving ``IsaacContrib-Stack-Cube-Franka`` with ``configs/tasks/isaaclab_stack_cube.yaml``
   (Newton physics, every observation group) and the offline asset stand-ins (any that are missing
   are written first), or connect to a server given by host and port.
2. Drive it from here with :class:`~gym_remote_apps.isaaclab_stack.IsaacLabStackExpert`, acting on
   the task's observations only; every step reply carries the scene state (``with_state``).
3. Pose the built-in MuJoCo Franka scene with Isaac Lab's blocks
   (:func:`~gym_remote_apps.isaaclab_stack.replay_scene`) with those states through
   ``configs/maps/isaaclab_franka.yaml`` and write the video, the trajectory, the replay scene's MJCF
   (for ``gym-remote replay``) and a still of the first stacked episode's end.

Success is the task's own ``stack_1`` term (cube_2 on cube_1, gripper open) after ``settle`` more steps.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gym_remote.replay.gl import load_mujoco
from gym_remote.replay.wrappers import MujocoReplayWrapper

__all__ = ["STACK_CONFIG", "run_isaaclab_demo", "start_isaaclab_server"]

log = logging.getLogger(__name__)

#: The task config the local server is started with (``configs/tasks/``).
STACK_CONFIG = "isaaclab_stack_cube"
#: Seconds a cold server may take to get ready (Warp compiles its CPU kernels on the first run).
STARTUP_TIMEOUT = 900.0
#: Seconds of one env step: the task's decimation 5 at ``sim.dt`` 0.01 s (videos play in real time).
STEP_DT = 0.05


def start_isaaclab_server(task: str, startup_timeout: float = STARTUP_TIMEOUT, overrides: Sequence[str] = ()) -> Any:
    """A :class:`~gym_remote.local.LocalServer` serving ``task`` from the Isaac Lab venv with the stack config.

    ``overrides`` are Isaac Lab Hydra overrides added to the config's (``["physics=ovphysx"]``).

    Writes the offline stand-ins missing from the venv's asset folder first (a few seconds; files
    already there, including NVIDIA's own, are kept).

    Raises:
        FileNotFoundError: the Isaac Lab venv is not built (the message gives the command).
        LaunchError: the server exited or was not ready in ``startup_timeout`` seconds (with its log tail).
    """
    from gym_remote.local import LocalServer
    from gym_remote_apps.venvs import isaaclab_asset_root, server_python

    python = server_python("isaaclab")
    root = isaaclab_asset_root()
    subprocess.run(
        [python, "-m", "gym_remote.backends.isaaclab.assets", root],
        check=True,
        capture_output=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    return LocalServer(
        "isaaclab",
        task,
        {"asset_root": root},
        extra_args=["--config", STACK_CONFIG, *(f"--override={o}" for o in overrides)],
        python=python,
        startup_timeout=startup_timeout,
    )


def run_isaaclab_demo(
    out_dir: str | Path = "demo-out",
    episodes: int = 2,
    seed: int = 0,
    host: str | None = None,
    port: int | None = None,
    task: str | None = None,
    width: int = 640,
    height: int = 480,
    camera: str | int | None = "oblique",
    max_steps: int = 200,
    settle: int = 10,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Run the expert on real Isaac Lab for ``episodes`` episodes (seeds ``seed, seed + 1, ...``), replay here.

    ``overrides`` are Isaac Lab Hydra overrides (``["physics=ovphysx"]``): given to the local server
    it starts, or sent as the client's ``task_kwargs["overrides"]`` to a server at ``host:port``.

    An episode ends ``settle`` steps after ``stack_1`` first turns true, or after ``max_steps``;
    it counts as stacked when ``stack_1`` is still true then.

    Writes into ``out_dir``: ``isaaclab_stack_cube.mp4`` (every episode, real time), ``.npz`` (the
    trajectory), ``.xml`` (the replay scene, for ``gym-remote replay --model``) and ``.png`` (the
    last frame of the first stacked episode, else the last frame).

    Returns:
        ``episodes``, ``physics`` (the engine the server ran, e.g. ``"ovphysx"``), ``stacked`` (episodes
        stacked per ``stack_1``), ``steps`` (per episode),
        ``stack_steps`` (step of the first ``stack_1`` per episode, None if never), ``offsets``
        (cube_2 minus cube_1 at each episode's end, m, from the observations), ``startup_s`` (server
        start and env build, s), ``episode_s`` (wall time per episode, s), ``step_ms`` (mean wall
        time of one remote step with the state attached, the expert excluded), ``render_s`` (writing
        the video, s), ``frames``, and the paths ``mp4``, ``npz``, ``xml``, ``png``.

    Raises:
        ValueError: ``task`` is not the stack task (the expert, config and scene are written for it).
    """
    load_mujoco()
    from gym_remote.client_session import ConnectOptions
    from gym_remote.env import RemoteEnv
    from gym_remote_apps.isaaclab_stack import (
        ISAACLAB_STACK_TASK,
        IsaacLabStackExpert,
        cube_poses,
        replay_scene,
        replay_scene_xml,
        stacked,
    )

    task = task or ISAACLAB_STACK_TASK
    if task != ISAACLAB_STACK_TASK:
        raise ValueError(
            f"the Isaac Lab demo runs {ISAACLAB_STACK_TASK!r} (its expert, config and replay scene); got {task!r}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    server = start_isaaclab_server(task, overrides=overrides) if host is None else None
    task_kwargs = {"overrides": list(overrides)} if overrides and server is None else None
    try:
        if server is not None:
            host, port = server.local_host, server.local_port
        assert host is not None and port is not None
        options = ConnectOptions(connect_timeout=STARTUP_TIMEOUT, timeout=120.0)
        remote = RemoteEnv(host, port, task=task, task_kwargs=task_kwargs, options=options)
        startup = time.perf_counter() - start  # the server up and the Isaac Lab env built (HELLO)
        try:
            env = MujocoReplayWrapper(
                remote,
                model=replay_scene(),
                name_map="isaaclab_franka",
                camera=camera,
                width=width,
                height=height,
                fps=1.0 / STEP_DT,
            )
        except BaseException:
            remote.close()
            raise
        try:
            result = _episodes(env, IsaacLabStackExpert(), episodes, seed, max_steps, settle, stacked, cube_poses)
            result["startup_s"] = startup
            result["physics"] = remote.metadata.get("physics")
            base = out / "isaaclab_stack_cube"
            paths = {k: base.with_suffix(f".{k}") for k in ("mp4", "npz", "xml", "png")}
            env.save_trajectory(paths["npz"])
            paths["xml"].write_text(replay_scene_xml(), encoding="utf-8")
            t0 = time.perf_counter()
            result["frames"] = env.save_video(paths["mp4"])
            result["render_s"] = time.perf_counter() - t0
            _save_still(env, result.pop("still_row"), paths["png"])
        finally:
            env.close()
    finally:
        if server is not None:
            server.close()
    return {**result, **{k: str(p) for k, p in paths.items()}}


def _episodes(
    env: MujocoReplayWrapper,
    expert: Any,
    episodes: int,
    seed: int,
    max_steps: int,
    settle: int,
    stacked: Any,
    cube_poses: Any,
) -> dict[str, Any]:
    steps: list[int] = []
    stack_steps: list[int | None] = []
    done: list[bool] = []
    offsets: list[list[float]] = []
    latencies: list[float] = []
    durations: list[float] = []
    still_row: int | None = None
    row = 0  # the trajectory row of the latest reset or step
    for episode in range(episodes):
        t_episode = time.perf_counter()
        obs, _ = env.reset(seed=seed + episode)
        row += 1 if episode else 0
        expert.reset()
        first: int | None = None
        count = 0
        while count < max_steps and (first is None or count < first + settle):
            action = expert.act(obs)
            t0 = time.perf_counter()
            obs, _, terminated, truncated, _ = env.step(action)
            latencies.append(time.perf_counter() - t0)
            count += 1
            row += 1
            if first is None and stacked(obs):
                first = count
            if terminated or truncated:  # all three stacked, a dropped cube, or 30 s: Isaac Lab reset it
                break
        durations.append(time.perf_counter() - t_episode)
        cubes = cube_poses(obs)
        steps.append(count)
        stack_steps.append(first)
        done.append(first is not None and stacked(obs))
        if done[-1] and still_row is None:
            still_row = row
        offsets.append((cubes["cube_2"][0] - cubes["cube_1"][0]).round(4).tolist())
        log.info(
            "episode %d (seed %d): stacked=%s (stack_1 first at step %s), %d steps",
            episode,
            seed + episode,
            done[-1],
            first,
            count,
        )
    return {
        "episodes": episodes,
        "stacked": int(sum(done)),
        "steps": steps,
        "stack_steps": stack_steps,
        "offsets": offsets,
        "step_ms": 1e3 * float(np.mean(latencies)) if latencies else 0.0,
        "episode_s": durations,
        "still_row": row if still_row is None else still_row,
    }


def _save_still(env: MujocoReplayWrapper, row: int, path: Path) -> None:
    """Render recorded row ``row`` to a PNG (Pillow comes with moviepy)."""
    from PIL import Image

    frame = env.replayer.render(env.trajectory().states[row])
    Image.fromarray(frame).save(path)
