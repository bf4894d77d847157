"""Local MuJoCo replay of a remote run: real server process, real rendering and video files."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

# MuJoCo fixes its GL backend at import: default to EGL on a display-less Linux box.
if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import imageio_ffmpeg
import numpy as np
import pytest

from gym_remote.env import RemoteEnv
from gym_remote.errors import StateError
from gym_remote.local import LocalServer
from gym_remote.replay import (
    MujocoReplayWrapper,
    Replayer,
    Trajectory,
    VideoError,
    configure_headless_gl,
    load_trajectory,
    replay,
)
from gym_remote.state import Entity, NameMap, StateSchema, convert_quat, state_from_dict, state_to_dict
from gym_remote.tasks.expert import StackCubeExpert
from gym_remote.tasks.stack_cube import ARM_JOINTS, ASSET_PATH, FINGER_JOINTS, StackCubeEnv

SEED = 7
STEPS = 12
W, H = 320, 240


def _decode(path: Path) -> tuple[tuple[int, int], list[np.ndarray]]:
    """(width, height) and RGB frames of a video, decoded by ffmpeg."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = reader.__next__()
    width, height = meta["size"]
    frames = [np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader]
    return (width, height), frames


@dataclass
class Run:
    server: LocalServer
    env: MujocoReplayWrapper
    actions: list[np.ndarray]
    qpos: list[np.ndarray]  # the same rollout in a local StackCubeEnv: qpos after reset and each step


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    """One recorded remote rollout (expert actions: the arm moves) and its local twin."""
    server = LocalServer("gymnasium", "gym_remote/StackCube-v0")
    env = MujocoReplayWrapper(RemoteEnv("127.0.0.1", server.local_port), width=W, height=H)
    local = StackCubeEnv()
    try:
        expert = StackCubeExpert()
        obs, _ = env.reset(seed=SEED)
        local.reset(seed=SEED)
        actions, qpos = [], [local.data.qpos.copy()]
        for _ in range(STEPS):
            action = expert.act(obs)
            obs, *_ = env.step(action)
            local.step(action)
            actions.append(action)
            qpos.append(local.data.qpos.copy())
        yield Run(server, env, actions, qpos)
    finally:
        local.close()
        env.close()
        server.close()


def test_replayed_qpos_equals_the_simulators_at_every_step(run: Run) -> None:
    traj = run.env.trajectory()
    assert len(traj) == STEPS + 1 and traj.states.shape == (STEPS + 1, run.env.replayer.schema.size)
    assert np.isnan(traj.actions[0]).all() and np.array_equal(traj.actions[1:], np.array(run.actions))
    assert traj.episode.tolist() == [0] * (STEPS + 1) and traj.task == "gym_remote/StackCube-v0"
    for state, qpos in zip(traj.states, run.qpos, strict=True):
        run.env.replayer.set_state(state)
        np.testing.assert_array_equal(run.env.replayer.data.qpos, qpos)  # same model: bit-exact
    np.testing.assert_array_equal(traj.states[-1], run.env.unwrapped.get_state())
    assert run.env.render_mode == "rgb_array" and run.env.metadata["render_fps"] == 25


def test_name_map_and_quaternion_order(run: Run) -> None:
    """A remote scene with other names and x-y-z-w quaternions replays to the same qpos."""
    traj = run.env.trajectory()
    renames = {"franka": "robot", "cube": "object", "base": "plate"}
    joints = tuple("shoulder" if j == "panda_joint1" else j for j in ARM_JOINTS + FINGER_JOINTS)
    schema = StateSchema((Entity("robot", "articulation", joints), Entity("object", "rigid"), Entity("plate", "rigid")))
    nested = state_to_dict(traj.schema, traj.states)
    robot = nested.pop("franka")
    for key in ("joint_pos", "joint_vel"):
        robot[key]["shoulder"] = robot[key].pop("panda_joint1")
    renamed = {renames[k]: v for k, v in nested.items()} | {"robot": robot}
    states = state_from_dict(schema, renamed)
    for name, start in schema.offsets().items():  # the remote sends x-y-z-w
        if name != "robot":
            states[:, start + 3 : start + 7] = convert_quat(states[:, start + 3 : start + 7], "wxyz", "xyzw")
    cube, obj = traj.schema.offsets()["cube"] + 3, schema.offsets()["object"] + 3
    np.testing.assert_array_equal(states[:, obj : obj + 4], np.roll(traj.states[:, cube : cube + 4], -1, axis=1))

    name_map = NameMap(
        entities={v: k for k, v in renames.items()},
        joints={"robot/shoulder": "panda_joint1"},
        quat_order="xyzw",
    )
    with Replayer(ASSET_PATH, schema, name_map) as replayer:
        for state, qpos in zip(states, run.qpos, strict=True):
            replayer.set_state(state)
            np.testing.assert_allclose(replayer.data.qpos, qpos, rtol=0, atol=1e-12)


def test_isaaclab_map_poses_the_builtin_model() -> None:
    joints = ARM_JOINTS + FINGER_JOINTS
    schema = StateSchema((Entity("robot", "articulation", joints), Entity("object", "rigid")))
    pose = {"root_pose": [0.5, 0.1, 0.03, 0.0, 0.0, 0.0, 1.0]}  # Isaac Lab 2.x: w-first
    state = state_from_dict(
        schema,
        {
            "robot": {"root_pose": [0, 0, 0, 1, 0, 0, 0], "joint_pos": dict.fromkeys(joints, 0.02)},
            "object": pose,
        },
    )
    with Replayer(ASSET_PATH, schema, "isaaclab_franka") as replayer:  # bare name: configs/maps/
        replayer.set_state(state)
        np.testing.assert_array_equal(replayer.data.joint("cube").qpos, pose["root_pose"])
        np.testing.assert_array_equal(replayer.data.joint("panda_joint4").qpos, [0.02])


def test_video_decodes_with_every_frame_and_shows_the_arm_moving(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "run.mp4"
    assert run.env.save_video(path, episode=0) == STEPS + 1
    size, frames = _decode(path)
    assert size == (W, H) and len(frames) == STEPS + 1
    moved = np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean()
    assert moved > 1.0, f"first and last frames barely differ ({moved:.2f})"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.mp4"]  # no temp file left behind
    # The live render() agrees with what was encoded (the codec is lossy: compare loosely).
    assert np.abs(run.env.render().astype(int) - frames[-1].astype(int)).mean() < 3.0


def test_trajectory_round_trips_and_replays(run: Run, tmp_path: Path) -> None:
    traj = run.env.trajectory()
    path = run.env.save_trajectory(tmp_path / "run.npz")
    back = load_trajectory(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]
    assert (back.schema, back.name_map, back.fps, back.task) == (
        traj.schema,
        traj.name_map,
        traj.fps,
        traj.task,
    )
    for key in ("states", "actions", "rewards", "terminated", "truncated", "episode"):
        np.testing.assert_array_equal(getattr(back, key), getattr(traj, key))
    assert replay(path, tmp_path / "replay.mp4", width=W, height=H) == STEPS + 1
    assert len(_decode(tmp_path / "replay.mp4")[1]) == STEPS + 1


def test_batched_states_render_the_chosen_sub_env(run: Run, tmp_path: Path) -> None:
    traj = run.env.trajectory()
    batched = Trajectory(
        traj.schema,
        np.stack([traj.states, traj.states[::-1]], axis=1),  # (T, 2, D): sub-env 1 runs backwards
        traj.actions,
        np.stack([traj.rewards] * 2, axis=1),
        np.stack([traj.terminated] * 2, axis=1),
        np.stack([traj.truncated] * 2, axis=1),
        traj.episode,
        traj.fps,
        traj.task,
    )
    np.testing.assert_array_equal(batched.select(env_index=1), traj.states[::-1])
    replayer = run.env.replayer
    np.testing.assert_array_equal(replayer.render(batched.select(env_index=1)[0]), replayer.render(traj.states[-1]))
    short = Trajectory(**{**batched.__dict__, "states": batched.states[:4], "episode": batched.episode[:4]})
    assert replay(short, tmp_path / "sub1.mp4", width=W, height=H, env_index=1) == 4


def test_unmatched_names_are_an_error_that_names_them(run: Run) -> None:
    with pytest.raises(StateError, match="no_such_body"):
        MujocoReplayWrapper(run.env.env, name_map={"entities": {"cube": "no_such_body"}})
    schema = StateSchema((*run.env.replayer.schema.entities, Entity("ghost", "rigid")))
    with pytest.raises(StateError, match="ghost"):
        Replayer(ASSET_PATH, schema)


def test_other_tasks_need_an_explicit_model(run: Run) -> None:
    traj = run.env.trajectory()
    other = Trajectory(**{**traj.__dict__, "task": "Isaac-Lift-Cube-Franka-v0"})
    with pytest.raises(ValueError, match="model="):
        replay(other, "unused.mp4")


def test_record_video_outside_the_wrapper(run: Run, tmp_path: Path) -> None:
    remote = RemoteEnv("127.0.0.1", run.server.local_port)  # a second session on the same server
    env = gym.wrappers.RecordVideo(
        MujocoReplayWrapper(remote, width=W, height=H),
        str(tmp_path / "videos"),
        episode_trigger=lambda _: True,
        name_prefix="rv",
    )
    try:
        env.reset(seed=SEED)
        for action in run.actions[:4]:
            env.step(action)
    finally:
        env.close()
    size, frames = _decode(tmp_path / "videos" / "rv-episode-0.mp4")
    assert size == (W, H) and len(frames) == 5


def test_vector_env_records_every_sub_env(run: Run) -> None:
    import gym_remote.vector as vector
    from gym_remote.replay import MujocoReplayVectorWrapper

    venv = MujocoReplayVectorWrapper(
        vector.RemoteVectorEnv(num_envs=2, host="127.0.0.1", port=run.server.local_port),
        width=W,
        height=H,
        env_index=1,
    )
    try:
        venv.reset(seed=SEED)
        venv.step(np.stack([run.actions[0]] * 2))
        traj = venv.trajectory()
        assert traj.states.shape == (2, 2, traj.schema.size) and traj.rewards.shape == (2, 2)
        assert venv.render().shape == (H, W, 3)
    finally:
        venv.close()


def test_headless_gl_is_chosen_before_mujoco_loads() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "WAYLAND_DISPLAY")}
    code = "from gym_remote.replay import configure_headless_gl as c; import sys; print(c(), 'mujoco' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    backend, imported = out.stdout.split()
    assert backend in ("egl", "osmesa") and imported == "False"
    assert configure_headless_gl() == os.environ["MUJOCO_GL"]  # an explicit choice always wins


# ---------------------------------------------------- nothing recorded is lost at save time (item 3)


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ({"width": 321, "height": 241}, ValueError, "width=321: frames must be even-sized.*use 320 or 322"),
        ({"width": 320, "height": 241}, ValueError, "height=241"),
        ({"width": 0}, ValueError, "width=0"),
        ({"width": 640.0}, TypeError, "width must be an int"),
        ({"fps": -1}, ValueError, "fps must be a positive number"),
        ({"record": "yes"}, TypeError, "record must be True or False"),
        ({"env_index": -1}, ValueError, "env_index"),
        ({"camera": 1.5}, TypeError, "camera must be"),
        ({"camera": "no_such_camera"}, ValueError, "no camera 'no_such_camera'"),
    ],
)
def test_every_option_is_checked_at_construction(run: Run, fields: dict, error: type, match: str) -> None:
    remote = run.env.env  # the live RemoteEnv: nothing is sent to it by a refused construction
    state_before = remote.with_state
    with pytest.raises(error, match=match):
        MujocoReplayWrapper(remote, **fields)
    assert remote.with_state == state_before


def test_a_video_that_cannot_be_written_keeps_the_recording(run: Run, tmp_path: Path) -> None:
    recorded = run.env.trajectory()
    # Encoding succeeds, then the file cannot take its name (a folder is there): kept beside it.
    blocked = tmp_path / "run.mp4"
    blocked.mkdir()
    with pytest.raises(VideoError, match="run.mp4 failed.*kept in .*run.npz.*gym-remote replay") as info:
        run.env.save_video(blocked)
    assert info.value.trajectory_path == tmp_path / "run.npz"
    np.testing.assert_array_equal(load_trajectory(info.value.trajectory_path).states, recorded.states)
    # Nothing can be written beside it (its folder is a file): kept in the temp folder, never lost.
    (tmp_path / "afile").write_text("")
    with pytest.raises(VideoError) as info:
        run.env.save_video(tmp_path / "afile" / "out.mp4")
    kept = info.value.trajectory_path
    try:
        assert kept is not None and kept.parent == Path(tempfile.gettempdir())
        assert str(kept) in str(info.value)
        np.testing.assert_array_equal(load_trajectory(kept).states, recorded.states)
    finally:
        if kept is not None:
            kept.unlink()


def test_the_installed_mujoco_is_one_release_the_replay_extra_allows() -> None:
    """MuJoCo 4 is three distributions (mujoco, mujoco-core, mujoco-studio) of one version; 4.0.0's solver
    bug is excluded by the ``replay`` extra's pin, which the installed release must satisfy."""
    import json
    import re
    from importlib import metadata

    import mujoco
    from packaging.requirements import Requirement

    installed = metadata.version("mujoco")
    assert mujoco.__version__ == installed
    if int(installed.split(".")[0]) >= 4:  # the split packages come from the same release (no in-place mix)
        assert metadata.version("mujoco-core") == installed
    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    extras = json.loads(re.search(r"^replay = (\[.*\])$", text, re.M).group(1))  # tomllib is 3.11+
    (pin,) = [Requirement(r) for r in extras if Requirement(r).name == "mujoco"]
    assert installed in pin.specifier and "4.0.0" not in pin.specifier


def test_mujoco_renders_the_stack_cube_scene_headless() -> None:
    """A frame of the built-in scene through MuJoCo's own renderer (EGL here): not blank, and the cube's
    colour is in it."""
    import mujoco

    model = mujoco.MjModel.from_xml_path(str(ASSET_PATH))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    with mujoco.Renderer(model, 96, 128) as renderer:
        renderer.update_scene(data)
        frame = renderer.render()
    assert frame.shape == (96, 128, 3) and frame.dtype == np.uint8
    assert frame.std() > 5  # a scene, not a cleared buffer
