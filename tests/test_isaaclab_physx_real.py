"""Isaac Lab 3.0.0 on PhysX (NVIDIA's kit-less ``ovphysx``) and its Warp camera renderer, for REAL.

As users run it: the server is ``gym-remote serve --backend isaaclab`` in the Isaac Lab venv of
``scripts/build_isaaclab_venv.sh`` (which adds ``ovphysx``/``ovstage`` at Isaac Lab's pins), the client
is this project's Python. The engine is chosen with Isaac Lab's own ``physics=ovphysx`` override from
each place the backend takes overrides: ``serve --override``, a task config, a client's
``task_kwargs["overrides"]``. This machine has no CUDA driver, so every PhysX session here also runs
through the backend's handling of ovphysx's pinned host buffers. The Franka stack on PhysX is in
``tests/test_isaaclab_stack_real.py`` (parametrized over both engines).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)
from gym_remote.errors import BadRequestError, LaunchError
from gym_remote.local import LocalServer
from tests.conftest import in_venv

pytestmark = pytest.mark.isaaclab

ROOT = Path(__file__).resolve().parent.parent
CONNECT = 600.0  # seconds: a cold Warp kernel cache compiles for minutes on the first env
CAMERA_TASK = "Isaac-Cartpole-Camera-Direct"


def _server(python: str, assets: Path, task: str, *extra: str, **kwargs: object) -> LocalServer:
    return LocalServer(
        "isaaclab",
        task,
        {"asset_root": str(assets), **kwargs},
        extra_args=list(extra),
        python=python,
        startup_timeout=CONNECT,
        env={"PYTHONPATH": str(ROOT)},
    )


@pytest.fixture(scope="module")
def cartpole(isaaclab_python: str, isaaclab_assets: Path) -> Iterator[LocalServer]:
    """Manager-based Cartpole on PhysX by ``serve --override physics=ovphysx``."""
    with _server(isaaclab_python, isaaclab_assets, "Isaac-Cartpole", "--override", "physics=ovphysx") as server:
        yield server


@pytest.fixture(scope="module")
def direct(
    isaaclab_python: str, isaaclab_assets: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalServer]:
    """Direct-workflow Cartpole on PhysX by a task config (``serve --config PATH``)."""
    config = tmp_path_factory.mktemp("configs") / "cartpole_direct_physx.yaml"
    config.write_text(
        "backend: isaaclab\ntask: Isaac-Cartpole-Direct\nnum_envs: 64\ntask_kwargs:\n  overrides: [physics=ovphysx]\n",
        encoding="utf-8",
    )
    with _server(isaaclab_python, isaaclab_assets, None, "--config", str(config)) as server:  # type: ignore[arg-type]
        yield server


def _make(server: LocalServer, **kwargs: object) -> gym.Env:
    return gym.make(
        "Remote-IsaacSim-v0", host=server.local_host, port=server.local_port, connect_timeout=CONNECT, **kwargs
    )


def _make_vec(server: LocalServer, n: int, **kwargs: object) -> gym.vector.VectorEnv:
    return gym.make_vec(
        "Remote-IsaacSim-v0",
        num_envs=n,
        host=server.local_host,
        port=server.local_port,
        connect_timeout=CONNECT,
        autoreset_mode="same_step",
        **kwargs,
    )


def _rollout(env: gym.Env, steps: int, seed: int = 0) -> np.ndarray:
    obs, _ = env.reset(seed=seed)
    seen = [obs]
    for _ in range(steps):
        obs, *_ = env.step(np.zeros(1, np.float32))
        seen.append(obs)
    return np.stack(seen)


# ------------------------------------------------------------------------- Cartpole on PhysX


@pytest.mark.parametrize("which", ["cartpole", "direct"])
def test_cartpole_on_physx_passes_check_env_seeds_and_restores_state(
    which: str, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue(which)
    env = _make(server, with_state=True)
    try:
        remote = env.unwrapped
        assert remote.metadata["physics"] == "ovphysx"
        assert env.observation_space == gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
        assert env.action_space == gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
        assert env.spec.max_episode_steps == 300
        check_env(remote, skip_render_check=True, skip_close_check=True)
        first, _ = env.reset(seed=7)
        second, _ = env.reset(seed=7)
        other, _ = env.reset(seed=8)
        np.testing.assert_array_equal(first, second)
        assert not np.array_equal(first, other)
        # state round trip: the steps after a restore retrace the steps after the save
        for _ in range(5):
            env.step(np.array([0.6], np.float32))
        saved = np.array(remote.get_state())
        ahead = [env.step(np.array([-0.4], np.float32))[0] for _ in range(4)]
        remote.set_state(saved)
        np.testing.assert_allclose(remote.get_state(), saved, atol=1e-5)
        again = [env.step(np.array([-0.4], np.float32))[0] for _ in range(4)]
        np.testing.assert_allclose(again, ahead, atol=1e-4)
        assert np.abs(np.diff(np.stack(ahead), axis=0)).max() > 1e-3  # the pole really moved meanwhile
    finally:
        env.close()


@pytest.mark.parametrize("which", ["cartpole", "direct"])
def test_vector_64_on_physx_seeds_and_resets_in_step(which: str, request: pytest.FixtureRequest) -> None:
    venv = _make_vec(request.getfixturevalue(which), 64)
    try:
        assert venv.metadata["physics"] == "ovphysx" and venv.observation_space.shape == (64, 4)
        obs, _ = venv.reset(seed=3)
        again, _ = venv.reset(seed=3)
        np.testing.assert_array_equal(obs, again)
        assert len({tuple(row) for row in obs.round(6)}) == 64
        for _ in range(120):  # a steady push drives every cart out of bounds: Isaac Lab resets them in step
            obs, reward, terminated, truncated, info = venv.step(np.full((64, 1), 0.8, np.float32))
            assert reward.dtype == np.float64 and reward.shape == (64,) and np.isfinite(reward).all()
            if terminated.any():
                np.testing.assert_array_equal(info["_reset_in_step"], terminated | truncated)
                assert np.all(np.abs(obs[terminated, 0]) <= 1.0 + 1e-4)  # fresh starts
                break
        else:
            pytest.fail("no cart left its bounds in 120 pushed steps")
    finally:
        venv.close()


def test_physx_and_newton_give_close_but_different_rollouts(cartpole: LocalServer) -> None:
    """One server, two sessions: its own PhysX, then Newton by the client's override (which counts last)."""
    physx = _make(cartpole)
    try:
        assert physx.unwrapped.metadata["physics"] == "ovphysx"
        a = _rollout(physx, 40)
    finally:
        physx.close()
    newton = _make(cartpole, task_kwargs={"overrides": ["physics=newton_mjwarp"]})
    try:
        assert newton.unwrapped.metadata["physics"] == "newton"
        b = _rollout(newton, 40)
    finally:
        newton.close()
    np.testing.assert_allclose(a[0], b[0], atol=1e-5)  # the same seeded start
    assert np.abs(a - b).max() > 1e-4  # two engines, not one
    scale = np.abs(b[1:]).max(axis=0)
    assert np.all(np.abs(a - b).max(axis=0) <= 0.1 * scale + 1e-3), (np.abs(a - b).max(axis=0), scale)


def test_a_client_picks_physx_on_a_newton_server(isaaclab_python: str, isaaclab_assets: Path) -> None:
    with _server(isaaclab_python, isaaclab_assets, "Isaac-Cartpole-Direct") as server:
        env = _make(server, task_kwargs={"overrides": ["physics=ovphysx"]})
        try:
            assert env.unwrapped.metadata["physics"] == "ovphysx"
            assert _rollout(env, 5).shape == (6, 4)
        finally:
            env.close()
        env = _make(server)
        try:
            assert env.unwrapped.metadata["physics"] == "newton"
        finally:
            env.close()


def test_physics_names_are_checked_with_what_the_task_and_venv_offer(cartpole: LocalServer) -> None:
    with pytest.raises(BadRequestError, match="physics=bogus") as info:
        _make(cartpole, task_kwargs={"overrides": ["physics=bogus"]})
    text = str(info.value)
    assert "it declares [" in text and "'ovphysx'" in text and "'newton_mjwarp'" in text and "this venv runs" in text
    assert "'default'" not in text  # Isaac Lab's alias of the task's own choice is not a name to pick
    with pytest.raises(BadRequestError, match="isaacsim_physx") as info:
        _make(cartpole, task_kwargs={"overrides": ["physics=isaacsim_physx"]})
    assert "cannot run it" in str(info.value) and "isaacsim" in str(info.value)
    env = _make(cartpole)  # the server serves on
    try:
        env.reset(seed=0)
    finally:
        env.close()


def test_kit_physx_is_refused_before_ready(isaaclab_python: str, isaaclab_assets: Path) -> None:
    with pytest.raises(LaunchError) as info:
        with _server(isaaclab_python, isaaclab_assets, "Isaac-Cartpole", "--override", "physics=isaacsim_physx"):
            pass
    assert "isaacsim_physx" in str(info.value) and "cannot run it" in str(info.value)


def test_doctor_lists_the_physics_engines_the_venv_runs(isaaclab_python: str) -> None:
    out = in_venv(isaaclab_python, "gym_remote", "doctor", timeout=300)
    assert "physics" in out.stdout and "ovphysx" in out.stdout and "newton_mjwarp" in out.stdout, out.stdout


# ----------------------------------------------------------------------------- camera task


@pytest.fixture(scope="module")
def camera(isaaclab_python: str, isaaclab_assets: Path) -> Iterator[LocalServer]:
    """Isaac Lab's Cartpole camera task, 64x64 pixels, on PhysX, rendered by Isaac Lab's kit-less Warp renderer."""
    with _server(
        isaaclab_python,
        isaaclab_assets,
        CAMERA_TASK,
        "--override",
        "physics=ovphysx",
        "--override",
        "env.scene.tiled_camera.width=64",
        "--override",
        "env.scene.tiled_camera.height=64",
        num_envs=16,
    ) as server:
        yield server


def test_camera_images_reach_the_client_with_the_tasks_shapes_and_change(camera: LocalServer) -> None:
    env = _make(camera)
    try:
        space = env.observation_space
        assert isinstance(space, gym.spaces.Box) and space.shape == (6, 64, 64) and space.dtype == np.float32
        obs, _ = env.reset(seed=0)
        assert obs.shape == (6, 64, 64) and obs.dtype == np.float32 and space.contains(obs)
        frames = [obs]
        for _ in range(6):
            obs, *_ = env.step(np.array([1.0], np.float32))
            frames.append(obs)
        assert obs.std() > 0.0  # a picture, not a blank
        moved = [np.abs(b[3:] - a[3:]).max() for a, b in itertools.pairwise(frames)]
        assert max(moved) > 0.01, moved  # the pushed cart moves in the picture
        # two stacked frames: the newer channels of one step are the older of the next
        np.testing.assert_allclose(frames[-1][:3], frames[-2][3:], atol=1e-6)
    finally:
        env.close()


def test_camera_vector_env_of_16_carries_every_sub_envs_pictures(camera: LocalServer) -> None:
    venv = _make_vec(camera, 16)
    try:
        assert venv.observation_space.shape == (16, 6, 64, 64)
        obs, _ = venv.reset(seed=1)
        for _ in range(3):
            obs, reward, *_ = venv.step(np.linspace(-1, 1, 16, dtype=np.float32)[:, None])
        assert obs.shape == (16, 6, 64, 64) and obs.dtype == np.float32 and reward.shape == (16,)
        assert np.abs(obs[0] - obs[15]).max() > 0.01  # pushed apart: sub-envs' pictures differ
    finally:
        venv.close()


# ------------------------------------------------------------------------ the one command


@pytest.mark.timeout(900)
def test_the_demo_runs_the_seeds_task_on_physx_end_to_end(isaaclab_python: str, tmp_path: Path) -> None:
    """``gym-remote demo --backend isaaclab --override physics=ovphysx``: a local PhysX server from the
    Isaac Lab venv, the expert stacks (Isaac Lab's own stack_1), the states are replayed into a video here."""
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    cmd = [sys.executable, "-m", "gym_remote", "demo", "--backend", "isaaclab", "--override", "physics=ovphysx"]
    cmd += ["--episodes", "1", "--width", "320", "--height", "240", "-o", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=850, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "(ovphysx physics)" in out.stdout and "physics            ovphysx" in out.stdout, out.stdout
    assert "stacked (stack_1)  1/1 episodes" in out.stdout, out.stdout
    assert (tmp_path / "isaaclab_stack_cube.mp4").stat().st_size > 10_000
    refused = subprocess.run(
        [sys.executable, "-m", "gym_remote", "demo", "--override", "physics=ovphysx"], capture_output=True, text=True
    )
    assert refused.returncode != 0 and "--backend isaaclab" in refused.stderr


# -------------------------------------------------------- the pinned-memory fix, narrowly


PINNED_PROBE = """
import sys
import warp as wp
from gym_remote.backends.isaaclab.physics import unpin_host_buffers_without_cuda
from gym_remote.errors import ConfigError

cpu = wp.get_device("cpu")
if sys.argv[1] == "reshaped":  # a Warp whose CPU device no longer has the allocator pair
    del cpu.pinned_allocator
    try:
        unpin_host_buffers_without_cuda()
        print("NOT REFUSED")
    except ConfigError as exc:
        print("REFUSED", exc)
    sys.exit()
try:
    wp.zeros(4, dtype=wp.float32, device="cpu", pinned=True)
    print("PINNED BEFORE: ok")
except RuntimeError as exc:
    print("PINNED BEFORE: failed", exc)
print("SWAPPED", unpin_host_buffers_without_cuda(), cpu.pinned_allocator is cpu.default_allocator)
print("PINNED AFTER:", wp.zeros(4, dtype=wp.float32, device="cpu", pinned=True).numpy().tolist())
"""


def test_pinned_host_buffers_work_without_cuda_only_through_the_swap(isaaclab_python: str) -> None:
    """Without a CUDA driver Warp cannot pin host memory (ovphysx's staging buffers); the backend's swap
    makes that one request work, and refuses, naming Warp's version, when Warp no longer has the shape."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [isaaclab_python, "-c", PINNED_PROBE, "plain"], capture_output=True, text=True, timeout=300, env=env
    )
    assert "PINNED BEFORE: failed" in out.stdout, out.stdout + out.stderr[-2000:]  # this machine has no CUDA
    assert "SWAPPED True True" in out.stdout and "PINNED AFTER: [0.0, 0.0, 0.0, 0.0]" in out.stdout, out.stdout
    out = subprocess.run(
        [isaaclab_python, "-c", PINNED_PROBE, "reshaped"], capture_output=True, text=True, timeout=300, env=env
    )
    assert "REFUSED Warp 1." in out.stdout and "pinned_allocator" in out.stdout, out.stdout + out.stderr[-2000:]
