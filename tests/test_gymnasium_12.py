"""The client on Gymnasium 1.2: the pin of Isaac Lab 2.x and of RLlib 2.60 (whose venv has it).

``gym.make`` in 1.2 insists that a class's ``metadata`` is a dict; 1.4 also accepts a property. The
client runs here in the Ray venv (Gymnasium 1.2.2) against a server in the project's Python.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from gym_remote.local import LocalServer
from gym_remote_apps.venvs import server_python

ROOT = Path(__file__).resolve().parent.parent

CLIENT = """
import json, sys
import gymnasium as gym
import numpy as np
port = int(sys.argv[1])
env = gym.make("gym_remote:Remote-IsaacSim-v0", host="127.0.0.1", port=port, task="CartPole-v1")
obs, info = env.reset(seed=0)
obs, reward, terminated, truncated, info = env.step(1)
venv = gym.make_vec("gym_remote:Remote-IsaacSim-v0", num_envs=3, host="127.0.0.1", port=port, task="CartPole-v1")
vobs, _ = venv.reset(seed=0)
print(json.dumps({"gymnasium": gym.__version__, "obs": obs.tolist(), "reward": float(reward),
                  "max_steps": env.spec.max_episode_steps, "vshape": list(vobs.shape),
                  "modes": list(env.unwrapped.metadata["render_modes"])}))
venv.close()
env.close()
"""


def test_client_on_gymnasium_1_2() -> None:
    try:
        python = server_python("ray")
    except FileNotFoundError as exc:  # scripts/test.sh builds it
        pytest.fail(str(exc), pytrace=False)
    with LocalServer("gymnasium", "CartPole-v1") as server:
        out = subprocess.run(
            [python, "-c", CLIENT, str(server.local_port)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["gymnasium"].startswith("1.2")
    assert got["reward"] == 1.0 and len(got["obs"]) == 4 and got["max_steps"] == 500
    assert got["vshape"] == [3, 4] and "human" not in got["modes"]
