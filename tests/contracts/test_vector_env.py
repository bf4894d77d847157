"""Gymnasium's VectorEnv contract, one behaviour suite run over ``[SyncVectorEnv, RemoteVectorEnv]`` (issue 13, item 10).

Each behaviour runs the same calls on Gymnasium's ``SyncVectorEnv`` (the reference) and on
``RemoteVectorEnv`` against a real server, and compares what comes back: values, types, shapes, and
the exception classes raised for bad arguments. What the remote class refuses on purpose is
tested in ``tests/contracts/test_sb3_vec_env.py`` and listed in the README.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import gymnasium as gym
import numpy as np
import pytest

from gym_remote.local import LocalServer
from gym_remote.vector import RemoteVectorEnv

N = 3
TASK = "CartPole-v1"
KINDS = ["SyncVectorEnv", "RemoteVectorEnv"]


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer("gymnasium", TASK) as srv:
        yield srv


@pytest.fixture(params=KINDS)
def make(request, server) -> Iterator[Callable[..., gym.vector.VectorEnv]]:
    made: list[gym.vector.VectorEnv] = []

    def build(mode: str = "next_step") -> gym.vector.VectorEnv:
        if request.param == "SyncVectorEnv":
            env = gym.vector.SyncVectorEnv(
                [lambda: gym.make(TASK)] * N, autoreset_mode=gym.vector.AutoresetMode[mode.upper()]
            )
        else:
            env = RemoteVectorEnv(N, server.local_host, server.local_port, task=TASK, autoreset_mode=mode)
        made.append(env)
        return env

    yield build
    for env in made:
        env.close()


def both(server, mode: str = "next_step") -> tuple[gym.vector.VectorEnv, gym.vector.VectorEnv]:
    ref = gym.vector.SyncVectorEnv([lambda: gym.make(TASK)] * N, autoreset_mode=gym.vector.AutoresetMode[mode.upper()])
    return ref, RemoteVectorEnv(N, server.local_host, server.local_port, task=TASK, autoreset_mode=mode)


def test_spaces_and_attributes(server):
    ref, remote = both(server)
    for name in ("num_envs", "single_observation_space", "single_action_space", "observation_space", "action_space"):
        assert getattr(ref, name) == getattr(remote, name), name
    assert remote.metadata["autoreset_mode"] == ref.metadata["autoreset_mode"]
    ref.close(), remote.close()


@pytest.mark.parametrize("seed", [0, [5, None, 7], 2**100, 2**128 - N])  # Gymnasium's seeds are 128-bit ints
def test_seeds_give_equal_observations_and_per_sub_env_seeds(server, seed):
    ref, remote = both(server)
    a, b = ref.reset(seed=seed), remote.reset(seed=seed)
    if isinstance(seed, list):  # None seeds are random: compare the seeded sub-envs only
        np.testing.assert_array_equal(a[0][[0, 2]], b[0][[0, 2]])
    else:
        np.testing.assert_array_equal(a[0], b[0])
        assert ref.np_random_seed == remote.np_random_seed  # one seed per sub-env, big ints included
    assert type(remote.np_random_seed) is tuple and len(remote.np_random_seed) == N
    ref.close(), remote.close()


def test_unseeded_sub_envs_report_their_128_bit_seeds(make):
    env = make()
    env.reset()
    seeds = env.np_random_seed
    assert type(seeds) is tuple and len(seeds) == N and all(type(s) is int and s >= 0 for s in seeds)
    assert any(s >= 2**64 for s in seeds) or len(set(seeds)) == N  # random 128-bit seeds, all different
    assert env.call("np_random_seed") == seeds


@pytest.mark.parametrize("mode", ["next_step", "same_step", "disabled"])
def test_steps_match_in_every_autoreset_mode(server, mode):
    ref, remote = both(server, mode)
    rng = np.random.default_rng(1)
    a, b = ref.reset(seed=3), remote.reset(seed=3)
    np.testing.assert_array_equal(a[0], b[0])
    for _ in range(40):
        actions = rng.integers(0, 2, N)
        ra, rb = ref.step(actions), remote.step(actions)
        for x, y in zip(ra[:4], rb[:4], strict=True):
            np.testing.assert_array_equal(x, y)
            assert np.asarray(x).dtype == np.asarray(y).dtype
        if mode == "disabled" and (ra[2] | ra[3]).any():
            mask = ra[2] | ra[3]
            a, b = ref.reset(options={"reset_mask": mask}), remote.reset(options={"reset_mask": mask})
            np.testing.assert_array_equal(a[0][mask], b[0][mask])
    ref.close(), remote.close()


BAD_RESETS = [  # arguments, the exception class SyncVectorEnv raises
    ({"seed": [1, 2]}, ValueError),
    ({"options": {"reset_mask": np.array([1, 0, 1])}}, TypeError),  # not bool: refused, not cast
    ({"options": {"reset_mask": [True, False, True]}}, TypeError),  # not an array
    ({"options": {"reset_mask": np.ones(2, bool)}}, ValueError),
    ({"options": {"reset_mask": np.zeros(N, bool)}}, ValueError),
]


@pytest.mark.parametrize(("kwargs", "error"), BAD_RESETS)
def test_bad_reset_arguments_raise_what_the_reference_raises(make, kwargs, error):
    env = make("disabled")
    env.reset(seed=0)
    with pytest.raises(error):
        env.reset(**{k: (dict(v) if isinstance(v, dict) else v) for k, v in kwargs.items()})
    env.reset(seed=0)  # and goes on


def test_a_bad_action_is_refused_by_both(make):
    env = make()
    env.reset(seed=0)
    with pytest.raises((AssertionError, ValueError)):
        env.step(np.full(N, 5))


# Gymnasium's own vector test cases (tests/vector/test_vector_env.py, test_sync_vector_env.py), written
# again here with only the construction changed (issue 25, item 6).


def test_action_count_compatibility(make):
    env = make("disabled")
    env.reset(seed=0)
    actions = env.action_space.sample()
    assert all(len(x) == N for x in env.step(actions)[:4])
    env.step([int(a) for a in actions])  # a list of single-env actions is a batch too
    with pytest.raises(ValueError):
        env.step(actions[: N - 1])
    with pytest.raises(ValueError):
        env.step(np.concatenate([actions, actions[:1]]))
    with pytest.raises(TypeError):
        env.step(0)


def test_reset_without_a_seed_keeps_the_seeds(make):
    env = make()
    env.reset(seed=42)
    assert env.np_random_seed == tuple(42 + i for i in range(N))
    env.reset(seed=None)
    assert env.np_random_seed == tuple(42 + i for i in range(N))


@pytest.mark.parametrize("given", ["SAME_STEP", "SameStep", "same_step"])
def test_autoreset_mode_is_gymnasiums_enum_however_it_is_given(server, given):
    mode = gym.vector.AutoresetMode.SAME_STEP
    value = mode if given == "SAME_STEP" else given
    env = RemoteVectorEnv(N, server.local_host, server.local_port, task=TASK, autoreset_mode=value)
    ref = gym.vector.SyncVectorEnv([lambda: gym.make(TASK)] * N, autoreset_mode=mode)
    assert env.autoreset_mode is ref.autoreset_mode is mode
    assert env.metadata["autoreset_mode"] is ref.metadata["autoreset_mode"]
    env.close(), ref.close()
    with pytest.raises(ValueError, match="autoreset_mode must be gymnasium.vector.AutoresetMode or one of"):
        RemoteVectorEnv(N, server.local_host, server.local_port, task=TASK, autoreset_mode="SAME_STEP")


def test_the_server_takes_gymnasiums_mode_values_at_hello(server):
    """A client other than ours may send Gymnasium's value on the wire."""
    from gym_remote.client import Connection
    from gym_remote.client_session import ClientSession, hello_body

    hello = hello_body("test", task=TASK, num_envs=2, autoreset_mode="SameStep")
    link = ClientSession(Connection(server.local_host, server.local_port), hello, 30.0)
    assert link.open()["num_envs"] == 2
    link.close()


def test_set_attr_is_refused_on_purpose(server):
    env = RemoteVectorEnv(N, server.local_host, server.local_port, task=TASK)
    with pytest.raises(AttributeError, match="refused on purpose"):
        env.set_attr("render_mode", "rgb_array")
    env.close()


@pytest.mark.parametrize("fan_out", [False, True], ids=["one server", "two servers"])
def test_graph_final_observations_are_graph_instances(serve, fan_out):
    """SAME_STEP ``final_obs`` rows of a Graph space are ``GraphInstance``, equal to SyncVectorEnv's."""
    task, kwargs = "tests/SpaceEcho-v0", {"space": "graph"}
    servers = [serve(task), serve(task)] if fan_out else [serve(task)]
    hosts = [f"{s.local_host}:{s.local_port}" for s in servers]
    mode = gym.vector.AutoresetMode.SAME_STEP
    ref = gym.vector.SyncVectorEnv([lambda: gym.make(task, **kwargs)] * 2, autoreset_mode=mode)
    env = RemoteVectorEnv(2, hosts=hosts, task=task, task_kwargs=kwargs, autoreset_mode=mode)
    ref.reset(seed=1), env.reset(seed=1)
    for _ in range(7):  # the seventh step truncates: final_obs
        ref.action_space.seed(0)
        actions = ref.action_space.sample()
        a, b = ref.step(actions), env.step(actions)
    assert b[4]["_final_obs"].all()
    for want, got in zip(a[4]["final_obs"], b[4]["final_obs"], strict=True):
        assert type(got) is type(want) is gym.spaces.GraphInstance
        for x, y in zip(want, got, strict=True):
            np.testing.assert_array_equal(x, y)
    ref.close(), env.close()
