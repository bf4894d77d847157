"""Train an Isaac Lab task with skrl and Isaac Lab's own skrl recipe, the simulator behind gym-remote.

skrl needs nothing from gym-remote: its Gymnasium wrapper takes a vector env, and a
``RemoteVectorEnv`` with ``autoreset_mode="same_step"`` behaves as Isaac Lab does in-process (a
sub-env that ends is reset inside the step; its row is the next episode's first observation)::

    venv = gym.make_vec("Remote-IsaacSim-v0", num_envs=256, host=..., port=..., task="Isaac-Cartpole",
                        autoreset_mode="same_step")
    env = skrl.envs.wrappers.torch.wrap_env(venv, wrapper="gymnasium")

skrl's ``wrapper="isaaclab"`` is for Isaac Lab's env object itself (torch tensors from ``step``), not for
a client. The policy sees the ``policy`` observation group: the one a server serves by default; a
server run with ``obs_group: null`` serves every group as a Dict, and ``main`` below then keeps
``policy`` (``PolicyGroup``). skrl's ``state()`` (a ``critic`` group, for
asymmetric critics) is not served this way.

What Isaac Lab's ``scripts/reinforcement_learning/skrl/train.py`` does in-process, with the env on a
server: the task's ``skrl_cfg_entry_point`` recipe, ``set_seed``, skrl's ``Runner(env, cfg).run()``,
logs under ``logs/skrl/<directory>/<time>_ppo_torch``. The recipe is read from Isaac Lab when it is
importable here, else the copy in ``RECIPES``: Isaac Lab 3.0.0's
``isaaclab_tasks/core/cartpole/agents/skrl_manager_ppo_cfg.yaml``.

Run (needs ``pip install "gym-remote[skrl]"``):
  python3 examples/train_skrl.py --task Isaac-Cartpole --host 127.0.0.1 --port 5555
  python3 examples/train_skrl.py --task Isaac-Cartpole --asset-root /tmp/isaac-assets   # a local server
  python3 examples/train_skrl.py --print-recipe   # the recipe as JSON (in the Isaac Lab venv: Isaac Lab's)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gymnasium as gym
from train_rsl_rl import server_for

_CARTPOLE: dict[str, Any] = {  # skrl_manager_ppo_cfg.yaml of Isaac Lab 3.0.0, as yaml.safe_load reads it
    "seed": 42,
    "models": {
        "separate": False,
        "policy": {
            "class": "GaussianMixin",
            "clip_actions": False,
            "clip_log_std": True,
            "min_log_std": -20.0,
            "max_log_std": 2.0,
            "initial_log_std": 0.0,
            "network": [{"name": "net", "input": "OBSERVATIONS", "layers": [32, 32], "activations": "elu"}],
            "output": "ACTIONS",
        },
        "value": {
            "class": "DeterministicMixin",
            "clip_actions": False,
            "network": [{"name": "net", "input": "OBSERVATIONS", "layers": [32, 32], "activations": "elu"}],
            "output": "ONE",
        },
    },
    "memory": {"class": "RandomMemory", "memory_size": -1},
    "agent": {
        "class": "PPO",
        "rollouts": 16,
        "learning_epochs": 8,
        "mini_batches": 8,
        "discount_factor": 0.99,
        "lambda": 0.95,
        "learning_rate": 3.0e-04,
        "learning_rate_scheduler": "KLAdaptiveLR",
        "learning_rate_scheduler_kwargs": {"kl_threshold": 0.008},
        "state_preprocessor": None,
        "state_preprocessor_kwargs": None,
        "value_preprocessor": None,
        "value_preprocessor_kwargs": None,
        "random_timesteps": 0,
        "learning_starts": 0,
        "grad_norm_clip": 1.0,
        "ratio_clip": 0.2,
        "value_clip": 0.2,
        "clip_predicted_values": True,
        "entropy_loss_scale": 0.0,
        "value_loss_scale": 2.0,
        "kl_threshold": 0.0,
        "rewards_shaper_scale": 1.0,
        "time_limit_bootstrap": False,
        "experiment": {
            "directory": "cartpole",
            "experiment_name": "",
            "write_interval": "auto",
            "checkpoint_interval": "auto",
        },
    },
    "trainer": {"class": "SequentialTrainer", "timesteps": 2400, "environment_info": "log"},
}

#: Isaac Lab 3.0.0's skrl PPO recipes, for clients without Isaac Lab.
RECIPES: dict[str, dict[str, Any]] = {"Isaac-Cartpole": _CARTPOLE}


class PolicyGroup(gym.vector.VectorWrapper):
    """The ``policy`` group of a Dict of observation groups, what skrl's Isaac Lab wrapper feeds the policy.

    (Gymnasium's ``TransformObservation`` refuses ``same_step`` vector envs.)
    """

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        super().__init__(env)
        self.single_observation_space = env.single_observation_space["policy"]
        self.observation_space = env.observation_space["policy"]

    def reset(self, **kwargs: Any) -> Any:
        obs, info = self.env.reset(**kwargs)
        return obs["policy"], info

    def step(self, actions: Any) -> Any:
        obs, *rest = self.env.step(actions)
        return (obs["policy"], *rest)


def recipe(task: str) -> tuple[dict[str, Any], str]:
    """``(skrl cfg dict, where it came from)``: Isaac Lab's when importable, else the copy in ``RECIPES``.

    Raises:
        KeyError: no Isaac Lab here and no copy of the task's recipe.
    """
    try:
        import isaaclab_tasks  # noqa: F401  (registers the tasks)
        from isaaclab_tasks.utils.parse_cfg import load_cfg_from_registry

        return load_cfg_from_registry(task, "skrl_cfg_entry_point"), "Isaac Lab (installed)"
    except ImportError:
        pass
    if task not in RECIPES:
        raise KeyError(f"no Isaac Lab here and no copy of {task!r}'s skrl recipe; copies: {sorted(RECIPES)}")
    return copy.deepcopy(RECIPES[task]), "copy of Isaac Lab 3.0.0's (examples/train_skrl.py RECIPES)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="Isaac-Cartpole")
    parser.add_argument("--host", help="a running server (default: start a local one from the Isaac Lab venv)")
    parser.add_argument("--port", type=int, default=5555)
    parser.add_argument("--python", help="the Isaac Lab venv's python for a local server")
    parser.add_argument("--asset-root", help="a local asset mirror for a local server")
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--timesteps", type=int, help="default: the recipe's")
    parser.add_argument("--seed", type=int, help="default: the recipe's")
    parser.add_argument("--log-dir", default="logs/skrl")
    parser.add_argument("--print-recipe", action="store_true", help="print the recipe as JSON and exit")
    args = parser.parse_args(argv)
    if args.print_recipe:
        print(json.dumps(recipe(args.task)[0]))
        return 0

    from skrl.envs.wrappers.torch import wrap_env
    from skrl.utils import set_seed
    from skrl.utils.runner.torch import Runner

    import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)

    cfg, source = recipe(args.task)
    cfg["seed"] = args.seed if args.seed is not None else cfg["seed"]
    if args.timesteps is not None:
        cfg["trainer"]["timesteps"] = args.timesteps
    cfg["trainer"]["close_environment_at_exit"] = False  # closed below, with the server
    cfg["trainer"]["headless"] = True  # else skrl calls render() every step: a round trip for no frame
    experiment = cfg["agent"]["experiment"]
    experiment["directory"] = os.path.abspath(os.path.join(args.log_dir, experiment["directory"]))
    experiment["experiment_name"] = time.strftime("%Y-%m-%d_%H-%M-%S") + "_ppo_torch"
    set_seed(cfg["seed"])
    print(f"recipe: {source}; logs: {experiment['directory']}/{experiment['experiment_name']}", flush=True)
    with server_for(args, obs_group="policy") as (host, port):
        venv = gym.make_vec(
            "Remote-IsaacSim-v0",
            num_envs=args.num_envs,
            host=host,
            port=port,
            task=args.task,
            autoreset_mode="same_step",
            connect_timeout=600,
        )
        if isinstance(venv.single_observation_space, gym.spaces.Dict):  # a server with obs_group: null
            venv = PolicyGroup(venv)
        env = wrap_env(venv, wrapper="gymnasium")
        try:
            Runner(env, cfg).run("train")
        finally:
            env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
