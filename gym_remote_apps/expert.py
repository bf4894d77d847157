"""The scripted stack-cube expert's benchmark on the local MuJoCo task.

Command: ``python -m gym_remote_apps.expert --episodes 50 --seed 0`` (``-v`` logs every episode).
The expert itself, and :func:`~gym_remote.tasks.expert.evaluate_expert`, are library code in
:mod:`gym_remote.tasks.expert`.
"""

from __future__ import annotations

import argparse
import logging

import gymnasium as gym

from gym_remote.tasks.expert import evaluate_expert

__all__ = ["main"]


def _local_env() -> gym.Env:
    from gym_remote.tasks.stack_cube import StackCubeEnv

    return gym.wrappers.TimeLimit(StackCubeEnv(), max_episode_steps=250)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark the scripted stack-cube expert locally.")
    parser.add_argument("--episodes", type=int, default=50, help="number of episodes (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every episode")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)

    result = evaluate_expert(_local_env, args.episodes, args.seed, progress=True)
    steps = result["mean_steps_to_success"]
    print(f"success rate: {result['success_rate']:.1%} ({result['successes']}/{result['episodes']})")
    print(f"mean steps to success: {steps:.1f}" if steps is not None else "mean steps: n/a")
    print(f"time per episode: {result['seconds_per_episode']:.2f} s")
    if result["failed_seeds"]:
        print(f"failed seeds: {result['failed_seeds']}")


if __name__ == "__main__":
    main()
