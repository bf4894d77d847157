"""Train PPO (Stable-Baselines3) on a remote CartPole-v1 and print the evaluated mean reward.

A server subprocess on this machine stands in for the GPU box; pass --host/--port to use a real one.
Hyperparameters are the RL Zoo's for CartPole. Run: python examples/train_sb3_ppo.py --help
"""

from __future__ import annotations

import argparse
import time

from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecMonitor

from gym_remote import RemoteEnv
from gym_remote.local import LocalServer
from gym_remote.sb3 import RemoteVecEnv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="server host (default: start a local server)")
    parser.add_argument("--port", type=int, default=5555)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=20)
    args = parser.parse_args()

    server = None
    host, port = args.host, args.port
    if host is None:
        server = LocalServer("gymnasium", "CartPole-v1")
        host, port = server.local_host, server.local_port
    try:
        venv = VecMonitor(RemoteVecEnv(num_envs=args.num_envs, host=host, port=port, task="CartPole-v1"))
        venv.seed(args.seed)
        model = PPO(
            "MlpPolicy",
            venv,
            n_steps=32,
            batch_size=256,
            gae_lambda=0.8,
            gamma=0.98,
            n_epochs=20,
            ent_coef=0.0,
            learning_rate=lambda p: 1e-3 * p,
            clip_range=lambda p: 0.2 * p,
            seed=args.seed,
            device="cpu",
            verbose=0,
        )
        t0 = time.perf_counter()
        model.learn(args.timesteps, progress_bar=True)
        elapsed = time.perf_counter() - t0
        venv.close()
        eval_env = RemoteEnv(host, port, task="CartPole-v1")
        mean, std = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
        eval_env.close()
    finally:
        if server is not None:
            server.close()
    print(
        f"trained {args.timesteps} steps on {args.num_envs} remote envs in {elapsed:.0f} s "
        f"({args.timesteps / elapsed:,.0f} env-steps/s including learning)"
    )
    print(f"mean episode reward over {args.eval_episodes} episodes: {mean:.1f} +/- {std:.1f}")


if __name__ == "__main__":
    main()
