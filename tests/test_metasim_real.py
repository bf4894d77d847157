"""The RoboVerse backend against the REAL MetaSim (vendored commit dd8ff06, its MuJoCo handler, CPU).

The server runs in MetaSim's own venv, built by ``bash scripts/build_metasim_venv.sh`` (the test
command builds it first), as a real ``python -m gym_remote serve --backend roboverse`` subprocess on
127.0.0.1; the client is this interpreter. An absent venv is a failure naming that command, never a
skip. The IsaacSim handler cannot run here: ``tests/test_isaac_backends.py`` covers it with a stand-in.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gym_remote.client_session import ConnectOptions
from gym_remote.env import RemoteEnv
from gym_remote.errors import BadRequestError
from gym_remote.local import LocalServer
from gym_remote.vector import RemoteVectorEnv
from gym_remote_apps.venvs import SERVER_VENVS, venv_root

pytestmark = pytest.mark.metasim

ROOT = Path(__file__).resolve().parent.parent
FOLDER, BUILD = SERVER_VENVS["metasim"]
VENV = venv_root() / FOLDER
DATA = VENV / "data"
TASK = "stack_cube"
#: Flat state layout of MetaSim's stack_cube: franka (13 + 9 + 9), then cube and base (13 each).
JOINTS = slice(13, 22)  # franka's joint positions, sorted by name: finger1, finger2, joint1..7
JOINT_VEL = slice(22, 31)
CUBE, BASE = 31, 44
SORTED_JOINTS = ["panda_finger_joint1", "panda_finger_joint2", *(f"panda_joint{i}" for i in range(1, 8))]


@pytest.fixture(scope="module")
def metasim_python() -> str:
    """The MetaSim venv's python, serving this checkout (else FAIL with the command that builds it)."""
    python = VENV / "bin" / "python"
    if not python.exists() or not (DATA / "roboverse_data").is_dir():
        pytest.fail(f"the MetaSim venv is missing at {VENV}; build it with `{BUILD}` (the test command runs it first)")
    probe = subprocess.run(
        [str(python), "-c", "import metasim, gym_remote; print(gym_remote.__file__)"],
        capture_output=True,
        text=True,
        cwd=DATA,
        timeout=300,
    )
    lines = probe.stdout.strip().splitlines()
    served = Path(lines[-1]).resolve().parent if lines else None
    if probe.returncode != 0 or served != ROOT / "gym_remote":
        pytest.fail(
            f"the MetaSim venv at {VENV} does not serve this checkout (gym_remote from {served}; "
            f"{probe.stderr.strip()[-500:]}); rerun `{BUILD}`"
        )
    return str(python)


@pytest.fixture(scope="module")
def server(metasim_python: str) -> Iterator[LocalServer]:
    """``gym-remote serve --backend roboverse --task stack_cube`` on MetaSim's MuJoCo handler."""
    settings = {"simulator": "mujoco", "data_dir": str(DATA)}
    with LocalServer("roboverse", TASK, settings, python=metasim_python, startup_timeout=240) as srv:
        yield srv


#: A simulator step may take seconds on a loaded machine.
SLOW = ConnectOptions(timeout=60.0)


def remote(server: LocalServer, **kwargs) -> RemoteEnv:
    return RemoteEnv(server.local_host, server.local_port, task=TASK, options=SLOW, **kwargs)


def run_in_venv(python: str, code: str) -> dict:
    """Run ``code`` in the MetaSim venv (in its data folder); it prints one JSON line last."""
    out = subprocess.run([python, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=DATA, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------ basics


def test_spaces_reset_step_and_state(server: LocalServer) -> None:
    env = remote(server, with_state=True)
    try:
        schema = env.state_schema
        assert [(e.name, e.kind) for e in schema.entities] == [
            ("franka", "articulation"),
            ("cube", "rigid"),
            ("base", "rigid"),
        ]
        assert list(schema.entities[0].joints) == SORTED_JOINTS and schema.size == 57
        assert env.observation_space.shape == (57,) and env.action_space.shape == (9,)
        np.testing.assert_allclose(env.action_space.low[[0, 5]], [0.0, -3.0718], atol=1e-6)  # finger1, joint4
        meta = env.metadata
        assert meta["simulator"] == "mujoco" and meta["action_path"] == "per_joint"  # the tensor path is wrong
        assert meta["start_states"] == 100 and meta["render_fps"] == 20  # 25 x 2 ms a step
        obs, info = env.reset(seed=0)
        assert obs.shape == (57,) and obs.dtype == np.float32
        np.testing.assert_allclose(obs, env.get_state(), atol=1e-6)
        np.testing.assert_allclose(env.last_state, env.get_state(), atol=1e-6)
        assert obs[CUBE + 2] == pytest.approx(0.02, abs=1e-3) and obs[BASE + 2] == pytest.approx(0.02, abs=1e-3)
        np.testing.assert_allclose(np.linalg.norm(obs[CUBE + 3 : CUBE + 7]), 1.0, atol=1e-5)  # w-first unit quat
        obs, reward, terminated, truncated, info = env.step(obs[JOINTS])
        assert obs.shape == (57,) and type(reward) is float and not terminated and not truncated
        assert "privileged_observation" not in info  # the TensorState again: it travels as the state
        np.testing.assert_allclose(env.last_state, obs, atol=1e-6)  # attached to the same reply
    finally:
        env.close()


def test_actions_reach_the_joints_they_name(server: LocalServer) -> None:
    """Holding the reset pose keeps every joint within 1e-3 rad (the tensor path moved it 2.6 rad), and
    a target for panda_joint1 alone moves panda_joint1 alone."""
    env = remote(server)
    try:
        obs, _ = env.reset(seed=3)
        pose = obs[JOINTS].copy()
        for _ in range(40):
            obs, *_ = env.step(pose)
            assert np.abs(obs[JOINTS] - pose).max() < 1e-3
        target = pose.copy()
        j1 = SORTED_JOINTS.index("panda_joint1")
        target[j1] += 0.3
        for _ in range(40):
            obs, *_ = env.step(target)
        moved = np.abs(obs[JOINTS] - pose)
        assert moved[j1] == pytest.approx(0.3, abs=5e-3)
        assert np.delete(moved, j1).max() < 1e-3
    finally:
        env.close()


def test_reset_seed_draws_the_start_reproducibly(server: LocalServer) -> None:
    env = remote(server)
    try:
        first, _ = env.reset(seed=5)
        env.step(first[JOINTS])
        again, _ = env.reset(seed=5)
        other, info = env.reset(seed=6)
        np.testing.assert_array_equal(first, again)  # same seed, same start
        assert np.abs(other[CUBE : CUBE + 3] - first[CUBE : CUBE + 3]).max() > 1e-3  # another start
        assert "seed_ignored" not in info
        starts = {tuple(np.round(env.reset()[0][CUBE : CUBE + 2], 4)) for _ in range(6)}
        assert len(starts) > 1  # unseeded resets go on drawing from the generator
    finally:
        env.close()


def test_set_state_restores_poses_and_the_checker_sees_them(server: LocalServer) -> None:
    env = remote(server)
    try:
        env.reset(seed=1)
        state = np.array(env.get_state())
        state[JOINTS.start + 2] += 0.2  # panda_joint1
        # Resting on the base (MetaSim's checker box is fixed where the base was at reset): success.
        state[CUBE : CUBE + 3] = state[BASE : BASE + 3] + np.array([0.0, 0.0, 0.04])
        state[CUBE + 3 : CUBE + 7] = [1.0, 0.0, 0.0, 0.0]
        moving = state.copy()
        moving[JOINT_VEL.start] = 0.5  # the MuJoCo handler zeroes velocities: the client is told
        assert "franka/joint_vel" in env.set_state(moving)["not_restored"]
        env.set_state(state)
        got = env.get_state()
        np.testing.assert_allclose(got[:22], state[:22], atol=1e-5)  # franka pose and joints
        np.testing.assert_allclose(got[CUBE : CUBE + 7], state[CUBE : CUBE + 7], atol=1e-5)
        np.testing.assert_allclose(got[BASE : BASE + 7], state[BASE : BASE + 7], atol=1e-5)
        _, _, terminated, truncated, _ = env.step(state[JOINTS])
        assert terminated and not truncated
    finally:
        env.close()


def test_set_state_reports_what_the_mujoco_handler_drops(metasim_python: str) -> None:
    """Velocities do not take on MuJoCo (it zeroes them); ``set_state`` says so instead of pretending."""
    result = run_in_venv(
        metasim_python,
        f"""
        import json
        import numpy as np
        from gym_remote.backends.roboverse import roboverse_factory
        from gym_remote.session import SessionOptions
        factory = roboverse_factory({TASK!r}, {{"simulator": "mujoco", "data_dir": {str(DATA)!r}}})
        session = factory(SessionOptions())
        session.reset(seed=0, options=None)
        state = session.get_state().copy()
        same = session.set_state(state)
        state[{JOINT_VEL.start}] = 0.5
        state[{CUBE + 7}] = 0.1
        state[{CUBE}] += 0.05
        moved = session.set_state(state)
        got = session.get_state()
        session.close()
        print(json.dumps({{"same": same, "moved": moved, "cube_x": [float(state[{CUBE}]), float(got[{CUBE}])],
                          "vel": [float(got[{JOINT_VEL.start}]), float(got[{CUBE + 7}])]}}))
        """,
    )
    assert result["same"] == {"not_restored": []}
    assert result["moved"] == {"not_restored": ["franka/joint_vel", "cube/root_vel"]}
    assert result["cube_x"][1] == pytest.approx(result["cube_x"][0], abs=1e-5)
    assert result["vel"] == [0.0, 0.0]


# ---------------------------------------------------------------------- autoreset and limits


def test_single_env_time_limit(server: LocalServer) -> None:
    env = remote(server, max_episode_steps=3)
    try:
        obs, _ = env.reset(seed=0)
        flags = [env.step(obs[JOINTS])[3] for _ in range(3)]
        assert flags == [False, False, True]
    finally:
        env.close()


@pytest.mark.parametrize("mode", ["next_step", "same_step", "disabled"])
def test_autoreset_modes(server: LocalServer, mode: str) -> None:
    venv = RemoteVectorEnv(
        1, server.local_host, server.local_port, task=TASK, autoreset_mode=mode, max_episode_steps=2, options=SLOW
    )
    try:
        start, _ = venv.reset(seed=0)
        target = start[:, JOINTS].copy()
        target[:, SORTED_JOINTS.index("panda_joint1")] += 0.4  # move away from the start pose
        venv.step(target)
        obs, reward, terminated, truncated, info = venv.step(target)
        assert truncated.tolist() == [True] and terminated.tolist() == [False]
        if mode == "next_step":
            assert np.abs(obs[0, JOINTS] - start[0, JOINTS]).max() > 0.05  # the final obs
            obs, reward, terminated, truncated, _ = venv.step(target)  # this step resets
            assert reward.tolist() == [0.0] and not terminated[0] and not truncated[0]
            np.testing.assert_allclose(obs[0, JOINTS], start[0, JOINTS], atol=1e-5)
        elif mode == "same_step":
            np.testing.assert_allclose(obs[0, JOINTS], start[0, JOINTS], atol=1e-5)  # already reset
            assert info["_final_obs"].tolist() == [True]
            assert np.abs(info["final_obs"][0][JOINTS] - start[0, JOINTS]).max() > 0.05
        else:
            with pytest.raises(BadRequestError, match="reset_mask"):
                venv.step(target)
            obs, _ = venv.reset(options={"reset_mask": np.array([True])})
            np.testing.assert_allclose(obs[0, JOINTS], start[0, JOINTS], atol=1e-5)
            venv.step(target)
    finally:
        venv.close()


# ------------------------------------------------------------------- sessions and bad input


def _one_step_travel(server: LocalServer, **task_kwargs) -> np.ndarray:
    """Joint travel in one step towards a far target: it grows with the scenario's decimation."""
    env = remote(server, task_kwargs=task_kwargs or None)
    try:
        obs, _ = env.reset(seed=2)
        target = obs[JOINTS].copy()
        target[SORTED_JOINTS.index("panda_joint1")] += 0.5
        after, *_ = env.step(target)
        return after[JOINTS] - obs[JOINTS]
    finally:
        env.close()


def test_task_kwargs_do_not_leak_into_later_sessions(server: LocalServer) -> None:
    default = _one_step_travel(server)
    short = _one_step_travel(server, decimation=2)
    assert np.abs(short).max() < 0.5 * np.abs(default).max()  # the keyword took effect
    np.testing.assert_array_equal(_one_step_travel(server), default)  # and did not stay


def test_bad_requests_get_clear_errors_and_the_server_keeps_serving(server: LocalServer) -> None:
    with pytest.raises(BadRequestError, match="'decimaton' \\(did you mean 'decimation'\\?\\)"):
        remote(server, task_kwargs={"decimaton": 5})
    with pytest.raises(BadRequestError, match="server settings"):
        remote(server, task_kwargs={"data_dir": "/"})
    # issue 22: a real ScenarioCfg field outside the allow-list (decimation, env_spacing) changes what the
    # server builds or renders: refused, naming the list and the flag that widens it
    with pytest.raises(BadRequestError, match=r"\['cameras'\] are not ones this server lets clients set.*allow-kwargs"):
        remote(server, task_kwargs={"cameras": []})
    with pytest.raises(BadRequestError, match="Unknown task"):
        RemoteEnv(server.local_host, server.local_port, task="no_such_task", options=SLOW)
    with pytest.raises(BadRequestError, match="holds one env"):
        RemoteVectorEnv(2, server.local_host, server.local_port, task=TASK, autoreset_mode="same_step")
    env = remote(server)
    try:
        obs, _ = env.reset(seed=0)
        with pytest.raises(ValueError, match="action"):
            env.step(np.zeros(8, np.float32))  # refused before it is sent
        env.step(obs[JOINTS])
        assert env.ping()["sessions"] == 1
    finally:
        env.close()
    assert server.alive


# --------------------------------------------------------- the original example's whole loop


def test_expert_stacks_and_the_replay_matches_metasim_state_by_state(server: LocalServer, tmp_path: Path) -> None:
    """The client-side expert stacks on real MetaSim; every recorded MetaSim state, replayed in the
    built-in Franka through ``configs/maps/roboverse_franka.yaml``, puts each joint within 1e-4 rad and
    the cube and base within 1e-4 m of MetaSim's values; the video's frames move.
    (``python -m gym_remote_apps.metasim_stack --episodes 10`` gives the 10-episode figure.)"""
    import imageio.v2 as imageio

    from gym_remote.replay import Replayer
    from gym_remote.tasks.stack_cube import ASSET_PATH
    from gym_remote_apps.metasim_stack import run_episodes

    video = tmp_path / "stack.mp4"
    result = run_episodes(server.local_host, server.local_port, 3, seed=0, video=video)
    assert result["successes"] == 3 and result["rested"] == 3, result["steps"]
    traj = result["trajectory"]
    assert traj.num_episodes == 3 and len(traj) > 3 * 60  # one state per reset and per step

    with Replayer(ASSET_PATH, traj.schema, "roboverse_franka") as replayer:
        data = replayer.data
        joint_cols = {name: JOINTS.start + i for i, name in enumerate(SORTED_JOINTS)}
        for state in traj.states:
            replayer.set_state(state)
            for name, col in joint_cols.items():
                assert abs(float(data.joint(name).qpos[0]) - state[col]) < 1e-4, name
            for body, start in (("cube", CUBE), ("base", BASE)):
                np.testing.assert_allclose(data.body(body).xpos, state[start : start + 3], atol=1e-4)
                quat, want = data.body(body).xquat, state[start + 3 : start + 7]
                assert min(np.abs(quat - want).max(), np.abs(quat + want).max()) < 1e-4
            np.testing.assert_allclose(data.body("franka").xpos, state[:3], atol=1e-4)

    frames = [np.asarray(f, dtype=np.float32) for f in imageio.get_reader(video)]
    assert len(frames) == result["frames"] == int((traj.episode == 0).sum())
    diffs = [np.abs(b - a).mean() for a, b in itertools.pairwise(frames)]
    assert np.abs(frames[-1] - frames[0]).mean() > 1.0 and sum(d > 0.1 for d in diffs) > len(diffs) // 2


# ------------------------------------------------------------------------------------- SB3


def test_sb3_gets_metasims_terminal_observation_and_env_is_wrapped(server: LocalServer) -> None:
    """README: MetaSim ``BaseTaskEnv`` tasks give SB3 the real terminal observation (unlike Isaac Lab);
    ``env_is_wrapped`` is answered from the batched env's own wrappers; one simulator per server, so
    a second session is "server busy" until the first closes."""
    from stable_baselines3.common.monitor import Monitor

    from gym_remote.errors import ServerBusyError
    from gym_remote.sb3 import RemoteVecEnv

    venv = RemoteVectorEnv(
        1,
        server.local_host,
        server.local_port,
        task=TASK,
        autoreset_mode="same_step",
        max_episode_steps=2,
        options=SLOW,
    )
    vec = RemoteVecEnv(venv)
    try:
        with pytest.raises(ServerBusyError):
            remote(server)
        assert vec.env_is_wrapped(Monitor) == [False]
        vec.seed(0)
        start = vec.reset()
        target = start[:, JOINTS].copy()
        target[:, SORTED_JOINTS.index("panda_joint1")] += 0.4
        vec.step(target)
        obs, _, dones, infos = vec.step(target)
        assert dones.tolist() == [True] and infos[0]["TimeLimit.truncated"] is True
        final = infos[0]["terminal_observation"]
        assert final.shape == start.shape[1:] and np.abs(final[JOINTS] - start[0, JOINTS]).max() > 0.05
        np.testing.assert_allclose(obs[0, JOINTS], start[0, JOINTS], atol=1e-5)  # already the next start
    finally:
        vec.close()
    remote(server).close()  # the server is free again


# ----------------------------------------------------------------------- what the operator gave


def test_the_mujoco_task_config_serves_250_step_episodes(metasim_python: str) -> None:
    """``serve --config roboverse_stack_cube_mujoco``, as README says to start it (its data_dir has a ``~``)."""
    with LocalServer(
        "roboverse",
        None,
        extra_args=["--config", "roboverse_stack_cube_mujoco"],
        python=metasim_python,
        startup_timeout=240,
    ) as srv:
        import gymnasium as gym

        import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)

        env = gym.make("Remote-IsaacSim-v0", host=srv.local_host, port=srv.local_port, timeout=60.0)
        try:
            assert env.unwrapped.task == TASK and env.spec.max_episode_steps == 250
            env.reset(seed=0)
        finally:
            env.close()


@pytest.mark.parametrize(
    ("task", "settings", "named"),
    [
        (TASK, {"data_dir": "/tmp"}, "python -m gym_remote.backends.roboverse.data"),  # no roboverse_data/ there
        ("stack_cubee", {}, "stack_cubee"),
        (TASK, {"decimationn": 3}, "decimationn"),  # a scenario key stack_cube's scenario lacks
    ],
)
def test_what_the_server_was_told_is_checked_before_ready(
    metasim_python: str, task: str, settings: dict, named: str
) -> None:
    from gym_remote.errors import LaunchError

    with pytest.raises(LaunchError) as info:
        LocalServer(
            "roboverse",
            task,
            {"simulator": "mujoco", "data_dir": str(DATA), **settings},
            python=metasim_python,
            startup_timeout=240,
        )
    assert named in str(info.value) + str(getattr(info.value, "log_tail", ""))


def test_doctor_in_the_metasim_venv_reports_metasim(metasim_python: str) -> None:
    out = subprocess.run(
        [metasim_python, "-m", "gym_remote", "doctor"], capture_output=True, text=True, cwd=DATA, timeout=300
    )
    lines = [line for line in out.stdout.splitlines() if line.strip().startswith("roboverse ")]
    assert lines and " ok " in lines[0], out.stdout[-2000:]
