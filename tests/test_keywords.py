"""Every public keyword of RemoteEnv, RemoteVectorEnv and make_vec is checked, with an error naming it
(issue 13, item 9). Refused before anything starts: no server subprocess, no SSH, no socket.

The classes take their own keywords and the records (``options=ConnectOptions(...)``, which checks its
fields); the flat connection and launch keywords are ``gym.make``'s, folded in ``gym_remote.entry``
(``make_env``, ``make_vector_env``), whose errors name the class the user asked for."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import gymnasium as gym
import pytest

import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)
from gym_remote import ConnectOptions, RemoteEnv
from gym_remote.entry import make_env, make_vector_env
from gym_remote.vector import RemoteVectorEnv


def children() -> set[int]:
    """PIDs of this process's children, read from /proc."""
    me, out = os.getpid(), set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            out.add(int(stat.parent.name))
    return out


COMMON = [  # keyword, value, error, words the message must hold
    ("host", 5, TypeError, "host=...) takes a host name"),
    ("host", " ", ValueError, "host=...) takes a host name"),
    ("port", "5555", TypeError, "port=...) takes a TCP port"),
    ("port", 70000, ValueError, "port=...) takes a TCP port"),
    ("port", True, TypeError, "port=...) takes a TCP port"),
    ("task", 3, TypeError, "task=...) takes an env id"),
    ("task_kwargs", [("a", 1)], TypeError, "task_kwargs=...) takes a dict"),
    ("timeout", "30", TypeError, "timeout=...) takes a number of seconds"),
    ("timeout", -1, ValueError, "timeout=...) takes a number of seconds > 0"),
    ("connect_timeout", float("nan"), ValueError, "connect_timeout"),
    ("retries", 1.5, TypeError, "retries=...) takes an int >= 0"),
    ("retries", -1, ValueError, "retries"),
    ("render_mode", 1, TypeError, "render_mode=...) takes a render mode"),
    ("with_state", "yes", TypeError, "with_state=...) takes True or False"),
    ("max_episode_steps", 0, ValueError, "max_episode_steps"),  # gym.make checks it first, as it should
    ("max_episode_steps", 2.5, TypeError, "max_episode_steps"),
    ("curve_server_key", 123, TypeError, "curve_server_key=...) takes a Z85 CURVE key"),
    ("curve_server_key", "short", ValueError, "40 characters"),
    ("curve_public_key", "x" * 40, ValueError, "curve_public_key and curve_secret_key together"),
    ("launch", "yes", ValueError, "launch=...) takes True"),
    ("launch", 1, TypeError, "launch=...) takes True"),
    ("backend", "isaacsim", ValueError, "backend=...) takes one of gymnasium"),
]

VECTOR = [
    ("num_envs", "4", TypeError, "num_envs=...) takes an int >= 1"),
    ("num_envs", 0, ValueError, "num_envs=...) takes an int >= 1"),
    ("num_envs", True, TypeError, "num_envs"),
    ("hosts", "127.0.0.1:5555", TypeError, "hosts=...) takes a list of 'host:port'"),
    ("hosts", [], ValueError, "hosts=...) takes a non-empty list"),
    ("hosts", [("127.0.0.1", 5555)], TypeError, "hosts"),
]

#: The flat keywords only gym.make's entry point takes: those it starts a server with.
LAUNCH = frozenset({"launch", "backend"})


def refused(make, error, match):
    before = children()
    with pytest.raises(error, match=match):
        make()
    assert children() - before == set()  # nothing was started


def _refused_by_the_class_and_its_entry_point(cls, entry, endpoint, name, value, error, match):
    """``name=value`` refused by ``cls`` (in its options record, or as its own keyword) and by ``entry``,
    the function gym.make calls, each message naming the record or the class."""
    kwargs = {**endpoint, name: value}
    if name in ConnectOptions.fields():  # the record checks its fields, however it is made
        refused(
            lambda: cls(**endpoint, options=ConnectOptions(**{name: value})),
            error,
            rf"ConnectOptions.*{re.escape(match)}",
        )
    elif name not in LAUNCH:  # the class's own keywords
        refused(lambda: cls(**kwargs), error, rf"{cls.__name__}.*{re.escape(match)}")
    refused(lambda: entry(**kwargs), error, rf"{cls.__name__}.*{re.escape(match)}")


@pytest.mark.parametrize(("name", "value", "error", "match"), COMMON)
def test_remote_env_keywords(name, value, error, match):
    endpoint = {"host": "127.0.0.1", "port": 1}
    _refused_by_the_class_and_its_entry_point(RemoteEnv, make_env, endpoint, name, value, error, match)
    refused(lambda: gym.make("Remote-IsaacSim-v0", **{name: value}), error, re.escape(match))


@pytest.mark.parametrize(("name", "value", "error", "match"), COMMON + VECTOR)
def test_remote_vector_env_keywords(name, value, error, match):
    endpoint = {"num_envs": 2, "host": "127.0.0.1", "port": 1}
    kwargs = {**endpoint, name: value}
    _refused_by_the_class_and_its_entry_point(RemoteVectorEnv, make_vector_env, endpoint, name, value, error, match)
    if name != "num_envs":  # make_vec checks num_envs itself
        refused(lambda: gym.make_vec("Remote-IsaacSim-v0", **kwargs), error, re.escape(match))


def test_launch_ray_is_checked_and_starts_nothing_without_ray():
    """The issue's exact input: a truthy launch used to start one local server silently. Here (no Ray in
    the project's Python; tests/test_ray_pool.py runs it where Ray is) it names what to install."""
    assert importlib.util.find_spec("ray") is None
    refused(
        lambda: gym.make_vec("Remote-IsaacSim-v0", num_envs=64, launch="ray", servers=2, task="CartPole-v1"),
        ImportError,
        r"launch='ray'.*gym-remote\[ray\]",
    )
    refused(
        lambda: gym.make_vec("Remote-IsaacSim-v0", num_envs=4, launch="ray", sever=2),
        TypeError,
        r"RemoteVectorEnv.*'sever'.*Did you mean 'servers'",
    )
    refused(lambda: gym.make("Remote-IsaacSim-v0", launch="ray", servers=2), TypeError, "RemoteEnv.*'servers'")
    refused(
        lambda: gym.make_vec("Remote-IsaacSim-v0", num_envs=4, launch="rya"), ValueError, "RemoteVectorEnv.*launch="
    )


def test_launch_options_are_checked_before_ssh():
    def make(**kwargs):
        return gym.make("Remote-IsaacSim-v0", host="gpu-box", **kwargs)

    def make_vec(**kwargs):
        return gym.make_vec("Remote-IsaacSim-v0", num_envs=2, host="gpu-box", **kwargs)

    refused(lambda: make(launch=True, setpu="source env.sh"), TypeError, "RemoteEnv.*'setpu'.*Did you mean 'setup'")
    refused(lambda: make(setup="source env.sh"), TypeError, "RemoteEnv.*launch options need launch=True")
    refused(lambda: make_vec(launch={"pyton": "python3"}), TypeError, "RemoteVectorEnv.*'pyton'")
