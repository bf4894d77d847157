"""Goal-conditioned envs served remotely: ``compute_reward`` & co. on the client, SB3's HER and check_env.

A goal env's ``compute_reward(achieved_goal, desired_goal, info)`` is called on batches by SB3's
``HerReplayBuffer``, on the client; code does not travel, so the server runs the env's own method
(a CALL request). The env is Gymnasium-Robotics' PointMaze (runs on MuJoCo 4); the reference is the
same env made locally.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import gymnasium as gym
import gymnasium_robotics
import numpy as np
import pytest
import torch
from stable_baselines3 import SAC, HerReplayBuffer
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.vec_env import DummyVecEnv

from gym_remote import RemoteEnv
from gym_remote.local import LocalServer
from gym_remote.sb3 import RemoteVecEnv
from gym_remote.vector import RemoteVectorEnv

gym.register_envs(gymnasium_robotics)
TASK = "PointMaze_UMaze-v3"
STEPS = 50  # per episode, so HER sees whole episodes in a short run


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer("gymnasium", TASK, extra_args=["--import", "gymnasium_robotics"]) as srv:
        yield srv


def remote(server: LocalServer, **kw) -> RemoteEnv:
    return RemoteEnv(server.local_host, server.local_port, task=TASK, max_episode_steps=STEPS, **kw)


def test_goal_methods_exist_exactly_where_the_env_has_them(server):
    env = remote(server)
    assert env.remote_methods == ("compute_reward", "compute_terminated", "compute_truncated")
    assert hasattr(env, "compute_reward")  # how SB3 tells a goal env (on env.unwrapped)
    env.close()
    with LocalServer("gymnasium", "CartPole-v1") as other, RemoteEnv(other.local_host, other.local_port) as plain:
        assert plain.remote_methods == () and not hasattr(plain, "compute_reward")
        with pytest.raises(AttributeError, match="no goal-conditioned method 'compute_reward'"):
            plain.call_method("compute_reward", 0, 0, {})


def test_batched_goal_methods_equal_the_local_envs(server):
    local, env = gym.make(TASK, max_episode_steps=STEPS), remote(server)
    obs, info = local.reset(seed=3)
    obs_remote, _ = env.reset(seed=3)
    np.testing.assert_array_equal(obs["achieved_goal"], obs_remote["achieved_goal"])
    rng = np.random.default_rng(0)
    achieved = rng.uniform(-1, 1, (64, 2))
    desired = np.repeat(obs["desired_goal"][None], 64, axis=0)
    infos = np.array([dict(info) for _ in range(64)])  # an object array of dicts, as HER passes them
    for name in env.remote_methods:
        want = local.unwrapped.get_wrapper_attr(name)(achieved, desired, infos)
        got = getattr(env, name)(achieved, desired, infos)
        np.testing.assert_array_equal(np.asarray(want), np.asarray(got))
        assert np.asarray(want).dtype == np.asarray(got).dtype, name
    assert env.compute_reward(obs["achieved_goal"], obs["desired_goal"], info) == local.unwrapped.compute_reward(
        obs["achieved_goal"], obs["desired_goal"], info
    )
    local.close(), env.close()


def test_sb3_check_env_sees_a_goal_env(server):
    env = gym.make("Remote-IsaacSim-v0", host=server.local_host, port=server.local_port, task=TASK)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the maze's unbounded Box observations
        check_env(env.unwrapped)  # runs _check_goal_env_obs and _check_goal_env_compute_reward on it
    env.close()


def learn_her(vec) -> dict[str, torch.Tensor]:
    """SAC + HER for a few hundred steps, seeded; the trained policy's parameters."""
    torch.manual_seed(0)
    model = SAC(
        "MultiInputPolicy",
        vec,
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs={"n_sampled_goal": 4, "goal_selection_strategy": "future"},
        learning_starts=120,
        batch_size=64,
        policy_kwargs={"net_arch": [32, 32]},
        seed=0,
        device="cpu",
    )
    model.learn(total_timesteps=260)
    params = {k: v.clone() for k, v in model.policy.state_dict().items()}
    vec.close()
    return params


def test_her_trains_on_the_remote_env_exactly_as_on_the_local_one(server):
    local = learn_her(DummyVecEnv([lambda: gym.make(TASK, max_episode_steps=STEPS)]))
    served = learn_her(
        RemoteVecEnv(num_envs=1, host=server.local_host, port=server.local_port, task=TASK, max_episode_steps=STEPS)
    )
    assert local.keys() == served.keys()
    for key in local:
        torch.testing.assert_close(local[key], served[key], rtol=0, atol=0, msg=key)


def test_vector_call_runs_the_goal_method_on_every_sub_env_as_sync_vector_env(server):
    sync = gym.vector.SyncVectorEnv([lambda: gym.make(TASK, max_episode_steps=STEPS)] * 2)
    vec = RemoteVectorEnv(2, server.local_host, server.local_port, task=TASK, max_episode_steps=STEPS)
    args = (np.zeros((3, 2)), np.ones((3, 2)), np.array([{}, {}, {}]))
    want, got = sync.call("compute_reward", *args), vec.call("compute_reward", *args)
    assert type(got) is tuple and len(got) == 2
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a, b)
    sync.close(), vec.close()
