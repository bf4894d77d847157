"""Forgotten clients close their server sessions: unclosed, dereferenced, garbage-collected.

Gymnasium 1.4's ``VectorEnv`` no longer closes itself when collected (only ``AsyncVectorEnv`` does),
so every client class closes what it opened through ``weakref.finalize``. The server's own count
of open sessions (PING) is the oracle.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator

import gymnasium as gym
import pytest

from gym_remote import RemoteEnv
from gym_remote.local import LocalServer
from gym_remote.sb3 import RemoteVecEnv
from gym_remote.vector import RemoteVectorEnv


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer("gymnasium", "CartPole-v1") as srv:
        yield srv


def open_sessions(server: LocalServer) -> int:
    with RemoteEnv(server.local_host, server.local_port) as probe:
        return probe.ping()["sessions"] - 1  # not the probe's own


CLIENTS: dict[str, Callable[[LocalServer], object]] = {
    "RemoteEnv": lambda s: RemoteEnv(s.local_host, s.local_port),
    "gym.make": lambda s: gym.make("Remote-IsaacSim-v0", host=s.local_host, port=s.local_port),
    "RemoteVectorEnv": lambda s: RemoteVectorEnv(2, s.local_host, s.local_port),
    "RemoteVectorEnv-batches": lambda s: RemoteVectorEnv(4, s.local_host, s.local_port, batch_size=2),
    "gym.make_vec": lambda s: gym.make_vec("Remote-IsaacSim-v0", 2, host=s.local_host, port=s.local_port),
    "RemoteVecEnv": lambda s: RemoteVecEnv(num_envs=2, host=s.local_host, port=s.local_port),
}


@pytest.mark.parametrize("kind", CLIENTS)
def test_forgotten_clients_close_their_sessions_when_collected(server, kind):
    assert open_sessions(server) == 0
    clients = [CLIENTS[kind](server) for _ in range(3)]
    for client in clients:
        client.reset(seed=0) if not isinstance(client, RemoteVecEnv) else client.reset()
    assert open_sessions(server) >= 3
    del clients, client
    gc.collect()
    assert open_sessions(server) == 0


def test_a_group_in_flight_is_abandoned_when_its_env_is_collected(server):
    env = RemoteVectorEnv(4, server.local_host, server.local_port, batch_size=2)
    env.async_reset(seed=0)  # two requests out, no reply awaited
    del env
    gc.collect()
    assert open_sessions(server) == 0


def test_close_then_collection_closes_once(server):
    env = RemoteVectorEnv(2, server.local_host, server.local_port)
    env.close()
    env.close()  # idempotent
    assert env.closed and open_sessions(server) == 0
    del env
    gc.collect()
    assert open_sessions(server) == 0
