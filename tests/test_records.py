"""The client classes take records (issue 23, item 1): ``options=ConnectOptions`` and ``server=`` a started
server's handle; ``gym.make`` folds its flat keywords into them once (``gym_remote.entry``), and the
flat keywords on the class still work for one release with a DeprecationWarning."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)
from gym_remote import ConnectOptions, RemoteEnv, ServerHandle
from gym_remote.local import LocalServer
from gym_remote.vector import RemoteVectorEnv


def test_connect_options_check_every_field_however_made():
    assert ConnectOptions(timeout=5, retries=0).timeout == 5
    with pytest.raises(ValueError, match=r"ConnectOptions\(timeout=...\) takes a number of seconds > 0"):
        ConnectOptions(timeout=0)
    with pytest.raises(TypeError, match=r"ConnectOptions\(retries=...\) takes an int >= 0"):
        ConnectOptions(retries="2")
    with pytest.raises(ValueError, match="40 characters"):
        ConnectOptions(curve_server_key="short")
    with pytest.raises(ValueError, match="together"):
        ConnectOptions(curve_public_key="x" * 40)


def test_remote_env_from_records_adopts_its_server(serve):
    server = LocalServer("gymnasium", "CartPole-v1")
    assert isinstance(server, ServerHandle)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the record path warns of nothing
        env = RemoteEnv(task="CartPole-v1", options=ConnectOptions(timeout=5.0, retries=0), server=server)
    assert (env.host, env.port) == (server.local_host, server.local_port)
    assert env.options.timeout == 5.0 and env.options.retries == 0
    env.reset(seed=0)
    assert server.proc.poll() is None
    env.close()
    server.proc.wait(timeout=10)  # close() stopped the server it was given
    assert server.proc.returncode is not None


def test_records_are_checked_by_type(serve):
    server = serve("CartPole-v1")
    with pytest.raises(TypeError, match=r"RemoteEnv\(options=...\) takes a ConnectOptions, got dict"):
        RemoteEnv(server.local_host, server.local_port, options={"timeout": 5})
    with pytest.raises(TypeError, match=r"RemoteEnv\(server=...\) takes a started server's handle"):
        RemoteEnv(task="CartPole-v1", server=("127.0.0.1", server.local_port))


def test_flat_keywords_on_the_class_warn_and_still_work(serve):
    server = serve("CartPole-v1")
    with pytest.warns(DeprecationWarning, match=r"options=ConnectOptions"):
        env = RemoteEnv(server.local_host, server.local_port, timeout=7.0, retries=1)
    with env:
        assert env.options == ConnectOptions(timeout=7.0, retries=1)
        env.reset(seed=0)
        assert env.step(0)[1] == 1.0
    assert env._closed


def test_flat_keywords_on_the_vector_class_warn_and_still_work(serve):
    server = serve("CartPole-v1")
    with pytest.warns(DeprecationWarning, match=r"options=ConnectOptions"):
        venv = RemoteVectorEnv(2, server.local_host, server.local_port, timeout=7.0, retries=1)
    try:
        assert venv.options == ConnectOptions(timeout=7.0, retries=1)
        assert venv.reset(seed=0)[0].shape == (2, 4)
        assert venv.step(np.zeros(2, np.int64))[1].tolist() == [1.0, 1.0]
    finally:
        venv.close()


def test_gym_make_folds_flat_keywords_without_warning(serve):
    server = serve("CartPole-v1")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        env = gym.make("Remote-IsaacSim-v0", host=server.local_host, port=server.local_port, timeout=6.0)
    with env:
        assert env.unwrapped.options.timeout == 6.0
        assert env.spec.max_episode_steps == 500  # the server's time limit, as gym.make("CartPole-v1") has
        assert env.metadata["render_modes"] == ["rgb_array"]  # the server env's, without "human"


def test_a_misspelled_keyword_on_the_class_is_pythons_own_error_without_a_deprecation():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        with pytest.raises(TypeError, match=r"unexpected keyword argument 'timout'.*Did you mean 'timeout'"):
            RemoteEnv("127.0.0.1", 1, timout=5.0)
        with pytest.raises(TypeError, match=r"unexpected keyword argument 'hostz'.*Did you mean 'host' or 'hosts'"):
            RemoteVectorEnv(2, "127.0.0.1", 1, hostz=["a:1"])
