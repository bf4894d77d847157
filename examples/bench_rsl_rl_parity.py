"""Learning parity: Isaac Lab's rsl_rl recipe trained in-process and through gym-remote, same seeds.

In-process: this script re-runs itself in the Isaac Lab venv and trains as Isaac Lab's
``scripts/reinforcement_learning/rsl_rl/train.py`` does: ``env_cfg.seed = seed``,
``gym.make(task, cfg=env_cfg)``, ``RslRlVecEnvWrapper``, ``OnPolicyRunner(...).learn(iterations,
init_at_random_ep_len=True)``. Through gym-remote: a local server from the same venv, and here
:class:`gym_remote.rsl_rl.RemoteRslRlVecEnv` under the same runner and recipe (``torch.manual_seed(seed)``
here, the server reset with ``seed``). Both count episode returns the same way (rsl_rl's logger
figure: the mean of the last 100 episodes that ended) and time ``learn()`` alone (no start-up).
Rounds alternate in-process / remote per seed, so that machine noise hits both.

Run: python3 examples/bench_rsl_rl_parity.py --num-envs 256 --iterations 60 --seeds 0 1 2
     (--asset-root DIR: an offline asset mirror; --python: the Isaac Lab venv's python)
``--inprocess-steps`` (inside the venv) prints one JSON line of the first steps' outputs of Isaac
Lab's own wrapper, for ``tests/test_rsl_rl_real.py``'s parity check.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from rsl_rl.env import VecEnv  # noqa: E402
from train_rsl_rl import recipe  # noqa: E402


class EpisodeReturns(VecEnv):
    """A pass-through ``VecEnv`` that keeps the returns of the last 100 episodes that ended."""

    def __init__(self, env: VecEnv) -> None:
        self.env = env
        self.num_envs, self.num_actions, self.device = env.num_envs, env.num_actions, env.device
        self.max_episode_length, self.cfg = env.max_episode_length, env.cfg
        self.running = torch.zeros(env.num_envs, device=env.device)
        self.returns: deque[float] = deque(maxlen=100)
        self.episodes = 0
        self.step_rewards: list[float] = []
        self.env_s = 0.0  # seconds inside the wrapped env's step (the simulator, and the wire when remote)

    @property
    def episode_length_buf(self) -> torch.Tensor:
        return self.env.episode_length_buf

    @episode_length_buf.setter
    def episode_length_buf(self, value: torch.Tensor) -> None:
        self.env.episode_length_buf = value

    def get_observations(self) -> Any:
        return self.env.get_observations()

    def step(self, actions: torch.Tensor) -> Any:
        start = time.perf_counter()
        obs, rew, dones, extras = self.env.step(actions)
        self.env_s += time.perf_counter() - start
        self.running += rew
        self.step_rewards.append(float(rew.mean()))
        ended = dones.bool()
        self.returns.extend(self.running[ended].tolist())
        self.episodes += int(ended.sum())
        self.running[ended] = 0
        return obs, rew, dones, extras


def _timed(fn: Any, spent: dict[str, float], name: str) -> Any:
    """``fn``, adding the seconds each call takes to ``spent[name]``."""

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - start

    return timed


def _train(env: VecEnv, agent_cfg: dict[str, Any], iterations: int, rollout_threads: int = 0) -> dict[str, Any]:
    from rsl_rl.runners import OnPolicyRunner

    counted = EpisodeReturns(env)
    runner = OnPolicyRunner(counted, agent_cfg, log_dir=None, device="cpu")
    threads = torch.get_num_threads()
    if rollout_threads:
        from gym_remote.rsl_rl import split_threads

        split_threads(runner, rollout=rollout_threads, update=threads)
    spent = {"act": 0.0, "update": 0.0}  # the trainer's own work: acting during rollouts, the PPO update
    for name in spent:
        setattr(runner.alg, name, _timed(getattr(runner.alg, name), spent, name))
    start = time.perf_counter()
    try:
        runner.learn(iterations, init_at_random_ep_len=True)
    finally:
        torch.set_num_threads(threads)
    wall = time.perf_counter() - start
    ret = statistics.fmean(counted.returns) if counted.returns else float("nan")
    last = counted.step_rewards[-5 * agent_cfg["num_steps_per_env"] :]  # the last 5 iterations
    rate = statistics.fmean(last) * int(env.max_episode_length)  # per step, scaled to one full episode
    return {
        "mean_return": ret,
        "step_x_T": rate,
        "learn_s": wall,
        "env_s": counted.env_s,
        "trainer_s": wall - counted.env_s,
        "act_s": spent["act"],
        "update_s": spent["update"],
        "episodes": counted.episodes,
    }


def _isaaclab_env(
    task: str, num_envs: int, seed: int, cfg_attrs: dict[str, Any], overrides: list[str] | None = None
) -> Any:
    """Isaac Lab's env as its train.py makes it (inside the venv), on the CPU, with Hydra ``overrides``."""
    import gymnasium as gym
    import isaaclab_tasks  # noqa: F401
    from isaaclab.app import launch_simulation
    from isaaclab_tasks.utils import parse_env_cfg

    from gym_remote.backends.isaaclab.physics import physics_name, unpin_host_buffers_without_cuda

    cfg = parse_env_cfg(task, device="cpu", num_envs=num_envs, overrides=overrides or [])
    if physics_name(cfg) in ("ovphysx", "physx"):
        unpin_host_buffers_without_cuda()  # as the server does: ovphysx pins host buffers, which needs CUDA
    cfg.seed = seed
    for key, value in cfg_attrs.items():
        setattr(cfg, key, value)
    launch_simulation(cfg, {}).__enter__()  # kit-less for Newton: nothing to close before exit
    return gym.make(task, cfg=cfg)


def in_process_train(args: argparse.Namespace) -> dict[str, Any]:
    from isaaclab_rl.rsl_rl import RslRlVecEnvWrapper

    agent_cfg, _ = recipe(args.task)
    agent_cfg.update(seed=args.seed, device="cpu")
    env = RslRlVecEnvWrapper(
        _isaaclab_env(args.task, args.num_envs, args.seed, {}, args.overrides), clip_actions=agent_cfg["clip_actions"]
    )
    return _train(env, agent_cfg, args.iterations)


def in_process_steps(args: argparse.Namespace) -> dict[str, Any]:
    """The first ``args.steps`` outputs of Isaac Lab's RslRlVecEnvWrapper under ``step_actions``."""
    from isaaclab_rl.rsl_rl import RslRlVecEnvWrapper

    attrs = {"episode_length_s": args.episode_length_s} if args.episode_length_s else {}
    env = RslRlVecEnvWrapper(_isaaclab_env(args.task, args.num_envs, args.seed, attrs))
    env.unwrapped.reset(seed=args.seed)  # as a gym-remote client's reset(seed): the server reset once before
    if args.write_lengths:  # as OnPolicyRunner.learn(init_at_random_ep_len=True) does
        env.episode_length_buf = torch.tensor([int(x) for x in args.write_lengths.split(",")], device=env.device)
    out = {"max_episode_length": int(env.max_episode_length), "num_actions": env.num_actions, "steps": []}
    out["obs0"] = {k: v.tolist() for k, v in env.get_observations().items()}
    out["obs_dtypes"] = {k: str(v.dtype) for k, v in env.get_observations().items()}
    for t in range(args.steps):
        obs, rew, dones, extras = env.step(step_actions(t, env.num_envs, env.num_actions))
        out["steps"].append(describe(obs, rew, dones, extras))
    return out


def step_actions(t: int, num_envs: int, num_actions: int) -> torch.Tensor:
    """A fixed action sequence both sides of the parity check play (sweeps the cart both ways)."""
    i = torch.arange(num_envs * num_actions, dtype=torch.float32).reshape(num_envs, num_actions)
    return 3.0 * torch.sin(0.3 * t + i)


def describe(obs: Any, rew: torch.Tensor, dones: torch.Tensor, extras: dict[str, Any]) -> dict[str, Any]:
    """One step's outputs as JSON-able values and dtypes (the parity check compares them)."""
    log = extras.get("log", {})
    return {
        "obs": {k: v.tolist() for k, v in obs.items()},
        "rew": rew.tolist(),
        "dones": dones.tolist(),
        "time_outs": extras["time_outs"].tolist() if "time_outs" in extras else None,
        "dtypes": [str(rew.dtype), str(dones.dtype), str(extras["time_outs"].dtype) if "time_outs" in extras else ""],
        "extras_keys": sorted(extras),
        "log": {k: float(v) for k, v in log.items()},
    }


def remote_train(args: argparse.Namespace, seed: int, host: str, port: int) -> dict[str, Any]:
    from gym_remote.rsl_rl import RemoteRslRlVecEnv

    agent_cfg, _ = recipe(args.task)
    agent_cfg.update(seed=seed, device="cpu")
    torch.manual_seed(seed)  # in-process, Isaac Lab's env seeds torch from env_cfg.seed
    with RemoteRslRlVecEnv(
        num_envs=args.num_envs,
        host=host,
        port=port,
        task=args.task,
        connect_timeout=900,
        timeout=120,
        seed=seed,
        clip_actions=agent_cfg["clip_actions"],
    ) as env:
        return _train(env, agent_cfg, args.iterations, args.rollout_threads)


def _in_venv(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    cmd = [args.python, __file__, "--inprocess", "--task", args.task, "--num-envs", str(args.num_envs)]
    cmd += ["--iterations", str(args.iterations), "--seed", str(seed)]
    if args.asset_root:
        cmd += ["--asset-root", args.asset_root]
    cmd += [f"--override={o}" for o in args.overrides]
    env = {**os.environ, "PYTHONPATH": str(ROOT), **dict(item.split("=", 1) for item in args.inprocess_env)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"in-process run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="Isaac-Cartpole")
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--python", help="the Isaac Lab venv's python (default: gym_remote_apps.venvs)")
    parser.add_argument("--asset-root", help="an offline asset mirror")
    parser.add_argument(
        "--override",
        dest="overrides",
        action="append",
        default=[],
        help="Isaac Lab Hydra override for both sides, repeatable (physics=ovphysx: PhysX)",
    )
    parser.add_argument(
        "--inprocess-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable for the in-process run only (repeatable), e.g. OMP_WAIT_POLICY= (its default)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable for the gym-remote server only (repeatable), e.g. OMP_WAIT_POLICY=PASSIVE",
    )
    parser.add_argument(
        "--rollout-threads",
        type=int,
        default=1,
        help="gym-remote's trainer: torch threads outside the PPO updates, as examples/train_rsl_rl.py "
        "(gym_remote.rsl_rl.split_threads); 0: torch's own count. The in-process run keeps Isaac Lab's defaults",
    )
    parser.add_argument("--inprocess", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--inprocess-steps", type=int, dest="steps", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--episode-length-s", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--write-lengths", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inprocess or args.steps:
        if args.asset_root:  # before anything imports Isaac Lab's assets module, which reads it once
            os.environ["ISAACSIM_ASSET_ROOT"] = args.asset_root
        out = in_process_steps(args) if args.steps else in_process_train(args)
        print(json.dumps(out), flush=True)
        os._exit(0)  # Isaac Lab's atexit hooks take long and print; the result is out

    from gym_remote.local import LocalServer
    from gym_remote_apps.venvs import server_python

    args.python = args.python or server_python("isaaclab")
    settings: dict[str, Any] = {"asset_root": args.asset_root} if args.asset_root else {}
    rows = []
    server_env = {"PYTHONPATH": str(ROOT), **dict(item.split("=", 1) for item in args.server_env)}
    python = args.python
    extra = [f"--override={o}" for o in args.overrides]
    with LocalServer(
        "isaaclab", args.task, settings, extra_args=extra, python=python, startup_timeout=900, env=server_env
    ) as server:
        for seed in args.seeds:
            local = _in_venv(args, seed)
            print(f"seed {seed} in-process: {local}", flush=True)
            far = remote_train(args, seed, server.local_host, server.local_port)
            print(f"seed {seed} gym-remote: {far}", flush=True)
            rows.append((seed, local, far))
    on = f" with {' '.join(args.overrides)}" if args.overrides else ""
    print(f"\n{args.task}{on}, N={args.num_envs}, {args.iterations} iterations (learn() wall-clock, no start-up)")
    print("(return: rsl_rl's figure, the mean of the last 100 episodes; step reward x T: the mean step reward of")
    print(" the last 5 iterations times max_episode_length, less noisy)")
    print("seed | in-process return | gym-remote return | ratio | in-process step reward x T | gym-remote | ratio |")
    print("     | in-process s | gym-remote s | speed ratio")
    for seed, a, b in rows:
        print(
            f"{seed} | {a['mean_return']:.2f} | {b['mean_return']:.2f} | {b['mean_return'] / a['mean_return']:.3f} | "
            f"{a['step_x_T']:.2f} | {b['step_x_T']:.2f} | {b['step_x_T'] / a['step_x_T']:.3f} | "
            f"{a['learn_s']:.1f} | {b['learn_s']:.1f} | {a['learn_s'] / b['learn_s']:.3f}"
        )
    a_ret = statistics.fmean(a["mean_return"] for _, a, _ in rows)
    b_ret = statistics.fmean(b["mean_return"] for _, _, b in rows)
    a_r = statistics.fmean(a["step_x_T"] for _, a, _ in rows)
    b_r = statistics.fmean(b["step_x_T"] for _, _, b in rows)
    a_s = statistics.fmean(a["learn_s"] for _, a, _ in rows)
    b_s = statistics.fmean(b["learn_s"] for _, _, b in rows)
    print(
        f"mean | {a_ret:.2f} | {b_ret:.2f} | {b_ret / a_ret:.3f} | {a_r:.2f} | {b_r:.2f} | {b_r / a_r:.3f} | "
        f"{a_s:.1f} | {b_s:.1f} | {a_s / b_s:.3f}"
        " (speed ratio: in-process time / gym-remote time)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
