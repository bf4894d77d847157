"""An Isaac Lab task, N sub-envs: in-process Isaac Lab against the same task through gym-remote, in one run.

Both sides run the real Isaac Lab 3.0 from its venv (`bash scripts/build_isaaclab_venv.sh`), on the task's
default physics (Newton for Cartpole) or what `--override` picks (`--override physics=ovphysx`: PhysX).
Camera tasks work the same way and print the pixels' GB/s, e.g. Isaac Lab's Warp-rendered Cartpole camera:
  python examples/bench_isaaclab.py --task Isaac-Cartpole-Camera-Direct -n 16 --override physics=ovphysx
In-process: this script re-runs itself in that venv and steps `gym.make(id, cfg=cfg)` directly with torch
actions (no copies, no sockets). Through gym-remote: a local server in the same venv, a `RemoteVectorEnv`
here (same_step autoreset, one round trip per batched step, observations as numpy). Rounds alternate
so that machine noise hits both; the figure is the median ratio.
Run: python examples/bench_isaaclab.py --help
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def in_process(task: str, num_envs: int, steps: int, warmup: int, asset_root: str, overrides: list[str]) -> float:
    """Env-steps/s of Isaac Lab alone (runs inside the Isaac Lab venv)."""
    os.environ["ISAACSIM_ASSET_ROOT"] = asset_root
    import gymnasium as gym
    import isaaclab_tasks  # noqa: F401
    import torch
    from isaaclab.app import launch_simulation
    from isaaclab_tasks.utils import parse_env_cfg

    from gym_remote.backends.isaaclab.physics import physics_name, unpin_host_buffers_without_cuda

    cfg = parse_env_cfg(task, device="cpu", num_envs=num_envs, overrides=overrides)
    if physics_name(cfg) in ("ovphysx", "physx"):
        unpin_host_buffers_without_cuda()  # as the server does: ovphysx pins host buffers, which needs CUDA
    with launch_simulation(cfg, {}):
        env = gym.make(task, cfg=cfg)
        env.reset(seed=0)
        action = torch.zeros(num_envs, *env.unwrapped.single_action_space.shape)
        for _ in range(warmup):
            env.step(action)
        start = time.perf_counter()
        for _ in range(steps):
            env.step(action)
        rate = num_envs * steps / (time.perf_counter() - start)
        env.close()
    return rate


def remote(host: str, port: int, task: str, num_envs: int, steps: int, warmup: int) -> tuple[float, int]:
    """Env-steps/s through gym-remote (a RemoteVectorEnv on this side), and the bytes of one batched observation."""
    import numpy as np

    from gym_remote import ConnectOptions
    from gym_remote.vector import RemoteVectorEnv

    options = ConnectOptions(connect_timeout=900)
    venv = RemoteVectorEnv(num_envs, host, port, task=task, autoreset_mode="same_step", options=options)
    try:
        obs, _ = venv.reset(seed=0)
        size = sum(a.nbytes for a in (obs.values() if isinstance(obs, dict) else [obs]))
        action = np.zeros((num_envs, *venv.single_action_space.shape), np.float32)
        for _ in range(warmup):
            venv.step(action)
        start = time.perf_counter()
        for _ in range(steps):
            venv.step(action)
        return num_envs * steps / (time.perf_counter() - start), size
    finally:
        venv.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="Isaac-Cartpole")
    parser.add_argument("-n", "--num-envs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=200, help="timed batched steps per round")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--override",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Isaac Lab Hydra override for both sides, repeatable (physics=ovphysx, env.scene.tiled_camera.width=64)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable for the gym-remote server only (repeatable), e.g. OMP_NUM_THREADS=1",
    )
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)  # the venv side
    parser.add_argument("--asset-root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process:
        rate = in_process(args.task, args.num_envs, args.steps, args.warmup, args.asset_root, args.overrides)
        print(json.dumps({"rate": rate}))
        return

    from tqdm import tqdm

    from gym_remote.local import LocalServer
    from gym_remote_apps.venvs import isaaclab_asset_root, server_python

    python, assets = server_python("isaaclab"), isaaclab_asset_root()
    child = [python, __file__, "--in-process", "--asset-root", assets, "--task", args.task]
    child += ["-n", str(args.num_envs), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    child += [f"--override={o}" for o in args.overrides]
    extra = [f"--override={o}" for o in args.overrides]
    local: list[float] = []
    through: list[float] = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kwargs = {"asset_root": assets}
    server_env = {**env, **dict(item.split("=", 1) for item in args.server_env)}
    with LocalServer(
        "isaaclab", args.task, kwargs, extra_args=extra, python=python, startup_timeout=900, env=server_env
    ) as srv:
        for _ in tqdm(range(args.rounds), desc="rounds", unit="round"):
            out = subprocess.run(child, capture_output=True, text=True, env=env, check=True).stdout
            local.append(json.loads(out.strip().splitlines()[-1])["rate"])
            rate, size = remote(srv.local_host, srv.local_port, args.task, args.num_envs, args.steps, args.warmup)
            through.append(rate)
    ratios = [t / loc for t, loc in zip(through, local, strict=True)]
    on = f" with {' '.join(args.overrides)}" if args.overrides else ""
    print(f"{args.task}{on}, {args.num_envs} sub-envs, {args.steps} steps a round, {args.rounds} rounds (env-steps/s):")
    print(f"  in-process Isaac Lab   median {statistics.median(local):9,.0f}   all {[round(x) for x in local]}")
    print(f"  through gym-remote     median {statistics.median(through):9,.0f}   all {[round(x) for x in through]}")
    print(f"  ratio                  median {statistics.median(ratios):.2f}x  all {[round(r, 2) for r in ratios]}")
    per_env = size / args.num_envs
    gbps = statistics.median(through) * per_env / 1e9
    print(f"  observations           {per_env:,.0f} bytes per sub-env step; {gbps:.3f} GB/s through gym-remote")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
