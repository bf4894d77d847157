"""RemoteVectorEnv against Gymnasium's SyncVectorEnv, fan-out, and SB3 on top."""

from __future__ import annotations

import os
import signal
import time

import gymnasium as gym
import numpy as np
import pytest

from gym_remote import ConnectOptions
from gym_remote.errors import RemoteTimeoutError
from gym_remote.vector import RemoteVectorEnv

MODES = ["next_step", "same_step"]


def local_vector(task: str, n: int, mode: str, **kw) -> gym.vector.SyncVectorEnv:
    return gym.vector.SyncVectorEnv(
        [lambda: gym.make(task, **kw)] * n, autoreset_mode=gym.vector.AutoresetMode[mode.upper()]
    )


def assert_tree_equal(a, b, path="") -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), (path, set(a) ^ set(b))
        for k in a:
            assert_tree_equal(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, tuple):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_tree_equal(x, y, f"{path}[{i}]")
    else:
        x, y = np.asarray(a), np.asarray(b)
        assert x.shape == y.shape, (path, x.shape, y.shape)
        if x.dtype == object:  # e.g. SAME_STEP final_obs: arrays for finished sub-envs, None elsewhere
            for i, (u, v) in enumerate(zip(x, y, strict=True)):
                if u is None or v is None or isinstance(u, str):
                    assert u == v, (path, i)
                else:
                    assert_tree_equal(u, v, f"{path}[{i}]")
        else:
            assert x.dtype == y.dtype, (path, x.dtype, y.dtype)
            np.testing.assert_array_equal(x, y, err_msg=path)


def run_both(remote, local, steps: int, seed: int, sample) -> None:
    assert_tree_equal(remote.reset(seed=seed), local.reset(seed=seed))
    for t in range(steps):
        action = sample(t)
        r, lo = remote.step(action), local.step(action)
        for name, x, y in zip(("obs", "reward", "terminated", "truncated", "info"), r, lo, strict=True):
            assert_tree_equal(x, y, f"step {t} {name}")


@pytest.mark.parametrize("mode", MODES)
def test_matches_sync_vector_env_cartpole(serve, mode):
    server = serve("CartPole-v1")
    n = 6
    remote = RemoteVectorEnv(n, server.local_host, server.local_port, autoreset_mode=mode, max_episode_steps=40)
    local = local_vector("CartPole-v1", n, mode, max_episode_steps=40)
    assert remote.single_observation_space == local.single_observation_space
    assert remote.action_space == local.action_space
    assert remote.metadata["autoreset_mode"] == local.metadata["autoreset_mode"]
    rng = np.random.default_rng(0)
    run_both(remote, local, 300, seed=11, sample=lambda t: rng.integers(0, 2, n))
    remote.close()


@pytest.mark.parametrize("mode", MODES)
def test_matches_sync_vector_env_dict_obs_with_strings_in_info(serve, mode):
    server = serve("tests/DictObs-v0")
    n = 3
    remote = RemoteVectorEnv(
        n, server.local_host, server.local_port, autoreset_mode=mode, task_kwargs={"episode_length": 7}
    )
    local = local_vector("tests/DictObs-v0", n, mode, episode_length=7)
    rng = np.random.default_rng(1)
    run_both(remote, local, 40, seed=5, sample=lambda t: rng.uniform(-0.5, 0.5, (n, 3)).astype(np.float32))
    remote.close()


def test_disabled_mode_with_reset_mask(serve):
    server = serve("CartPole-v1")
    n = 4
    remote = RemoteVectorEnv(n, server.local_host, server.local_port, autoreset_mode="disabled")
    local = local_vector("CartPole-v1", n, "disabled")
    assert_tree_equal(remote.reset(seed=2), local.reset(seed=2))
    rng = np.random.default_rng(2)
    for t in range(200):
        a = rng.integers(0, 2, n)
        r, lo = remote.step(a), local.step(a)
        assert_tree_equal(r, lo, f"step {t}")
        done = r[2] | r[3]
        if done.any():
            assert_tree_equal(remote.reset(options={"reset_mask": done}), local.reset(options={"reset_mask": done}))
    remote.close()


def test_fan_out_over_two_servers_equals_one_server(serve):
    a, b, single = serve("CartPole-v1"), serve("CartPole-v1"), serve("CartPole-v1")
    n = 7
    hosts = [f"127.0.0.1:{a.local_port}", f"127.0.0.1:{b.local_port}"]
    fan = RemoteVectorEnv(n, hosts=hosts, autoreset_mode="same_step", max_episode_steps=30)
    one = RemoteVectorEnv(n, single.local_host, single.local_port, autoreset_mode="same_step", max_episode_steps=30)
    assert [s.count for s in fan._shards] == [4, 3]
    rng = np.random.default_rng(3)
    run_both(fan, one, 150, seed=0, sample=lambda t: rng.integers(0, 2, n))
    fan.close()
    one.close()


def test_fan_out_reset_mask_touching_one_server(serve):
    a, b = serve("CartPole-v1"), serve("CartPole-v1")
    hosts = [f"127.0.0.1:{a.local_port}", f"127.0.0.1:{b.local_port}"]
    fan = RemoteVectorEnv(4, hosts=hosts, autoreset_mode="disabled")
    local = local_vector("CartPole-v1", 4, "disabled")
    assert_tree_equal(fan.reset(seed=9), local.reset(seed=9))
    for _ in range(3):
        assert_tree_equal(fan.step(np.ones(4, int)), local.step(np.ones(4, int)))
    mask = np.array([False, False, True, False])
    assert_tree_equal(fan.reset(options={"reset_mask": mask})[0], local.reset(options={"reset_mask": mask})[0])
    assert_tree_equal(fan.step(np.ones(4, int))[:4], local.step(np.ones(4, int))[:4])
    fan.close()


def test_one_server_killed_during_fan_out_is_named_within_the_timeout(serve):
    a, b = serve("CartPole-v1"), serve("CartPole-v1")
    hosts = [f"127.0.0.1:{a.local_port}", f"127.0.0.1:{b.local_port}"]
    fan = RemoteVectorEnv(4, hosts=hosts, options=ConnectOptions(timeout=1.0))
    fan.reset(seed=0)
    fan.step(np.zeros(4, int))
    os.kill(b.pid, signal.SIGKILL)
    b.proc.wait()
    t0 = time.monotonic()
    with pytest.raises(RemoteTimeoutError, match=f"server 127.0.0.1:{b.local_port} failed"):
        fan.step(np.zeros(4, int))
    assert time.monotonic() - t0 < 2.5
    fan.close()


def test_make_vec_modes(serve):
    server = serve("CartPole-v1")
    kw = {"host": server.local_host, "port": server.local_port}
    for mode in ("vector_entry_point", "sync", "async"):
        venv = gym.make_vec("Remote-IsaacSim-v0", num_envs=3, vectorization_mode=mode, **kw)
        obs, _ = venv.reset(seed=0)
        assert obs.shape == (3, 4)
        obs, *_ = venv.step(np.ones(3, int))
        assert obs.shape == (3, 4)
        venv.close()


def test_batched_state_is_attached(serve):
    server = serve("gym_remote/StackCube-v0")
    venv = RemoteVectorEnv(2, server.local_host, server.local_port, with_state=True)
    venv.reset(seed=0)
    assert venv.last_state.shape == (2, venv.state_schema.size)
    venv.step(np.zeros((2, 8), np.float32))
    np.testing.assert_array_equal(venv.get_state(), venv.last_state)
    assert not np.array_equal(venv.last_state[0], venv.last_state[1])  # different seeds, different scenes
    venv.close()


def test_sb3_vec_env_learns_and_checks(serve):
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_checker import check_env
    from stable_baselines3.common.vec_env import VecMonitor

    from gym_remote import RemoteEnv
    from gym_remote.sb3 import RemoteVecEnv

    server = serve("CartPole-v1")
    single = RemoteEnv(server.local_host, server.local_port)
    check_env(single)
    single.close()
    venv = VecMonitor(RemoteVecEnv(num_envs=4, host=server.local_host, port=server.local_port))
    venv.seed(0)
    obs = venv.reset()
    assert obs.shape == (4, 4)
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(512)
    # terminal observations and truncation flags in SB3's format
    venv.reset()
    for _ in range(100):
        obs, _rew, dones, infos = venv.step(np.ones(4, int))
        if dones.any():
            i = int(np.flatnonzero(dones)[0])
            assert infos[i]["terminal_observation"].shape == (4,)
            assert infos[i]["TimeLimit.truncated"] is False
            assert "episode" in infos[i]
            break
    else:
        pytest.fail("no episode ended")
    assert venv.get_attr("spec_id") == ["CartPole-v1"] * 4
    with pytest.raises(AttributeError, match="not readable"):
        venv.get_attr("np_random")
    venv.close()


def test_server_side_async_vectorization_matches_sync(serve):
    """`serve --vectorization async` steps sub-envs in worker processes; results must not change."""
    server = serve("CartPole-v1", "gymnasium", "--vectorization", "async")
    remote = RemoteVectorEnv(4, server.local_host, server.local_port, autoreset_mode="same_step")
    local = local_vector("CartPole-v1", 4, "same_step")
    rng = np.random.default_rng(4)
    run_both(remote, local, 60, seed=2, sample=lambda t: rng.integers(0, 2, 4))
    remote.close()


def test_every_server_dead_still_fails_within_one_timeout(serve):
    a, b = serve("CartPole-v1"), serve("CartPole-v1")
    hosts = [f"127.0.0.1:{a.local_port}", f"127.0.0.1:{b.local_port}"]
    fan = RemoteVectorEnv(4, hosts=hosts, options=ConnectOptions(timeout=2.0))
    fan.reset(seed=0)
    for server in (a, b):
        os.kill(server.pid, signal.SIGKILL)
        server.proc.wait()
    t0 = time.monotonic()
    with pytest.raises(RemoteTimeoutError):
        fan.step(np.zeros(4, int))
    assert time.monotonic() - t0 < 3.5  # one timeout (2 s), not one per server (4 s)
    fan.close()
