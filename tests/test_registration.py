"""Ids bound to a server, for scripts that only call ``gym.make(env_id)`` (CleanRL, RL Zoo, tutorials).

The reference is the same CleanRL-shaped loop run on the local env: a script that knows nothing of
gym-remote (``SyncVectorEnv`` of ``RecordEpisodeStatistics(gym.make(env_id))``, seeded actions) is run
in a fresh process with a remote id, bound either by ``GYM_REMOTE_ENVS`` or by a user's module calling
:func:`gym_remote.register`, and with ``CartPole-v1`` itself: the episodes and observations match.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import pytest

import gym_remote
from gym_remote.errors import ConfigError
from gym_remote.local import LocalServer
from gym_remote.registration import ENVS_VARIABLE, register_from_environment

#: A CleanRL-shaped rollout: the env id comes from the command line, nothing else knows of gym-remote.
CLEANRL_LOOP = """
import json, sys
import gymnasium as gym
import numpy as np

def make_env(env_id, idx):
    def thunk():
        env = gym.make(env_id)
        env = gym.wrappers.RecordEpisodeStatistics(env)
        env.action_space.seed(idx)
        return env
    return thunk

envs = gym.vector.SyncVectorEnv([make_env(sys.argv[1], i) for i in range(2)])
obs, _ = envs.reset(seed=1)
rng = np.random.default_rng(0)
returns, total = [], 0.0
for _ in range(200):
    obs, reward, terminated, truncated, infos = envs.step(rng.integers(0, 2, size=2))
    total += float(obs.sum())
    if "episode" in infos:
        returns += [float(r) for r in infos["episode"]["r"][infos["_episode"]]]
envs.close()
print(json.dumps({"returns": returns, "obs_sum": total, "single": str(envs.single_observation_space)}))
"""


def _loop(env_id: str, tmp_path: Path, **env: str) -> dict:
    script = tmp_path / "cleanrl_loop.py"
    script.write_text(CLEANRL_LOOP, encoding="utf-8")
    full_env = {**os.environ, **env}
    out = subprocess.run(
        [sys.executable, str(script), env_id], capture_output=True, text=True, timeout=120, env=full_env, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_an_id_from_the_environment_reaches_the_server_with_no_code_change(
    serve: Callable[..., LocalServer], tmp_path: Path
) -> None:
    server = serve("CartPole-v1")
    bound = {"Cartpole-Remote-v0": {"host": server.local_host, "port": server.local_port, "task": "CartPole-v1"}}
    remote = _loop("gym_remote:Cartpole-Remote-v0", tmp_path, **{ENVS_VARIABLE: json.dumps(bound)})
    local = _loop("CartPole-v1", tmp_path)
    assert remote == local
    assert len(local["returns"]) >= 2  # episodes ended and were counted on both


def test_an_id_registered_by_a_users_module_is_found_by_gymnasiums_module_form(
    serve: Callable[..., LocalServer], tmp_path: Path
) -> None:
    server = serve("CartPole-v1")
    (tmp_path / "mytasks.py").write_text(
        "import gym_remote\n"
        f"gym_remote.register('Cartpole-Remote-v0', host={server.local_host!r}, port={server.local_port}, "
        "task='CartPole-v1')\n",
        encoding="utf-8",
    )
    pythonpath = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    remote = _loop("mytasks:Cartpole-Remote-v0", tmp_path, PYTHONPATH=pythonpath)
    assert remote == _loop("CartPole-v1", tmp_path)


def test_bound_keywords_are_defaults_that_make_and_make_vec_can_override(serve: Callable[..., LocalServer]) -> None:
    server = serve("CartPole-v1")
    gym_remote.register("Bound-CartPole-v1", host=server.local_host, port=server.local_port, task="Acrobot-v1")
    try:
        env = gym.make("Bound-CartPole-v1", task="CartPole-v1")  # gym.make's keyword wins
        try:
            assert env.unwrapped.task == "CartPole-v1" and env.observation_space.shape == (4,)
        finally:
            env.close()
        venv = gym.make_vec("Bound-CartPole-v1", num_envs=3, task="CartPole-v1")
        try:
            assert type(venv.unwrapped).__name__ == "RemoteVectorEnv" and venv.reset(seed=0)[0].shape == (3, 4)
        finally:
            venv.close()
        with pytest.raises(TypeError, match="hostt"):
            gym.make("Bound-CartPole-v1", hostt="x")  # still checked where every keyword is
    finally:
        gym.registry.pop("Bound-CartPole-v1", None)


@pytest.mark.parametrize("text", ["{not json", '["Cartpole-Remote-v0"]', '{"Cartpole-Remote-v0": 5}'])
def test_a_malformed_environment_variable_is_named(text: str) -> None:
    with pytest.raises(ConfigError, match=ENVS_VARIABLE):
        register_from_environment({ENVS_VARIABLE: text})
    assert register_from_environment({}) == []
