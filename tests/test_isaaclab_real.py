"""The ``isaaclab`` backend against the REAL Isaac Lab 3.0.0 (Newton physics on Warp's CPU device).

As users run it: the server is ``python -m gym_remote serve --backend isaaclab`` in the Isaac Lab
venv that ``scripts/build_isaaclab_venv.sh`` builds, the client is this project's Python. Assets come
from a local mirror written by ``gym_remote.backends.isaaclab.assets`` (NVIDIA's asset server is not
reachable here). When the venv is missing the tests fail and name the command that builds it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)
from gym_remote.errors import BadRequestError, LaunchError
from gym_remote.local import LocalServer
from gym_remote.protocol import READY_PREFIX
from tests.conftest import in_venv

pytestmark = pytest.mark.isaaclab

ROOT = Path(__file__).resolve().parent.parent
CONNECT = 300.0  # seconds: a cold Warp kernel cache compiles for about 100 s on the first env


@pytest.fixture(scope="module")
def python(isaaclab_python: str) -> str:
    return isaaclab_python


@pytest.fixture(scope="module")
def asset_root(isaaclab_assets: Path) -> str:
    assert (isaaclab_assets / "Isaac/IsaacLab/Robots/Classic/Cartpole/cartpole.usd").is_file()
    return str(isaaclab_assets)


def _server(python: str, asset_root: str, task: str, **kwargs: object) -> LocalServer:
    return LocalServer(
        "isaaclab",
        task,
        {"asset_root": asset_root, **kwargs},
        python=python,
        startup_timeout=CONNECT,
        env={"PYTHONPATH": str(ROOT)},
    )


@pytest.fixture(scope="module")
def cartpole(python: str, asset_root: str) -> Iterator[LocalServer]:
    with _server(python, asset_root, "Isaac-Cartpole") as server:
        yield server


@pytest.fixture(scope="module")
def direct(python: str, asset_root: str) -> Iterator[LocalServer]:
    with _server(python, asset_root, "Isaac-Cartpole-Direct") as server:
        yield server


def _make(server: LocalServer, **kwargs: object) -> gym.Env:
    return gym.make(
        "Remote-IsaacSim-v0", host=server.local_host, port=server.local_port, connect_timeout=CONNECT, **kwargs
    )


def _make_vec(server: LocalServer, n: int, **kwargs: object) -> gym.vector.VectorEnv:
    kwargs.setdefault("autoreset_mode", "same_step")
    return gym.make_vec(
        "Remote-IsaacSim-v0",
        num_envs=n,
        host=server.local_host,
        port=server.local_port,
        connect_timeout=CONNECT,
        **kwargs,
    )


# ------------------------------------------------------------------------------- single env


@pytest.mark.parametrize("which", ["cartpole", "direct"])
def test_single_env_passes_check_env_and_seeds_reproducibly(which: str, request: pytest.FixtureRequest) -> None:
    server = request.getfixturevalue(which)
    env = _make(server)
    try:
        assert env.observation_space == gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
        assert env.action_space == gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
        meta = env.unwrapped.metadata
        assert meta["isaaclab_version"] == "3.0.0" and meta["native_quat_order"] == "xyzw"
        assert env.spec.max_episode_steps == 300  # Isaac Lab's own limit: 5 s at 60 steps/s
        # check_env's close check builds a second env from the spec: one Isaac Lab env per process.
        check_env(env.unwrapped, skip_render_check=True, skip_close_check=True)
        first, _ = env.reset(seed=7)
        second, _ = env.reset(seed=7)
        other, _ = env.reset(seed=8)
        np.testing.assert_array_equal(first, second)
        assert not np.array_equal(first, other)
        obs, reward, terminated, truncated, info = env.step(np.array([0.5], np.float32))
        assert obs.dtype == np.float32 and obs.shape == (4,)
        assert isinstance(reward, float) and isinstance(terminated, bool) and isinstance(truncated, bool)
        assert "log" in info or info == {} or "reset_in_step" in info
    finally:
        env.close()


def test_state_schema_and_round_trip(cartpole: LocalServer) -> None:
    env = _make(cartpole, with_state=True)
    try:
        remote = env.unwrapped
        schema = remote.state_schema
        assert [(e.name, e.kind, e.joints) for e in schema.entities] == [
            ("robot", "articulation", ("slider_to_cart", "cart_to_pole"))
        ]
        obs, _ = env.reset(seed=1)
        state = np.array(remote.last_state)
        # Isaac-Cartpole observes joint_pos_rel and joint_vel_rel (default pose 0): the state's joints.
        np.testing.assert_allclose(state[13:15], obs[:2], atol=1e-6)
        np.testing.assert_allclose(state[15:17], obs[2:], atol=1e-6)
        np.testing.assert_allclose(state[:7], [0, 0, 2, 1, 0, 0, 0], atol=1e-6)  # env-relative, w-first
        for _ in range(5):
            env.step(np.array([1.0], np.float32))
        saved = np.array(remote.get_state())
        target = saved.copy()
        target[13:17] = [0.25, -0.3, 0.0, 0.0]
        remote.set_state(target)
        np.testing.assert_allclose(remote.get_state()[13:17], target[13:17], atol=1e-5)
        obs, *_ = env.step(np.array([0.0], np.float32))
        assert abs(obs[0] - 0.25) < 0.05 and abs(obs[1] + 0.3) < 0.05  # the episode went on from there
    finally:
        env.close()


def test_episode_limit_from_the_client(cartpole: LocalServer) -> None:
    env = _make(cartpole, max_episode_steps=10)
    try:
        assert env.spec.max_episode_steps == 10
        env.reset(seed=0)
        flags = [env.step(np.zeros(1, np.float32))[3] for _ in range(10)]
        assert flags == [False] * 9 + [True]  # zero force: only the time limit ends it
    finally:
        env.close()


# ------------------------------------------------------------------------------- vector env


def test_vector_64_same_step_matches_single_steps_and_seeds(cartpole: LocalServer) -> None:
    venv = _make_vec(cartpole, 64, with_state=True)
    try:
        assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
        assert venv.single_observation_space.shape == (4,) and venv.observation_space.shape == (64, 4)
        obs, _ = venv.reset(seed=3)
        again, _ = venv.reset(seed=3)
        np.testing.assert_array_equal(obs, again)
        assert len({tuple(row) for row in obs.round(6)}) == 64  # sub-envs start apart
        actions = np.full((64, 1), 0.8, np.float32)
        done_seen = False
        for _ in range(80):  # a strong push drives carts out of bounds: terminations reset in step
            obs, reward, terminated, truncated, info = venv.step(actions)
            assert reward.dtype == np.float64 and terminated.dtype == bool and reward.shape == (64,)
            if terminated.any():
                done_seen = True
                mask = info["_reset_in_step"]
                np.testing.assert_array_equal(mask, terminated | truncated)
                # a reset row is a fresh start: the cart is back within Isaac Lab's reset range (+-1 m)
                assert np.all(np.abs(obs[mask, 0]) <= 1.0 + 1e-4)
                break
        assert done_seen
        assert "final_obs" not in info  # Isaac Lab keeps no final observation: none is invented
    finally:
        venv.close()


@pytest.mark.parametrize("mode", ["next_step", "disabled"])
def test_unsupported_autoreset_modes_are_refused_with_the_reason(cartpole: LocalServer, mode: str) -> None:
    with pytest.raises(BadRequestError, match="same_step") as info:
        _make_vec(cartpole, 4, autoreset_mode=mode)
    assert "keeps no final observation" in str(info.value)


def test_reset_mask_resets_only_the_masked_sub_envs(cartpole: LocalServer) -> None:
    venv = _make_vec(cartpole, 8)
    try:
        venv.reset(seed=0)
        for _ in range(5):
            before, *_ = venv.step(np.full((8, 1), 0.3, np.float32))
        mask = np.zeros(8, bool)
        mask[[1, 6]] = True
        after, _ = venv.reset(options={"reset_mask": mask})
        np.testing.assert_array_equal(after[~mask], before[~mask])
        assert not np.allclose(after[mask], before[mask])
    finally:
        venv.close()


def test_direct_task_refuses_reset_mask_before_anything_runs(direct: LocalServer) -> None:
    venv = _make_vec(direct, 4)
    try:
        _obs, _ = venv.reset(seed=0)
        with pytest.raises(BadRequestError, match="DirectRLEnv"):
            venv.reset(options={"reset_mask": np.array([True, False, False, False])})
        again, *_ = venv.step(np.zeros((4, 1), np.float32))  # the session is still fine
        assert again.shape == (4, 4)
    finally:
        venv.close()


def test_direct_task_ends_episodes_at_written_lengths(direct: LocalServer) -> None:
    """A DirectRLEnv refuses partial resets, but its time-out reads the same episode_length_buf: written
    counts end its episodes inside its own step (rsl_rl's init_at_random_ep_len, remotely)."""
    venv = _make_vec(direct, 4, task_kwargs={"episode_length_s": 0.25})
    zero = np.zeros((4, 1), np.float32)
    try:
        assert "set_episode_lengths" in venv.unwrapped.remote_methods
        venv.reset(seed=0)
        natural = 0  # the task's own episode length, in steps
        for t in range(1, 40):
            _, _, terminated, truncated, _ = venv.step(zero)
            assert not terminated.any()
            if truncated.any():
                assert truncated.all()
                natural = t
                break
        assert natural > 8
        written = [0, 3, 7, natural - 1]
        venv.unwrapped.set_episode_lengths(np.array(written))
        ends: dict[int, int] = {}
        for t in range(1, natural + 1):
            _, _, terminated, truncated, _ = venv.step(zero)
            assert not terminated.any()
            for i in np.flatnonzero(truncated).tolist():
                ends.setdefault(i, t)
        assert ends == {i: natural - w for i, w in enumerate(written)}, (natural, ends)
    finally:
        venv.close()


# ------------------------------------------------------------------------- bad input, overrides


def test_bad_ids_and_kwargs_get_clear_errors_and_the_server_keeps_serving(cartpole: LocalServer) -> None:
    with pytest.raises(BadRequestError, match="Did you mean .Isaac-Cartpole"):
        _make(cartpole, task="Isaac-Cartpol")
    with pytest.raises(BadRequestError, match="no 'episode_lenght_s'"):
        _make(cartpole, task_kwargs={"episode_lenght_s": 2.0})
    with pytest.raises(BadRequestError, match="server settings"):
        _make(cartpole, task_kwargs={"asset_root": "/"})
    with pytest.raises(BadRequestError, match="overrides"):
        _make(cartpole, task_kwargs={"overrides": "physics=newton_mjwarp"})  # a bare string, not a list
    with pytest.raises(BadRequestError, match="render"):
        _make(cartpole, render_mode="rgb_array")
    env = _make(cartpole, task="Isaac-Cartpole-v0", task_kwargs={"overrides": ["physics=newton_mjwarp"]})
    try:  # the 2.x form of the id resolves; Isaac Lab's own Hydra override passes through
        assert env.unwrapped.task == "Isaac-Cartpole"
        env.reset(seed=0)
    finally:
        env.close()


def test_a_task_that_needs_kit_is_refused_in_a_kit_less_server(cartpole: LocalServer) -> None:
    """The server started kit-less (Newton Cartpole); a client's 2.x id resolves to 3.x's
    IsaacContrib-Lift-Cube-Franka, whose PhysX scene needs Isaac Sim's Kit: refused with the reason."""
    with pytest.raises(BadRequestError, match=r"kit-less") as info:
        _make(cartpole, task="Isaac-Lift-Cube-Franka-v0")
    assert "IsaacContrib-Lift-Cube-Franka" in str(info.value) or "Kit" in str(info.value)
    env = _make(cartpole)  # and the server serves on
    env.reset(seed=0)
    env.close()


def test_server_refuses_a_bad_task_before_ready(python: str, asset_root: str) -> None:
    started = time.monotonic()
    with pytest.raises(LaunchError) as info:
        _server(python, asset_root, "Isaac-Cartpoel")
    assert "Isaac-Cartpole" in str(info.value) + str(getattr(info.value, "log_tail", ""))
    assert time.monotonic() - started < 120


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"overrides": ["physics=nosuchphysics"]}, "nosuchphysics"),  # Isaac Lab's own Hydra refusal
        ({"episode_lenght_s": 1.0}, "episode_lenght_s"),  # a cfg attribute the task does not have
        ({"asset_root": "/nonexistent/assets"}, "is not a folder"),
    ],
)
def test_what_the_server_was_told_is_checked_before_ready(
    python: str, asset_root: str, kwargs: dict, named: str
) -> None:
    """README: everything the server was told (the id, the overrides, the cfg attributes, its
    settings) is checked before READY, so a launch fails at once with the reason."""
    with pytest.raises(LaunchError) as info:
        settings = dict(kwargs)
        _server(python, settings.pop("asset_root", asset_root), "Isaac-Cartpole", **settings)
    assert named in str(info.value) + str(getattr(info.value, "log_tail", ""))


def test_stdout_holds_only_the_ready_line(python: str, asset_root: str) -> None:
    """Launchers read stdout for READY: Isaac Lab's own [INFO] prints must go to stderr."""
    import json

    proc = subprocess.Popen(
        [
            python,
            "-m",
            "gym_remote",
            "serve",
            "--backend",
            "isaaclab",
            "--task",
            "Isaac-Cartpole",
            "--kwargs",
            json.dumps({"asset_root": asset_root}),
            "--address",
            "tcp://127.0.0.1:*",
            "--watch-pid",
            str(os.getpid()),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith(READY_PREFIX), line
        port = int(line.rsplit(":", 1)[1])
        env = gym.make("Remote-IsaacSim-v0", host="127.0.0.1", port=port, connect_timeout=CONNECT)
        env.reset(seed=0)
        env.step(np.zeros(1, np.float32))
        env.close()
        proc.terminate()
        rest, _ = proc.communicate(timeout=60)
        assert rest == "", rest[:500]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_offline_assets_tool_help(python: str) -> None:
    out = in_venv(python, "gym_remote.backends.isaaclab.assets", "--help", timeout=60)
    assert out.returncode == 0 and "asset_root" in out.stdout
    assert sys.executable != python  # the client side of these tests is not the server's venv


# ---------------------------------------------------------------------------- remote replay


def test_real_isaac_lab_states_replay_in_a_local_mujoco_cartpole(cartpole: LocalServer, tmp_path: Path) -> None:
    """The seed's main mode: the server sends states, this machine poses its own MuJoCo model."""
    from gym_remote.assets import ISAACLAB_CARTPOLE_XML
    from gym_remote.replay import MujocoReplayWrapper, load_trajectory

    env = MujocoReplayWrapper(
        _make(cartpole), model=ISAACLAB_CARTPOLE_XML, name_map="isaaclab_cartpole", width=160, height=120
    )
    try:
        observations = [env.reset(seed=2)[0]]
        for t in range(40):
            obs, *_ = env.step(np.array([0.8 * np.sin(t / 4)], np.float32))
            observations.append(obs)
        trajectory = env.trajectory()
        replayer = env.replayer
        model, data = replayer.model, replayer.data
        cols = [int(model.joint(name).qposadr[0]) for name in ("slider_to_cart", "cart_to_pole")]
        assert len(trajectory.states) == len(observations) == 41
        for state, obs in zip(trajectory.states, observations, strict=True):
            replayer.set_state(state)
            # Isaac Lab's own observation (joint_pos_rel, default pose 0) against the replayed model.
            np.testing.assert_allclose(data.qpos[cols], obs[:2], atol=1e-5)
        cart = [replayer.render(s) for s in trajectory.states[[0, -1]]]
        changed = np.abs(cart[0].astype(int) - cart[1]).max(axis=-1) > 40
        assert changed.sum() > 50, changed.sum()  # the frames move: cart and pole drawn elsewhere
        frames = env.save_video(tmp_path / "cartpole.mp4")
        assert frames == 41 and (tmp_path / "cartpole.mp4").stat().st_size > 1000
        env.save_trajectory(tmp_path / "cartpole.npz")
        np.testing.assert_array_equal(load_trajectory(tmp_path / "cartpole.npz").states, trajectory.states)
    finally:
        env.close()


def test_server_overrides_and_task_config_reach_isaac_lab(python: str, asset_root: str) -> None:
    """`serve --config isaaclab_cartpole --override env.episode_length_s=0.5`: Isaac Lab's own Hydra syntax."""
    server = LocalServer(
        "isaaclab",
        None,
        {"asset_root": asset_root},
        extra_args=["--config", "isaaclab_cartpole", "--override", "env.episode_length_s=0.5"],
        python=python,
        startup_timeout=CONNECT,
        env={"PYTHONPATH": str(ROOT)},
    )
    with server:
        env = _make(server)
        try:
            assert env.unwrapped.task == "Isaac-Cartpole"
            env.reset(seed=0)
            flags = [env.step(np.zeros(1, np.float32))[3] for _ in range(30)]
            assert flags == [False] * 29 + [True]  # 0.5 s at Isaac Lab's 1/60 s step: 30 steps
        finally:
            env.close()


def test_doctor_in_the_isaac_lab_venv_reports_a_kit_less_isaac_lab_3(python: str) -> None:
    out = in_venv(python, "gym_remote", "doctor", timeout=180)
    line = next(
        line for line in out.stdout.splitlines() if line.strip().startswith("isaaclab ") and "Isaac Lab" in line
    )
    assert " ok " in line and "3.0.0" in line and "xyzw" in line and "kit-less" in line, line
