"""Train an Isaac Lab task with rsl_rl and Isaac Lab's own recipe, the simulator behind gym-remote.

What Isaac Lab's ``scripts/reinforcement_learning/rsl_rl/train.py`` does in-process, with the env on a
server: the task's agent cfg (``rsl_rl_cfg_entry_point``) through ``handle_deprecated_rsl_rl_cfg`` and
``to_dict``, an ``OnPolicyRunner`` over :class:`gym_remote.rsl_rl.RemoteRslRlVecEnv` (Isaac Lab's
``RslRlVecEnvWrapper``, remotely), ``learn(max_iterations, init_at_random_ep_len=True)``, logs and
checkpoints under ``logs/rsl_rl/<experiment_name>/<time>``.

The recipe: read from Isaac Lab when it is importable here; otherwise the copy in ``RECIPES`` below,
made once in the Isaac Lab 3.0.0 venv (rsl-rl-lib 5.5.1) with::

    cfg = handle_deprecated_rsl_rl_cfg(CartpolePPORunnerCfg(), "5.5.1")   # isaaclab_rl.rsl_rl.utils
    print(json.dumps(isaaclab.utils.to_dict(cfg)))   # isaaclab_tasks/core/cartpole/agents/rsl_rl_ppo_cfg.py

(``tests/test_rsl_rl_real.py`` checks that copy against the venv's Isaac Lab.)

Run (needs ``pip install "gym-remote[rsl-rl]"``):
  python3 examples/train_rsl_rl.py --task Isaac-Cartpole --host 127.0.0.1 --port 5555   # a server you started
  python3 examples/train_rsl_rl.py --task Isaac-Cartpole --asset-root /tmp/isaac-assets  # a local server from
      # the Isaac Lab venv (scripts/build_isaaclab_venv.sh); --python picks another venv's python
  python3 examples/train_rsl_rl.py --print-recipe   # the recipe as JSON (in the Isaac Lab venv: Isaac Lab's)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

_CARTPOLE: dict[str, Any] = {
    "seed": 42,
    "device": "cuda:0",
    "num_steps_per_env": 16,
    "init_at_random_ep_len": True,
    "max_iterations": 150,
    "empirical_normalization": {},
    "obs_groups": {},
    "clip_actions": None,
    "check_for_nan": True,
    "save_interval": 50,
    "experiment_name": "cartpole",
    "run_name": "",
    "logger": "tensorboard",
    "neptune_project": "isaaclab",
    "wandb_project": "isaaclab",
    "resume": False,
    "load_run": ".*",
    "load_checkpoint": "model_.*.pt",
    "class_name": "OnPolicyRunner",
    "actor": {
        "class_name": "MLPModel",
        "hidden_dims": [32, 32],
        "activation": "elu",
        "obs_normalization": False,
        "distribution_cfg": {
            "class_name": "GaussianDistribution",
            "init_std": 1.0,
            "std_type": "scalar",
            "std_range": [1e-06, 1000000.0],
        },
    },
    "critic": {
        "class_name": "MLPModel",
        "hidden_dims": [32, 32],
        "activation": "elu",
        "obs_normalization": False,
        "distribution_cfg": None,
    },
    "algorithm": {
        "class_name": "PPO",
        "num_learning_epochs": 5,
        "num_mini_batches": 4,
        "learning_rate": 0.001,
        "schedule": "adaptive",
        "gamma": 0.99,
        "lam": 0.95,
        "entropy_coef": 0.005,
        "desired_kl": 0.01,
        "max_grad_norm": 1.0,
        "optimizer": "adam",
        "value_loss_coef": 1.0,
        "use_clipped_value_loss": True,
        "clip_param": 0.2,
        "normalize_advantage_per_mini_batch": False,
        "share_cnn_encoders": False,
        "use_mixed_precision": False,
        "rnd_cfg": None,
        "symmetry_cfg": None,
    },
    "torch_compile_mode": None,
    "policy": {},
}

#: Isaac Lab 3.0.0's rsl_rl recipes (rsl-rl-lib 5.5.1 dicts), for clients without Isaac Lab.
RECIPES: dict[str, dict[str, Any]] = {
    "Isaac-Cartpole": _CARTPOLE,  # CartpolePPORunnerCfg
    "Isaac-Cartpole-Direct": {**_CARTPOLE, "experiment_name": "cartpole_direct"},  # CartpoleDirectPPORunnerCfg
}


def isaaclab_recipe(task: str) -> dict[str, Any]:
    """The task's rsl_rl agent cfg as Isaac Lab's train.py builds it (needs Isaac Lab importable)."""
    import importlib.metadata

    import isaaclab_tasks  # noqa: F401  (registers the tasks)
    from isaaclab.utils import to_dict
    from isaaclab_rl.rsl_rl.utils import handle_deprecated_rsl_rl_cfg
    from isaaclab_tasks.utils.parse_cfg import load_cfg_from_registry

    cfg = load_cfg_from_registry(task, "rsl_rl_cfg_entry_point")
    return to_dict(handle_deprecated_rsl_rl_cfg(cfg, importlib.metadata.version("rsl-rl-lib")))


def recipe(task: str) -> tuple[dict[str, Any], str]:
    """``(agent cfg dict, where it came from)``: Isaac Lab's when importable, else the copy in ``RECIPES``.

    Raises:
        KeyError: no Isaac Lab here and no copy of the task's recipe.
    """
    try:
        return isaaclab_recipe(task), "Isaac Lab (installed)"
    except ImportError:
        pass
    if task not in RECIPES:
        raise KeyError(f"no Isaac Lab here and no copy of {task!r}'s recipe; copies: {sorted(RECIPES)}")
    return copy.deepcopy(RECIPES[task]), "copy of Isaac Lab 3.0.0's (examples/train_rsl_rl.py RECIPES)"


@contextlib.contextmanager
def server_for(args: argparse.Namespace, obs_group: str | None = None) -> Any:
    """``(host, port)`` of the server to train on: the one given, or a local one in the Isaac Lab venv.

    A local server serves ``obs_group`` (``None``: every observation group, ``policy``, ``critic``...).
    """
    if args.host:
        yield args.host, args.port
        return
    from gym_remote.local import LocalServer
    from gym_remote_apps.venvs import server_python

    settings: dict[str, Any] = {"obs_group": obs_group}
    if args.asset_root:
        settings["asset_root"] = args.asset_root
    print(f"starting a local Isaac Lab server for {args.task} (a cold Warp cache compiles for minutes)", flush=True)
    with LocalServer(
        "isaaclab",
        args.task,
        settings,
        python=args.python or server_python("isaaclab"),
        startup_timeout=600,
        env={"PYTHONPATH": str(ROOT)},
    ) as server:
        yield server.local_host, server.local_port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="Isaac-Cartpole")
    parser.add_argument("--host", help="a running server (default: start a local one from the Isaac Lab venv)")
    parser.add_argument("--port", type=int, default=5555)
    parser.add_argument("--python", help="the Isaac Lab venv's python for a local server")
    parser.add_argument("--asset-root", help="a local asset mirror for a local server")
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--max-iterations", type=int, help="default: the recipe's")
    parser.add_argument("--seed", type=int, help="default: the recipe's")
    parser.add_argument("--device", default="cpu", help="the trainer's device (the recipe says cuda:0)")
    parser.add_argument("--log-dir", default="logs/rsl_rl")
    parser.add_argument("--print-recipe", action="store_true", help="print the recipe as JSON and exit")
    parser.add_argument(
        "--rollout-threads",
        type=int,
        default=1,
        help="torch threads outside the PPO updates (gym_remote.rsl_rl.split_threads); 0: torch's own count",
    )
    args = parser.parse_args(argv)

    agent_cfg, source = recipe(args.task)
    if args.print_recipe:
        print(json.dumps(agent_cfg))
        return 0

    import torch
    from rsl_rl.runners import OnPolicyRunner

    from gym_remote.rsl_rl import RemoteRslRlVecEnv, split_threads

    if args.max_iterations is not None:
        agent_cfg["max_iterations"] = args.max_iterations
    if args.seed is not None:
        agent_cfg["seed"] = args.seed
    agent_cfg["device"] = args.device
    torch.manual_seed(agent_cfg["seed"])  # in-process, Isaac Lab's env seeds torch from env_cfg.seed
    run = time.strftime("%Y-%m-%d_%H-%M-%S") + (f"_{agent_cfg['run_name']}" if agent_cfg["run_name"] else "")
    log_dir = os.path.abspath(os.path.join(args.log_dir, agent_cfg["experiment_name"], run))
    print(f"recipe: {source}; logs: {log_dir}", flush=True)
    with (
        server_for(args) as (host, port),
        RemoteRslRlVecEnv(
            num_envs=args.num_envs,
            host=host,
            port=port,
            task=args.task,
            connect_timeout=600,
            device=args.device,
            clip_actions=agent_cfg["clip_actions"],
            seed=agent_cfg["seed"],
        ) as env,
    ):
        runner = OnPolicyRunner(env, agent_cfg, log_dir=log_dir, device=args.device)
        if args.rollout_threads and args.device == "cpu":
            split_threads(runner, rollout=args.rollout_threads)  # rollouts wait for the server: see its docs
        start = time.perf_counter()
        runner.learn(agent_cfg["max_iterations"], init_at_random_ep_len=agent_cfg["init_at_random_ep_len"])
        print(f"trained {agent_cfg['max_iterations']} iterations in {time.perf_counter() - start:.0f} s; {log_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
