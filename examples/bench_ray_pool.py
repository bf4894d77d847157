"""Env-steps/s of a Ray server pool of 2 and 4 local servers against one server, in one run.

Run it in the Ray venv (Ray 2.60's RLlib pins Gymnasium 1.2, so Ray lives in a venv of its own)::

    $(bash scripts/build_ray_venv.sh) examples/bench_ray_pool.py            # ~1 minute
    $(bash scripts/build_ray_venv.sh) examples/bench_ray_pool.py --num-envs 1024 --seconds 5

One local Ray cluster (kept on 127.0.0.1), a custom ``sim_gpu`` resource standing in for GPUs, one
pool per size started up front (1 + 2 + 4 servers), each serving ``--task`` with CURVE on. A
``RemoteVectorEnv`` of ``--num-envs`` sub-envs fans out over each pool (every server steps its share
concurrently); the sizes are timed in interleaved rounds, and the median of the rounds is printed
with its ratio to one server. Each server is one process, so the gain is bounded by the cores that
are free: on a 2-core machine, 4 servers cannot beat 2.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

# A single-machine Ray on 127.0.0.1 only (Ray otherwise registers the node under its first
# interface's address): read when ray is imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import numpy as np
import ray

from gym_remote import ConnectOptions
from gym_remote.launch.ray_pool import RayServerPool, start_pool
from gym_remote.vector import RemoteVectorEnv


def rate(venv: RemoteVectorEnv, actions: list[np.ndarray], seconds: float) -> float:
    """Env-steps/s of ``venv`` stepping for about ``seconds``."""
    steps, i = 0, 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        venv.step(actions[i % len(actions)])
        steps += 1
        i += 1
    return steps * venv.num_envs / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="CartPole-v1")
    p.add_argument("--num-envs", type=int, default=512, help="sub-envs in all, split over the servers")
    p.add_argument("--servers", type=int, nargs="+", default=[1, 2, 4], help="pool sizes to compare")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds per size and round")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()

    ray.init(num_cpus=os.cpu_count(), resources={"sim_gpu": sum(args.servers)}, include_dashboard=False)
    pools: dict[int, RayServerPool] = {}
    venvs: dict[int, RemoteVectorEnv] = {}
    try:
        for n in args.servers:
            pools[n] = start_pool(n, task=args.task, resources={"sim_gpu": 1})
            options = ConnectOptions(**pools[n].client_options())
            venvs[n] = RemoteVectorEnv(args.num_envs, hosts=pools[n].hosts, task=args.task, options=options)
            venvs[n].reset(seed=0)
        space = venvs[args.servers[0]].action_space
        space.seed(0)
        actions = [space.sample() for _ in range(64)]
        for venv in venvs.values():  # warm up every path once before timing
            rate(venv, actions, 0.5)
        rates: dict[int, list[float]] = {n: [] for n in args.servers}
        for r in range(args.rounds):
            order = args.servers[r % len(args.servers) :] + args.servers[: r % len(args.servers)]
            for n in order:
                rates[n].append(rate(venvs[n], actions, args.seconds))
        base = statistics.median(rates[args.servers[0]])
        print(
            f"{args.task}, {args.num_envs} sub-envs in all, Ray pool on this machine "
            f"({os.cpu_count()} cores), median of {args.rounds} interleaved rounds of {args.seconds:g} s:"
        )
        print(f"{'servers':>8} {'env-steps/s':>12} {'vs ' + str(args.servers[0]):>7}   rounds")
        for n in args.servers:
            med = statistics.median(rates[n])
            rounds = ", ".join(f"{x:,.0f}" for x in rates[n])
            print(f"{n:>8} {med:>12,.0f} {med / base:>6.2f}x   {rounds}")
    finally:
        for venv in venvs.values():
            venv.close()
        for pool in pools.values():
            pool.close()
        ray.shutdown()


if __name__ == "__main__":
    main()
