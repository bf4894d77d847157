"""Every client mistake comes back as ``bad_request`` (BadRequestError), never as ``env`` (issue 13, item 7).

Each case sends what a client could send, through a raw connection (no client-side checks), to a
real server, and checks the error code; the session goes on working afterwards. An env that raises
on its own stays an ``env`` error (a plain ServerError), so the two remain told apart.
"""

from __future__ import annotations

import numpy as np
import pytest

from gym_remote.client import Connection
from gym_remote.client_session import hello_body
from gym_remote.errors import BadRequestError, RemoteEnvError, ServerError
from gym_remote.protocol import Kind
from gym_remote.vector import RemoteVectorEnv


class Raw:
    """A session opened by a raw HELLO."""

    def __init__(self, server, **hello) -> None:
        self.conn = Connection(server.local_host, server.local_port, timeout=20.0, retries=0)
        self.session = self.conn.request(Kind.HELLO, {**hello_body("test"), "hello_id": "", **hello})["session"]

    def __call__(self, kind: Kind, body=None):
        return self.conn.request(kind, body, session=self.session)


def hello(server, **fields):
    return Raw(server, **fields)


HELLO_MISTAKES = [
    ({"task": "FrozenLake-v1", "task_kwargs": {"map_name": "9x9"}}, "KeyError"),  # the env's own KeyError
    ({"task": "Ant-v5", "task_kwargs": {"xml_file": "no_such_model.xml"}}, "no_such_model.xml"),  # its OSError
    ({"task": "CartPole-v1", "task_kwargs": {"sutton_barto_rewrd": True}}, "Did you mean"),
    ({"task": "CartPole-v1", "num_envs": 0}, "num_envs"),
    ({"task": "CartPole-v1", "num_envs": "2"}, "num_envs"),
    ({"task": "CartPole-v1", "max_episode_steps": -1}, "max_episode_steps"),
    ({"task": "CartPole-v1", "autoreset_mode": "sometimes"}, "autoreset_mode"),
    ({"task": 5}, "task must be a string"),
    ({"task": "x" * 1000}, "longer than"),
    ({"task_kwargs": {"xml_file": "/etc/passwd"}}, "names a file on the server"),
]


@pytest.mark.parametrize(("fields", "match"), HELLO_MISTAKES)
def test_hello_mistakes_are_bad_requests(serve, fields, match):
    server = serve("CartPole-v1")
    with pytest.raises(BadRequestError, match=match) as info:
        hello(server, **fields)
    assert info.value.remote_type == "BadRequestError"


SINGLE_MISTAKES = [
    (Kind.RESET, {"seed": -1}, "int >= 0"),
    (Kind.RESET, {"seed": "7"}, "int >= 0"),
    (Kind.RESET, {"seed": [1, 2]}, "single env takes an int seed"),
    (Kind.RESET, {"options": [1]}, "one per sub-env"),
    (Kind.RESET, {"options": {"reset_mask": np.ones(1, bool)}}, "reset_mask is for vector envs"),
    (Kind.STEP, {"action": 7}, "outside Discrete"),
    (Kind.STEP, {}, "lacks an action"),
    (Kind.STEP, {"action": 0, "with_state": True}, "does not expose its state"),  # refused before stepping
    (Kind.SET_STATE, {"state": "junk"}, "cannot set its state"),
    (Kind.CALL, {"name": "close"}, "allow-list"),
]

VECTOR_MISTAKES = [
    (Kind.RESET, {"seed": [1, 2]}, "2 seeds for 3 sub-envs"),
    (Kind.RESET, {"seed": [1, -2, 3]}, "int >= 0"),
    (Kind.RESET, {"options": {"reset_mask": np.array([1, 0, 1])}}, "dtype=np.bool_"),
    (Kind.RESET, {"options": {"reset_mask": [True, False, True]}}, "numpy array"),
    (Kind.RESET, {"options": {"reset_mask": np.ones(2, bool)}}, r"shape `\(3,\)`"),
    (Kind.RESET, {"options": {"reset_mask": np.zeros(3, bool)}}, "at least one True"),
    (Kind.STEP, {"action": np.zeros(2, np.int64)}, "shape"),
]


@pytest.mark.parametrize("num_envs", [None, 3])
def test_request_mistakes_are_bad_requests_and_the_session_goes_on(serve, num_envs):
    server = serve("CartPole-v1")
    raw = hello(server, task="CartPole-v1", num_envs=num_envs)
    raw(Kind.RESET, {"seed": 0})
    for kind, body, match in SINGLE_MISTAKES if num_envs is None else VECTOR_MISTAKES:
        with pytest.raises(BadRequestError, match=match):
            raw(kind, body)
    raw(Kind.RESET, {"seed": 0})  # the session is fine after every refusal
    reply = raw(Kind.STEP, {"action": 1 if num_envs is None else np.ones(num_envs, np.int64)})
    assert reply["reward"] is not None


def test_episode_clocks_are_refused_where_the_env_keeps_none(serve):
    """Gymnasium's vector envs keep no episode clocks a client may write: not offered, and refused."""
    server = serve("CartPole-v1")
    venv = RemoteVectorEnv(3, server.local_host, server.local_port, task="CartPole-v1")
    assert "set_episode_lengths" not in venv.remote_methods
    with pytest.raises(AttributeError, match="keeps no episode step counts"):
        venv.set_episode_lengths(np.zeros(3, np.int64))
    with pytest.raises(AttributeError, match="set_episode_lengths"):
        venv.call("set_episode_lengths", np.zeros(3, np.int64))
    venv.close()
    raw = hello(server, task="CartPole-v1", num_envs=3)
    with pytest.raises(BadRequestError, match="allow-list"):
        raw(Kind.CALL, {"name": "set_episode_lengths", "args": [np.zeros(3, np.int64)]})
    assert raw(Kind.RESET, {"seed": 0})["obs"].shape == (3, 4)  # the session goes on


def test_a_mujoco_state_that_does_not_fit_is_a_bad_request(serve):
    server = serve("InvertedPendulum-v5")
    raw = hello(server)
    raw(Kind.RESET, {"seed": 0})
    for state, match in [(np.zeros(3), "does not fit the schema"), ("x", "could not convert")]:
        with pytest.raises(BadRequestError, match=match):
            raw(Kind.SET_STATE, {"state": state})


def test_an_env_that_raises_by_itself_stays_an_env_error(serve):
    server = serve("tests/Raising-v0")
    raw = hello(server)
    raw(Kind.RESET, {"seed": 0})
    with pytest.raises(ServerError, match="boom") as info:
        raw(Kind.STEP, {"action": 2})
    assert not isinstance(info.value, BadRequestError) and info.value.remote_type == "RuntimeError"
    assert isinstance(info.value, RemoteEnvError) and "Traceback" in (info.value.remote_traceback or "")


def test_one_table_maps_every_wire_code_both_ways():
    """``errors.ERROR_CLASSES`` covers every ``ErrorCode``; the server's code for each class's
    instance is the code the client turns back into that class (but for the env's own errors)."""
    from gym_remote.errors import ERROR_CLASSES, ConfigError, ServerError, StateError, error_code
    from gym_remote.protocol import ErrorCode

    assert set(ERROR_CLASSES) == {code.value for code in ErrorCode}
    for code, cls in ERROR_CLASSES.items():
        if cls is not ServerError:
            assert error_code(cls("x")) == code
    assert error_code(ZeroDivisionError()) == "env" and ERROR_CLASSES["env"] is ServerError
    assert error_code(StateError("x")) == error_code(ConfigError("x")) == "bad_request"
