"""Every client class goes on after its server restarts (issue 13, item 1).

A real server process is stopped and a new one started on the same port. The single env and the
vector envs raise ``SessionLostError`` on the step that finds the session gone, then ``reset()``
opens a new one by itself; the results after it match a local reference. SB3's ``RemoteVecEnv``
ends the affected sub-envs' episodes (truncated) and goes on, so ``learn()`` continues.
"""

from __future__ import annotations

import os
import signal

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

from gym_remote import ConnectOptions, RemoteEnv, SessionLostError
from gym_remote.errors import RemoteEnvError, RemoteTimeoutError
from gym_remote.vector import RemoteVectorEnv


def restart(serve, server, task: str = "CartPole-v1"):
    """Stop ``server`` (SIGTERM, waited for) and start a fresh one on the same port."""
    port = server.local_port
    server.close()
    return serve(task, "gymnasium", address=f"tcp://127.0.0.1:{port}")


def sync(n: int) -> gym.vector.SyncVectorEnv:
    return gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * n)


def continue_like_local(remote, local, seed: int, steps: int = 30) -> None:
    assert data_equivalence(remote.reset(seed=seed), local.reset(seed=seed))
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        action = rng.integers(0, 2, local.num_envs) if hasattr(local, "num_envs") else int(rng.integers(0, 2))
        assert data_equivalence(remote.step(action), local.step(action), exact=True)


def test_single_env_continues_after_a_restart(serve):
    server = serve("CartPole-v1")
    env = RemoteEnv(server.local_host, server.local_port)
    env.reset(seed=0)
    env.step(0)
    restart(serve, server)
    with pytest.raises(SessionLostError):
        env.step(0)
    continue_like_local(env, gym.make("CartPole-v1"), seed=1)
    env.close()


def test_single_env_reset_finds_the_loss_itself(serve):
    server = serve("CartPole-v1")
    env = RemoteEnv(server.local_host, server.local_port)
    env.reset(seed=0)
    restart(serve, server)
    continue_like_local(env, gym.make("CartPole-v1"), seed=2)  # no step in between: reset re-opens
    env.close()


def test_vector_env_continues_after_a_restart(serve):
    server = serve("CartPole-v1")
    venv = RemoteVectorEnv(3, server.local_host, server.local_port)
    venv.reset(seed=0)
    venv.step(np.zeros(3, int))
    restart(serve, server)
    with pytest.raises(SessionLostError):
        venv.step(np.zeros(3, int))
    continue_like_local(venv, sync(3), seed=1)
    venv.close()


def test_fan_out_continues_after_one_of_its_servers_restarts(serve):
    a, b = serve("CartPole-v1"), serve("CartPole-v1")
    venv = RemoteVectorEnv(4, hosts=[f"127.0.0.1:{a.local_port}", f"127.0.0.1:{b.local_port}"])
    venv.reset(seed=0)
    venv.step(np.zeros(4, int))
    restart(serve, b)
    with pytest.raises(SessionLostError, match=f"server 127.0.0.1:{b.local_port} failed"):
        venv.step(np.zeros(4, int))
    continue_like_local(venv, sync(4), seed=1)
    venv.close()


def test_sb3_vec_env_steps_through_a_restart(serve):
    from gym_remote.sb3 import RemoteVecEnv

    a, b = serve("CartPole-v1"), serve("CartPole-v1")
    vec = RemoteVecEnv(num_envs=4, hosts=[f"127.0.0.1:{a.local_port}", f"127.0.0.1:{b.local_port}"])
    vec.seed(0)
    obs = vec.reset()
    for _ in range(3):
        vec.step_async(np.zeros(4, int))
        obs, *_ = vec.step_wait()
    restart(serve, b)
    vec.step_async(np.zeros(4, int))
    new_obs, _, dones, infos = vec.step_wait()  # no exception: b's sub-envs end, truncated
    assert dones.tolist() == [False, False, True, True]
    for i in (2, 3):
        assert infos[i]["TimeLimit.truncated"] is True
        np.testing.assert_array_equal(infos[i]["terminal_observation"], obs[i])
        assert vec.observation_space.contains(new_obs[i])
    for _ in range(5):
        vec.step_async(np.zeros(4, int))
        vec.step_wait()
    vec.close()


def test_sb3_restarts_a_given_vector_env_per_step_without_changing_it(serve):
    """The SB3 front end passes ``on_lost_session="restart"`` with each step rather than setting a flag
    on the RemoteVectorEnv it was given; the env's own step() still raises SessionLostError."""
    from gym_remote.sb3 import RemoteVecEnv

    server = serve("CartPole-v1")
    venv = RemoteVectorEnv(2, server.local_host, server.local_port, autoreset_mode="same_step")
    vec = RemoteVecEnv(venv)
    assert venv.recover_in_step is False
    vec.reset()
    server = restart(serve, server)
    vec.step_async(np.zeros(2, int))
    _, _, dones, infos = vec.step_wait()
    assert dones.tolist() == [True, True] and all(info["TimeLimit.truncated"] for info in infos)
    server = restart(serve, server)
    with pytest.raises(SessionLostError):
        venv.step(np.zeros(2, int))
    with pytest.raises(ValueError, match="'raise' or 'restart'"):
        venv.step(np.zeros(2, int), on_lost_session="retry")
    with pytest.warns(DeprecationWarning, match="on_lost_session"):
        venv.recover_in_step = True
    vec.close()


def test_restarting_a_lost_session_needs_same_step(serve):
    server = serve("CartPole-v1")
    venv = RemoteVectorEnv(2, server.local_host, server.local_port)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="same_step"):
        venv.step(np.zeros(2, int), on_lost_session="restart")
    venv.close()


def test_sb3_learn_continues_across_a_restart(serve):
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    from gym_remote.sb3 import RemoteVecEnv

    servers = [serve("CartPole-v1")]
    vec = RemoteVecEnv(num_envs=2, host="127.0.0.1", port=servers[0].local_port)

    class RestartServer(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps == 100:  # mid-rollout
                servers.append(restart(serve, servers[-1]))
            return True

    model = PPO("MlpPolicy", vec, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=384, callback=RestartServer())
    assert len(servers) == 2 and model.num_timesteps >= 384
    vec.close()


def test_a_fan_out_step_that_one_server_misses_keeps_the_others_transitions_and_asks_for_reset(serve):
    """Issue 22, item 5: one server stalls (SIGSTOP) during a fan-out step. The step fails at the
    timeout, naming it; the healthy server's transition is on the error, not thrown away; and the env
    refuses to step on out of phase until a reset puts every sub-env at a new start."""
    healthy, stalled = serve("CartPole-v1"), serve("CartPole-v1")
    hosts = [f"{s.local_host}:{s.local_port}" for s in (healthy, stalled)]
    venv = RemoteVectorEnv(4, hosts=hosts, task="CartPole-v1", options=ConnectOptions(timeout=1.0, retries=0))
    try:
        venv.reset(seed=0)
        venv.step(np.ones(4, np.int64))
        os.kill(stalled.pid, signal.SIGSTOP)
        try:
            with pytest.raises(RemoteTimeoutError, match="out of phase") as info:
                venv.step(np.ones(4, np.int64))
            assert f"{stalled.local_port}" in str(info.value) and "sub-envs 0-1" in str(info.value)
            (span, reply), *_ = info.value.partial.items()
            assert span == (0, 2) and np.asarray(reply["obs"]).shape == (2, 4)  # the healthy server's step
            with pytest.raises(RemoteEnvError, match=r"call reset\(\) first"):
                venv.step(np.ones(4, np.int64))
        finally:
            os.kill(stalled.pid, signal.SIGCONT)
        obs, _ = venv.reset(seed=1)
        assert obs.shape == (4, 4)
        obs, *_ = venv.step(np.ones(4, np.int64))  # in phase again
        assert obs.shape == (4, 4)
    finally:
        venv.close()
