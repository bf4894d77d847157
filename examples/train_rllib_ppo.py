"""RLlib PPO on a Ray server pool: N gym-remote servers as Ray actors, one EnvRunner per server.

Run it in the Ray venv (Ray 2.60's RLlib pins Gymnasium 1.2)::

    RAY_PY=$(bash scripts/build_ray_venv.sh | tail -n1)
    $RAY_PY examples/train_rllib_ppo.py                  # local: well under a minute
    # on a cluster, servers on GPU nodes, runners wherever Ray puts them:
    python examples/train_rllib_ppo.py --address auto --resources '{"GPU": 1}' --servers 4 --runners 8 \\
        --backend isaaclab --task Isaac-Cartpole

What it shows: ``start_pool`` places the servers by their resources (here a custom ``sim_gpu``
resource stands in for GPUs on a machine without one); ``gym_remote.rllib.register()`` makes the plain
``"Remote-IsaacSim-v0"`` id known to every EnvRunner through RLlib's registry (no import there);
``pool_env_config`` hands each EnvRunner the pool's endpoints and CURVE keys, and ``PoolEnvRunner``
connects EnvRunner ``i`` to server ``(i - 1) % N`` with one session of ``--envs-per-runner``
sub-envs (vector-entry-point mode: one round trip per batched step).
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--address", help="a Ray cluster to join ('auto'); default: a local one on 127.0.0.1")
    p.add_argument("--servers", type=int, default=2)
    p.add_argument("--resources", type=json.loads, help="per server, e.g. '{\"GPU\": 1}' (local default: sim_gpu)")
    p.add_argument("--backend", default="gymnasium")
    p.add_argument("--task", default="CartPole-v1")
    p.add_argument("--runners", type=int, default=2, help="EnvRunners (each on one pool server)")
    p.add_argument("--envs-per-runner", type=int, default=4)
    p.add_argument("--iterations", type=int, default=40)
    p.add_argument("--target", type=float, default=150.0, help="stop once the mean return reaches this")
    args = p.parse_args()
    if not args.address:  # keep a one-machine Ray on 127.0.0.1 (read when ray is imported)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

    import ray
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    import gym_remote.rllib as grl
    from gym_remote.launch.ray_pool import start_pool

    if args.address:
        ray.init(address=args.address)
        resources = args.resources or {"GPU": 1}
    else:
        ray.init(num_cpus=args.runners, resources={"sim_gpu": args.servers}, include_dashboard=False)
        resources = args.resources or {"sim_gpu": 1}

    with start_pool(args.servers, backend=args.backend, task=args.task, resources=resources) as pool:
        print(f"pool: {pool}")
        grl.register()
        config = (
            PPOConfig()
            .environment(grl.ENV_ID, env_config=grl.pool_env_config(pool, task=args.task))
            .env_runners(
                num_env_runners=args.runners,
                num_envs_per_env_runner=args.envs_per_runner,
                gym_env_vectorize_mode="vector_entry_point",
                env_runner_cls=grl.PoolEnvRunner,
            )
            .training(train_batch_size_per_learner=1024, minibatch_size=256, num_epochs=6, lr=3e-4, vf_loss_coeff=0.01)
            .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[64, 64]))
        )
        algo = config.build_algo()
        try:
            t0 = time.monotonic()
            for i in range(args.iterations):
                result = algo.train()["env_runners"]
                ret = result.get("episode_return_mean", float("nan"))
                steps = result.get("num_env_steps_sampled_lifetime", 0)
                elapsed = time.monotonic() - t0
                print(f"iteration {i + 1:>3}: return {ret:7.1f}  env steps {steps:>8,.0f}  {elapsed:6.1f} s")
                if ret >= args.target:
                    break
        finally:
            algo.stop()  # closes every EnvRunner's session
    ray.shutdown()


if __name__ == "__main__":
    main()
