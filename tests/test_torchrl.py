"""TorchRL on remote envs: ``GymEnv`` and ``GymWrapper`` build and roll out as they do on local envs.

TorchRL 0.14's ``GymEnv`` passes ``frameskip`` to ``gym.make`` and drops it only when the env's
``TypeError`` reads like Python's own; its ``GymWrapper`` of a vector env takes Gymnasium's
``AutoresetMode`` enum. Each test rolls out the remote env and the same env made locally, with the
same seeds and actions, and compares what TorchRL returns.
"""

from __future__ import annotations

from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytest
import torch
from torchrl.envs import GymEnv, GymWrapper

import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)
from gym_remote.local import LocalServer
from gym_remote.vector import RemoteVectorEnv

TASK = "CartPole-v1"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer("gymnasium", TASK) as srv:
        yield srv


def rollout(env, steps: int = 60) -> dict[str, torch.Tensor]:
    """A seeded rollout with fixed actions (TorchRL resets finished envs itself), as tensors."""
    env.set_seed(5)
    rng = np.random.default_rng(0)
    out = {}
    td = env.reset()
    observations, rewards, dones = [td["observation"]], [], []
    for _ in range(steps):
        action = torch.zeros(env.action_spec.shape, dtype=env.action_spec.dtype)
        index = rng.integers(0, 2, env.batch_size or ())
        if action.shape[-1] == 2:  # one-hot (TorchRL's Discrete action spec for a Discrete space)
            action = torch.nn.functional.one_hot(torch.as_tensor(index), 2).to(action.dtype)
        else:
            action = torch.as_tensor(index, dtype=action.dtype).reshape(action.shape)
        td["action"] = action
        td = env.step(td)
        rewards.append(td["next", "reward"])
        dones.append(td["next", "done"])
        observations.append(td["next", "observation"])
        td = env.step_mdp(td) if not td["next", "done"].any() else env.reset(td["next"].clone())
    out["observation"] = torch.stack(observations)
    out["reward"] = torch.stack(rewards)
    out["done"] = torch.stack(dones)
    assert out["done"].any()  # finished episodes were reset on the way
    env.close()
    return out


def assert_same_rollout(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_gym_env_builds_on_the_remote_env_and_rolls_out_as_the_local_one(server):
    remote = GymEnv("Remote-IsaacSim-v0", host=server.local_host, port=server.local_port, task=TASK)
    assert remote.wrapper_frame_skip == 1  # TorchRL dropped frameskip, as for any local env
    assert remote.observation_spec == GymEnv(TASK).observation_spec
    assert_same_rollout(rollout(GymEnv(TASK)), rollout(remote))


def test_gym_env_with_num_envs_builds_an_async_vector_env_of_remote_envs(server):
    # TorchRL's workers are new processes: the id names its module, as any id registered by an import.
    remote = GymEnv(
        "gym_remote:Remote-IsaacSim-v0", host=server.local_host, port=server.local_port, task=TASK, num_envs=2
    )
    assert remote.batch_size == torch.Size([2])
    assert_same_rollout(rollout(GymEnv(TASK, num_envs=2)), rollout(remote))


def test_gym_wrapper_of_a_remote_same_step_vector_env(server):
    mode = gym.vector.AutoresetMode.SAME_STEP
    local = gym.vector.SyncVectorEnv([lambda: gym.make(TASK)] * 3, autoreset_mode=mode)
    remote = RemoteVectorEnv(3, server.local_host, server.local_port, task=TASK, autoreset_mode=mode)
    assert remote.autoreset_mode is local.autoreset_mode
    assert_same_rollout(rollout(GymWrapper(local)), rollout(GymWrapper(remote)))


def test_an_unknown_keyword_reads_as_pythons_own_with_the_close_matches(server):
    """As GymEnv's gym.make call needs it (a keyword the env does not take is dropped only then)."""
    with pytest.raises(
        TypeError,
        match=r"^RemoteEnv.__init__\(\) got an unexpected keyword argument 'hostt'\. "
        r"Did you mean 'host'",
    ):
        gym.make("Remote-IsaacSim-v0", hostt=server.local_host, port=server.local_port)
