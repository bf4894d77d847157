"""Real Isaac Lab on the server, MuJoCo on this machine: record Isaac-Cartpole's states, replay them as video.

The server is the real Isaac Lab 3.0 (Newton physics; on a CPU here, on the GPU box in real use),
started from its own venv (`bash scripts/build_isaaclab_venv.sh`); pass --host/--port to use a server
you started yourself. The client only receives states (17 float64 a step) and poses the local MuJoCo
Cartpole (gym_remote/assets/isaaclab_cartpole.xml) with them. Run: python examples/isaaclab_cartpole_replay.py --help
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)
from gym_remote.assets import ISAACLAB_CARTPOLE_XML
from gym_remote.local import LocalServer
from gym_remote.replay import MujocoReplayWrapper
from gym_remote_apps.venvs import isaaclab_asset_root, server_python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="server host (default: start the Isaac Lab server locally from its venv)")
    parser.add_argument("--port", type=int, default=5555)
    parser.add_argument("--task", default="Isaac-Cartpole", help="Isaac-Cartpole or Isaac-Cartpole-Direct")
    parser.add_argument("--steps", type=int, default=300, help="steps to record (5 s of simulated time at 60 Hz)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", default="isaaclab-cartpole.mp4", help="video file")
    args = parser.parse_args()

    server = None
    host, port = args.host, args.port
    t0 = time.perf_counter()
    if host is None:
        server = LocalServer(
            "isaaclab",
            args.task,
            {"asset_root": isaaclab_asset_root()},
            python=server_python("isaaclab"),
            startup_timeout=300,
        )
        host, port = server.local_host, server.local_port
    try:
        remote = gym.make("Remote-IsaacSim-v0", host=host, port=port, task=args.task, connect_timeout=300)
        env = MujocoReplayWrapper(remote, model=ISAACLAB_CARTPOLE_XML, name_map="isaaclab_cartpole")
        print(f"server ready and env built in {time.perf_counter() - t0:.1f} s")
        env.reset(seed=args.seed)
        t1 = time.perf_counter()
        for t in range(args.steps):  # a gentle back-and-forth push (action 1 = 100 N); the pole swings freely
            action = np.array([0.15 * np.sin(2 * np.pi * t / 100)], np.float32)
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
        step_ms = (time.perf_counter() - t1) * 1e3 / args.steps
        frames = env.save_video(args.output)
        env.close()
    finally:
        if server is not None:
            server.close()
    print(f"{args.steps} steps of real Isaac Lab {args.task}, {step_ms:.1f} ms per step with the state attached")
    print(f"wrote {args.output}: {frames} frames rendered locally by MuJoCo")


if __name__ == "__main__":
    main()
