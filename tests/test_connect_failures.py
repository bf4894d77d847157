"""A wrong endpoint fails within seconds with a message that says what to check (issue 16, item 1).

The HELLO timeout is long (a GPU server can take a minute to build its simulator), so it must only
be waited for a server that accepted the TCP connection. Everything here is real sockets on 127.0.0.1.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import gymnasium as gym
import pytest

import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)
from gym_remote import ConnectError, ConnectOptions, RemoteEnv
from gym_remote.vector import RemoteVectorEnv

#: Generous: the probe gives up after 2 s; the 2-core test machine may be loaded.
FAST = 8.0


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port whose accept queue is full: the kernel drops new SYNs, as for an unreachable host."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    held = [socket.create_connection(("127.0.0.1", port), timeout=1.0)]  # fills the queue
    yield port
    for s in (*held, listener):
        s.close()


def test_refused_port_fails_at_once_naming_host_port_and_what_to_check():
    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(ConnectError) as info:
        gym.make("Remote-IsaacSim-v0", host="127.0.0.1", port=port, connect_timeout=120.0, retries=2)
    elapsed = time.monotonic() - t0
    assert elapsed < FAST, f"took {elapsed:.1f} s"
    err = info.value
    assert isinstance(err, ConnectionError) and err.host == "127.0.0.1" and err.port == port
    text = str(err)
    assert f"127.0.0.1:{port}" in text and "refused" in text and "gym-remote serve" in text and "tunnel" in text


def test_refused_port_fails_at_once_for_vector_envs_too():
    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(ConnectError, match=str(port)):
        RemoteVectorEnv(4, "127.0.0.1", port, options=ConnectOptions(connect_timeout=120.0))
    assert time.monotonic() - t0 < FAST


def test_unreachable_endpoint_fails_after_the_probe_not_the_hello_timeout(black_hole):
    t0 = time.monotonic()
    with pytest.raises(ConnectError) as info:
        RemoteEnv("127.0.0.1", black_hole, options=ConnectOptions(connect_timeout=120.0, retries=2))
    elapsed = time.monotonic() - t0
    assert 1.5 < elapsed < FAST, f"took {elapsed:.1f} s"  # the 2 s probe, once
    assert "within 2.0 s" in str(info.value) and "unreachable" in str(info.value)


def test_a_server_still_building_its_simulator_keeps_the_long_timeout(serve):
    server = serve("CartPole-v1")
    t0 = time.monotonic()
    # Building this env takes 4 s, twice the probe's budget: the client waits (connect_timeout).
    with RemoteEnv(
        server.local_host, server.local_port, task="tests/SlowBuild-v0", task_kwargs={"build_seconds": 4.0}
    ) as env:
        assert time.monotonic() - t0 >= 4.0
        env.reset(seed=0)
        assert env.step(1)[0].tolist() == [1.0, 1.0]


# --------------------------------------------------- HELLO retries and clients that give up (issue 22)


def _sessions(server, settle: float = 0.0) -> int:
    """The sessions the server holds (PING answers with the count), after ``settle`` seconds."""
    from gym_remote.client import Connection
    from gym_remote.protocol import Kind

    time.sleep(settle)
    conn = Connection(server.local_host, server.local_port, timeout=30.0, retries=0)
    try:
        return conn.request(Kind.PING)["sessions"]
    finally:
        conn.close()


def test_a_retried_hello_is_the_same_hello_and_gets_the_session_being_built(serve):
    """connect_timeout=1, retries=2 against a 1.5 s build: the retry (same hello_id) gets the session the
    first attempt built, rather than building a second and a third that nobody holds."""
    server = serve("CartPole-v1")
    with RemoteEnv(
        server.local_host,
        server.local_port,
        task="tests/SlowBuild-v0",
        task_kwargs={"build_seconds": 1.5},
        options=ConnectOptions(connect_timeout=1.0, retries=2),
    ) as env:
        env.reset(seed=0)
        assert _sessions(server, settle=3.5) == 1  # every attempt's build would be done by now
    assert _sessions(server) == 0


@pytest.mark.parametrize("vector", [False, True], ids=["RemoteEnv", "RemoteVectorEnv"])
def test_a_client_that_gives_up_its_hello_leaves_no_session_behind(serve, vector):
    """A 4 s build against connect_timeout=1, retries=2: RemoteTimeoutError after 3 s, and the server,
    once the build is done, closes the session the client gave up (it sent CLOSE for its hello_id)."""
    from gym_remote import RemoteTimeoutError

    server = serve("CartPole-v1")
    endpoint = (server.local_host, server.local_port)
    kwargs = {"task": "tests/SlowBuild-v0", "task_kwargs": {"build_seconds": 4.0}}
    options = ConnectOptions(connect_timeout=1.0, retries=2)
    t0 = time.monotonic()
    with pytest.raises(RemoteTimeoutError):
        if vector:
            RemoteVectorEnv(1, *endpoint, options=options, **kwargs)  # one attempt: the fan-out HELLO is not retried
        else:
            RemoteEnv(*endpoint, options=options, **kwargs)
    assert time.monotonic() - t0 < 3.0 + FAST
    deadline = time.monotonic() + 30
    while (held := _sessions(server)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert held == 0
    with RemoteEnv(*endpoint) as env:  # and the server serves on
        env.reset(seed=0)
