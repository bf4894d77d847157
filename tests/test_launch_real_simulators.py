"""The user's path to a GPU box, with the REAL simulators: ``gym.make_vec(..., launch=...)`` logs in
over SSH (a throwaway OpenSSH server on 127.0.0.1, tests/sshd.py), starts ``gym-remote serve`` with
the simulator venv's Python there (Isaac Lab 3.0, or RoboVerse MetaSim), tunnels its port, and
``close()`` stops it by PID. Only the GPU is missing: Isaac Lab runs Newton on Warp's CPU device,
MetaSim its MuJoCo handler.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)
from tests.sshd import ssh_host, sshd  # noqa: F401  (fixtures)
from tests.test_launch import _process_alive, _wait_gone

pytestmark = pytest.mark.timeout(600)


@pytest.mark.isaaclab
@pytest.mark.parametrize("tunnel", ["openssh", "fabric"])
def test_make_vec_launches_isaac_lab_over_ssh_and_close_stops_it(
    ssh_host: dict[str, Any],  # noqa: F811
    isaaclab_python: str,
    isaaclab_assets: Path,
    tunnel: str,
) -> None:
    options = {k: v for k, v in ssh_host.items() if k not in ("host", "port", "connect_timeout", "task", "backend")}
    options |= {"python": isaaclab_python, "ready_timeout": 300, "tunnel": tunnel}
    started = time.monotonic()
    venv = gym.make_vec(
        "Remote-IsaacSim-v0",
        num_envs=4,
        host="127.0.0.1",
        backend="isaaclab",
        task="Isaac-Cartpole",
        autoreset_mode="same_step",
        launch={"port": ssh_host["port"], "connect_timeout": 5, "task_kwargs": {"asset_root": str(isaaclab_assets)}},
        connect_timeout=300,
        **options,
    )
    pid = venv.unwrapped._shards[0].link.server.pid  # the remote server's PID, from its pid file
    try:
        assert _process_alive(pid)
        obs, _ = venv.reset(seed=0)
        assert obs.shape == (4, 4) and obs.dtype == np.float32
        obs, rewards, terminated, truncated, _ = venv.step(np.zeros((4, 1), np.float32))
        assert rewards.dtype == np.float64 and terminated.dtype == truncated.dtype == bool and obs.shape == (4, 4)
        assert venv.unwrapped.metadata["isaaclab_version"] == "3.0.0"
        print(f"\nIsaac Lab over SSH ({tunnel}): up and stepped in {time.monotonic() - started:.1f} s")
    finally:
        venv.close()
    assert _wait_gone(pid, timeout=30), f"the Isaac Lab server (PID {pid}) outlived close()"


@pytest.mark.metasim
def test_make_launches_metasim_over_ssh_and_close_stops_it(ssh_host: dict[str, Any]) -> None:  # noqa: F811
    from tests.test_metasim_real import DATA, JOINTS, TASK, VENV

    options = {k: v for k, v in ssh_host.items() if k not in ("host", "port", "connect_timeout", "task", "backend")}
    options |= {"python": str(VENV / "bin" / "python"), "ready_timeout": 300}
    settings = {"simulator": "mujoco", "data_dir": str(DATA)}
    env = gym.make(
        "Remote-IsaacSim-v0",
        host="127.0.0.1",
        backend="roboverse",
        task=TASK,
        launch={"port": ssh_host["port"], "connect_timeout": 5, "task_kwargs": settings},
        connect_timeout=300,
        **options,
    )
    pid = env.unwrapped._server.pid
    try:
        assert _process_alive(pid)
        obs, _ = env.reset(seed=0)
        obs, reward, terminated, truncated, _ = env.step(obs[JOINTS])
        assert isinstance(reward, float) and not terminated and not truncated
        assert env.spec.max_episode_steps == 250
    finally:
        env.close()
    assert _wait_gone(pid, timeout=30), f"the MetaSim server (PID {pid}) outlived close()"
