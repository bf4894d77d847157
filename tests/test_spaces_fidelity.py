"""Every space Gymnasium 1.x ships travels, and so do its samples, single and batched (issue 16, item 4).

Graph (``GraphInstance`` samples), Sequence (variable-length tuples, or stacked arrays), OneOf
(``(index, value)`` pairs), Text, and Dict/Tuple holding them. ``tests/SpaceEcho-v0`` returns the
action it got as its next observation, so each sample crosses the wire both ways. Gymnasium is the
oracle: ``check_environments_match`` (no skip flags) and ``SyncVectorEnv`` with ``data_equivalence``.
"""

from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.utils.env_match import check_environments_match

from gym_remote import RemoteEnv
from gym_remote.spaces import space_from_dict, space_to_dict
from gym_remote.vector import RemoteVectorEnv
from tests.envs import wire_spaces

NAMES = sorted(wire_spaces())


@pytest.mark.parametrize("name", NAMES)
def test_space_definitions_round_trip(name):
    space = wire_spaces()[name]
    assert space_from_dict(space_to_dict(space)) == space


@pytest.mark.parametrize("name", NAMES)
def test_single_env_samples_round_trip(serve, name):
    server = serve("tests/SpaceEcho-v0")
    local = gym.make("tests/SpaceEcho-v0", space=name)
    with RemoteEnv(server.local_host, server.local_port, task_kwargs={"space": name}) as remote:
        check_environments_match(local, remote, num_steps=40, seed=1)


def run_vector(remote, local, steps: int) -> None:
    assert remote.observation_space == local.observation_space and remote.action_space == local.action_space
    assert data_equivalence(remote.reset(seed=2), local.reset(seed=2))
    local.action_space.seed(2)
    for _ in range(steps):
        action = local.action_space.sample()
        assert data_equivalence(remote.step(action), local.step(action), exact=True)


@pytest.mark.parametrize("name", NAMES)
def test_batched_samples_round_trip_on_one_server_and_fanned_out(serve, name):
    a, b = serve("tests/SpaceEcho-v0"), serve("tests/SpaceEcho-v0")
    kw = {"task_kwargs": {"space": name}}
    hosts = [f"{s.local_host}:{s.local_port}" for s in (a, b)]
    for remote in (RemoteVectorEnv(3, a.local_host, a.local_port, **kw), RemoteVectorEnv(3, hosts=hosts, **kw)):
        local = gym.vector.SyncVectorEnv([lambda: gym.make("tests/SpaceEcho-v0", space=name)] * 3)
        try:
            run_vector(remote, local, 20)
        finally:
            remote.close()
            local.close()
