"""A remote env is indistinguishable from the local one, for Gymnasium's own envs (issue 16, items 3 and 5).

Gymnasium is the oracle: ``check_environments_match`` with no skip flags (values *and* types), and
``check_env`` warning exactly what it warns for the local env. Vector envs are compared with
``SyncVectorEnv`` by ``data_equivalence`` (types, dtypes, shapes and values of every output).
Every id of Gymnasium's classic-control, toy-text, Box2D and MuJoCo v4/v5 families that this machine
can make is checked. Rendering too: classic control, toy text and Box2D draw with pygame (the
``test`` extra installs Gymnasium's ``classic-control``, ``toy-text`` and ``box2d`` extras) on SDL's
headless ``dummy`` drivers, so their frames, their ``ansi`` text and ``check_env``'s render checks
are compared with the local env's.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence
from gymnasium.utils.env_match import check_environments_match

import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)
from gym_remote.errors import BadRequestError, RemoteEnvError
from gym_remote.local import LocalServer
from gym_remote.vector import RemoteVectorEnv

# pygame without a screen or sound card, here and in the server this module starts (it inherits them)
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

FAMILIES = (
    "gymnasium.envs.classic_control",
    "gymnasium.envs.toy_text",
    "gymnasium.envs.box2d",
    "gymnasium.envs.mujoco",
)
#: Ids of those families that cannot be made here at all, locally or remotely, and why.
CANNOT_MAKE = {"Pusher-v4": "Gymnasium supports it only on mujoco<3; the project installs mujoco 3"}


def gymnasium_ids() -> list[str]:
    """Gymnasium's own ids of the families above (MuJoCo: v4 and v5, which use the mujoco package)."""
    ids = []
    for env_id, spec in sorted(gym.registry.items()):
        entry = spec.entry_point if isinstance(spec.entry_point, str) else ""
        if env_id in CANNOT_MAKE:
            continue
        if entry.startswith(FAMILIES) and ("mujoco" not in entry or spec.version in (4, 5)):
            ids.append(env_id)
    return ids


IDS = gymnasium_ids()


def test_the_list_covers_the_families():
    assert len(IDS) >= 38
    assert {"CartPole-v1", "Pendulum-v1", "FrozenLake-v1", "Blackjack-v1", "LunarLander-v3", "Ant-v5"} <= set(IDS)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    """One server for the module; each test opens its own sessions on it."""
    with LocalServer("gymnasium", "CartPole-v1") as srv:
        yield srv


def remote(server: LocalServer, env_id: str, **kwargs) -> gym.Env:
    return gym.make("Remote-IsaacSim-v0", host=server.local_host, port=server.local_port, task=env_id, **kwargs)


def checker_warnings(env: gym.Env, **kwargs) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, **kwargs)
    return sorted({str(w.message) for w in caught})


@pytest.mark.parametrize("env_id", IDS)
def test_single_env_matches_local(server, env_id):
    local, far = gym.make(env_id), remote(server, env_id)
    try:
        check_environments_match(local, far, num_steps=120, seed=3)
        # the flags' types too (check_environments_match compares them with ==)
        local.action_space.seed(5)
        assert data_equivalence(local.reset(seed=5), far.reset(seed=5))
        for _ in range(20):
            action = local.action_space.sample()
            assert data_equivalence(local.step(action), far.step(action), exact=True)
        assert far.spec is not None and far.spec.max_episode_steps == local.spec.max_episode_steps
        assert far.metadata["render_modes"] == [m for m in local.metadata["render_modes"] if m != "human"]
        assert far.metadata.get("render_fps") == local.metadata.get("render_fps")
    finally:
        local.close()
        far.close()
    with pytest.raises(RemoteEnvError, match="closed"):
        far.unwrapped.step(far.action_space.sample())


@pytest.mark.parametrize("env_id", IDS)
def test_check_env_warns_what_it_warns_locally(server, env_id):
    local, far = gym.make(env_id), remote(server, env_id)
    try:
        # Rendering checks in full, both sides, but for MuJoCo's local "human" mode, which needs a
        # GLFW window (the server renders MuJoCo headless with EGL and offers no "human" mode).
        mujoco = "mujoco" in str(local.spec.entry_point)
        expected = checker_warnings(local.unwrapped, skip_render_check=mujoco)
        assert checker_warnings(far.unwrapped) == expected
    finally:
        local.close()
        far.close()


PYGAME_IDS = [i for i in IDS if "mujoco" not in str(gym.spec(i).entry_point)]


@pytest.mark.parametrize("env_id", PYGAME_IDS)
def test_rendered_frames_match_local(server, env_id):
    """Every render mode but "human": the same frame (shape, dtype, every pixel) or text as locally."""
    modes = [m for m in gym.make(env_id).metadata["render_modes"] if m != "human"]
    assert "rgb_array" in modes
    for mode in modes:
        local, far = gym.make(env_id, render_mode=mode), remote(server, env_id, render_mode=mode)
        try:
            assert far.render_mode == mode
            local.reset(seed=2)
            far.reset(seed=2)
            assert data_equivalence(far.render(), local.render(), exact=True)
            local.action_space.seed(2)
            for _ in range(5):
                action = local.action_space.sample()
                local.step(action)
                far.step(action)
            frame, expected = far.render(), local.render()
            assert type(frame) is type(expected) and data_equivalence(frame, expected, exact=True)
            if mode == "rgb_array":
                assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3 and frame.any()
        finally:
            local.close()
            far.close()


@pytest.mark.parametrize("env_id", IDS)
def test_vector_env_matches_sync_vector_env(server, env_id):
    n = 3
    local = gym.vector.SyncVectorEnv([lambda: gym.make(env_id)] * n)
    far = RemoteVectorEnv(n, server.local_host, server.local_port, task=env_id)
    try:
        assert far.single_observation_space == local.single_observation_space
        assert far.single_action_space == local.single_action_space
        assert far.observation_space == local.observation_space and far.action_space == local.action_space
        assert far.metadata["render_modes"] == [m for m in local.metadata["render_modes"] if m != "human"]
        assert data_equivalence(far.reset(seed=11), local.reset(seed=11))
        local.action_space.seed(11)
        for _ in range(60):
            action = local.action_space.sample()
            assert data_equivalence(far.step(action), local.step(action), exact=True)
    finally:
        local.close()
        far.close()
    with pytest.raises(RemoteEnvError, match="closed"):
        far.step(np.asarray(local.action_space.sample()))


def test_a_render_mode_the_server_cannot_draw_is_refused_in_one_line(serve) -> None:
    """Issue 25: CartPole on a server without pygame advertises rgb_array (its class does), and its
    render() raises Gymnasium's DependencyNotInstalled: the client gets one line saying so, no traceback."""
    server = serve("CartPole-v1", "gymnasium", "--import", "tests.no_pygame")
    env = gym.make(
        "Remote-IsaacSim-v0",
        host=server.local_host,
        port=server.local_port,
        task="CartPole-v1",
        render_mode="rgb_array",
    )
    try:
        env.reset(seed=0)
        with pytest.raises(BadRequestError, match="cannot render on this server: pygame is not installed") as info:
            env.render()
        assert not info.value.remote_traceback and "\n" not in info.value.message
        env.step(env.action_space.sample())  # the session goes on
    finally:
        env.close()
