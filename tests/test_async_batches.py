"""EnvPool's async batch API on RemoteVectorEnv, against real servers and Gymnasium's SyncVectorEnv.

The oracle: each sub-env's trajectory does not depend on how the sub-envs are grouped or in which
order the groups come back, so every sub-env's sequence of (obs, reward, terminated, truncated) under
``async_reset``/``recv``/``send`` must equal its column in a local ``SyncVectorEnv`` stepped with the
same deterministic policy.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)
from gym_remote.errors import RemoteEnvError
from gym_remote.vector import RemoteVectorEnv
from tests.test_vector import assert_tree_equal, local_vector


def policy(obs: np.ndarray) -> np.ndarray:
    """Deterministic CartPole actions: push towards the pole's lean."""
    return (obs[:, 2] > 0).astype(np.int64)


def oracle(n: int, steps: int, seed: int = 0) -> list[list[tuple]]:
    """Per sub-env, its ``steps + 1`` records (the reset, then each step) from a local SyncVectorEnv."""
    local = local_vector("CartPole-v1", n, "next_step")
    obs, _ = local.reset(seed=seed)
    rows = [[(obs[i], 0.0, False, False)] for i in range(n)]
    for _ in range(steps):
        obs, rew, term, trunc, _ = local.step(policy(obs))
        for i in range(n):
            rows[i].append((obs[i], rew[i], term[i], trunc[i]))
    local.close()
    return rows


def run_async(venv: RemoteVectorEnv, steps: int, seed: int = 0) -> list[list[tuple]]:
    """Per sub-env, its first ``steps + 1`` records from the async loop (every group in flight)."""
    rows: list[list[tuple]] = [[] for _ in range(venv.num_envs)]
    venv.async_reset(seed=seed)
    while min(len(r) for r in rows) < steps + 1:
        obs, rew, term, trunc, _info, env_ids = venv.recv()
        assert env_ids.dtype == np.int32 and rew.dtype == np.float64 and term.dtype == bool and trunc.dtype == bool
        for j, i in enumerate(env_ids):
            rows[i].append((obs[j], rew[j], term[j], trunc[j]))
        venv.send(policy(obs), env_ids)
    while venv.in_flight:  # collect what is still out, so the env is idle again
        venv.recv()
    return [r[: steps + 1] for r in rows]


def assert_same_rows(got: list[list[tuple]], want: list[list[tuple]]) -> None:
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        for t, (a, b) in enumerate(zip(g, w, strict=True)):
            np.testing.assert_array_equal(a[0], b[0], err_msg=f"env {i} step {t} obs")
            assert (float(a[1]), bool(a[2]), bool(a[3])) == (float(b[1]), bool(b[2]), bool(b[3])), (i, t)


def test_groups_on_one_server_match_sync_vector_env(serve):
    server = serve("CartPole-v1")
    venv = RemoteVectorEnv(12, "127.0.0.1", server.local_port, task="CartPole-v1", batch_size=4)
    assert venv.batch_size == 4 and len(venv._shards) == 3 and len({s.link.id for s in venv._shards}) == 3
    assert_same_rows(run_async(venv, 60), oracle(12, 60))
    venv.close()


def test_groups_over_two_servers_match_sync_vector_env(serve):
    a, b = serve("CartPole-v1"), serve("CartPole-v1")
    hosts = [f"127.0.0.1:{a.local_port}", f"127.0.0.1:{b.local_port}"]
    venv = RemoteVectorEnv(12, hosts=hosts, task="CartPole-v1", batch_size=3)
    assert [s.link.conn.port for s in venv._shards] == [a.local_port, b.local_port] * 2
    assert_same_rows(run_async(venv, 40, seed=5), oracle(12, 40, seed=5))
    venv.close()


def test_step_stays_the_synchronous_composition(serve):
    server = serve("CartPole-v1")
    remote = RemoteVectorEnv(8, "127.0.0.1", server.local_port, task="CartPole-v1", batch_size=2)
    local = local_vector("CartPole-v1", 8, "next_step")
    obs, _ = remote.reset(seed=3)
    assert_tree_equal((obs, {}), local.reset(seed=3))
    for t in range(80):
        r, lo = remote.step(policy(obs)), local.step(policy(obs))
        for name, x, y in zip(("obs", "reward", "terminated", "truncated", "info"), r, lo, strict=True):
            assert_tree_equal(x, y, f"step {t} {name}")
        obs = r[0]
    # and the async API picks up from there, then hands back to step()
    remote.async_reset(seed=3)
    while remote.in_flight:
        remote.recv()
    remote.step(np.zeros(8, np.int64))
    remote.close()
    local.close()


def test_make_vec_2048_envs_in_8_groups_of_256(serve):
    server = serve("CartPole-v1")
    venv = gym.make_vec(
        "Remote-IsaacSim-v0",
        num_envs=2048,
        batch_size=256,
        host="127.0.0.1",
        port=server.local_port,
        task="CartPole-v1",
    )
    try:
        assert venv.num_envs == 2048 and venv.batch_size == 256 and len(venv._shards) == 8
        venv.async_reset(seed=0)
        seen = set()
        for _ in range(16):
            obs, *_, env_ids = venv.recv()
            assert obs.shape == (256, 4) and len(env_ids) == 256 and env_ids[0] % 256 == 0
            seen.add(int(env_ids[0]))
            venv.send(policy(obs), env_ids)
        assert seen == set(range(0, 2048, 256))
    finally:
        venv.close()
    # closing with groups in flight ended every session: the server has room for a new client at once
    again = RemoteVectorEnv(2048, "127.0.0.1", server.local_port, task="CartPole-v1", batch_size=256)
    again.close()


def test_misuse_is_named(serve):
    server = serve("CartPole-v1")
    with pytest.raises(ValueError, match="does not divide"):
        RemoteVectorEnv(10, "127.0.0.1", server.local_port, task="CartPole-v1", batch_size=4)
    venv = RemoteVectorEnv(6, "127.0.0.1", server.local_port, task="CartPole-v1", batch_size=2)
    with pytest.raises(RemoteEnvError, match="nothing in flight"):
        venv.recv()
    with pytest.raises(ValueError, match="recv\\(\\) first"):
        venv.send(np.zeros(2, np.int64))
    venv.async_reset(seed=0)
    with pytest.raises(RemoteEnvError, match="in flight"):
        venv.step(np.zeros(6, np.int64))
    with pytest.raises(RemoteEnvError, match="in flight"):
        venv.reset()
    *_, env_ids = venv.recv()
    with pytest.raises(ValueError, match="whole groups"):
        venv.send(np.zeros(1, np.int64), env_ids[:1])
    with pytest.raises(ValueError):
        venv.send(np.zeros(3, np.int64), env_ids)  # 3 actions for 2 envs
    # recv() returns whichever group arrived first, so pick a group that is still out
    still_out = next(g for g in ([0, 1], [2, 3], [4, 5]) if g[0] not in env_ids)
    with pytest.raises(RemoteEnvError, match="already in flight"):
        venv.send(np.zeros(2, np.int64), np.array(still_out))  # that group's reset is still out
    venv.send(np.zeros(2, np.int64))  # env_ids default: those of the latest recv
    venv.close()
