"""The seed's task on the REAL Isaac Lab 3.0.0: a Franka stacks cubes on the server, this machine replays it.

The server is ``gym-remote serve --config isaaclab_stack_cube --override physics=NAME``
(``IsaacContrib-Stack-Cube-Franka``, on Newton and on PhysX through ovphysx, CPU) in the Isaac Lab venv of ``scripts/build_isaaclab_venv.sh``, with
the Franka scene's offline stand-ins written by ``gym_remote.backends.isaaclab.assets`` into a
temporary folder. The client (this process) runs the scripted expert on the task's observations and
replays the states in the built-in MuJoCo Franka scene. References are independent of the states
where they can be: Isaac Lab's own observation terms (joint_pos, object, eef_pos, stack_1).

On this 2-core machine the stack task steps ~5 times a second with one env; one scripted episode is
about 80 steps. When the venv is missing the tests fail and name the command that builds it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)
from gym_remote.local import LocalServer
from gym_remote_apps.isaaclab_stack import (
    DEFAULT_JOINT_POS,
    ISAACLAB_STACK_TASK,
    IsaacLabStackExpert,
    cube_poses,
    joint_positions,
    replay_scene,
    stacked,
)
from tests.conftest import in_venv

pytestmark = pytest.mark.isaaclab

ROOT = Path(__file__).resolve().parent.parent
CONNECT = 600.0  # seconds: a cold Warp kernel cache compiles the stack scene's kernels on the first env
JOINTS = (*(f"panda_joint{i}" for i in range(1, 8)), "panda_finger_joint1", "panda_finger_joint2")
STANDINS = (
    "Isaac/IsaacLab/Robots/FrankaEmika/franka_panda.usda",
    "Isaac/Props/Blocks/blue_block.usd",
    "Isaac/Props/Blocks/red_block.usd",
    "Isaac/Props/Blocks/green_block.usd",
    "Isaac/Props/Mounts/SeattleLabTable/table_instanceable.usd",
)
MAX_STEPS = 150  # the expert stacks in ~70 steps (3.5 s of simulated time); the task allows 600
SETTLE = 8  # steps after stack_1 first holds: it must still hold (the cube rests, the hand is away)


@pytest.fixture(scope="module")
def python(isaaclab_python: str) -> str:
    return isaaclab_python


@pytest.fixture(scope="module")
def asset_root(isaaclab_assets: Path) -> Path:
    return isaaclab_assets


#: The engines the stack runs on, by Isaac Lab's override; the task declares no ovphysx preset, so
#: the backend sets PhysX in code for it (``gym_remote.backends.isaaclab.physics``).
ENGINES = {"newton_mjwarp": "newton", "ovphysx": "ovphysx"}


@pytest.fixture(scope="module", params=list(ENGINES))
def server(request: pytest.FixtureRequest, python: str, asset_root: Path) -> Iterator[LocalServer]:
    with LocalServer(
        "isaaclab",
        None,
        {"asset_root": str(asset_root)},
        extra_args=["--config", "isaaclab_stack_cube", "--override", f"physics={request.param}"],
        python=python,
        startup_timeout=CONNECT,
        env={"PYTHONPATH": str(ROOT)},
    ) as server:
        yield server


def _make(server: LocalServer, **kwargs: object) -> gym.Env:
    return gym.make(
        "Remote-IsaacSim-v0",
        host=server.local_host,
        port=server.local_port,
        connect_timeout=CONNECT,
        timeout=120.0,
        **kwargs,
    )


def _object_vs_state(obs: dict, state: np.ndarray, offsets: dict[str, int]) -> None:
    """The `object` observation term (env-relative positions, x-y-z-w) against the state's cube poses."""
    for name, (pos, quat) in cube_poses(obs).items():
        at = offsets[name]
        np.testing.assert_allclose(state[at : at + 3], pos, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(state[at + 3 : at + 7], quat, atol=1e-6, err_msg=name)  # w-first on the wire


# ------------------------------------------------------------------------------- the assets


def test_stack_standins_are_written_marked_and_kept(python: str, asset_root: Path) -> None:
    """Every file the stack scene loads is there, marked as a stand-in; a re-run keeps them; a file
    without the marker (a user's copy of NVIDIA's asset) is never overwritten."""
    for rel in STANDINS:
        text = (asset_root / rel).read_text(encoding="utf-8")
        assert "gym-remote stand-in v" in text[:2000], rel
    franka = (asset_root / STANDINS[0]).read_text(encoding="utf-8")
    for name in (*JOINTS, "root_joint", "panda_hand_joint", "NewtonMimicAPI", "PhysicsArticulationRootAPI"):
        assert name in franka, name
    table = asset_root / STANDINS[-1]
    table.write_text("#usda 1.0\n# somebody's own table\n", encoding="utf-8")
    before = {rel: (asset_root / rel).stat().st_mtime_ns for rel in STANDINS[:-1]}
    out = in_venv(python, "gym_remote.backends.isaaclab.assets", str(asset_root), timeout=300)
    assert out.returncode == 0, out.stderr
    assert {rel: (asset_root / rel).stat().st_mtime_ns for rel in STANDINS[:-1]} == before
    assert "somebody's own table" in table.read_text(encoding="utf-8")
    # put the stand-in back for the tests that follow (--force rewrites everything)
    out = in_venv(python, "gym_remote.backends.isaaclab.assets", str(asset_root), "--force", timeout=300)
    assert out.returncode == 0 and "gym-remote stand-in v" in table.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------- single env


@pytest.mark.timeout(900)
def test_single_env_spaces_schema_and_state_match_the_observations(server: LocalServer) -> None:
    env = _make(server, with_state=True)
    try:
        remote = env.unwrapped
        assert remote.task == ISAACLAB_STACK_TASK
        assert remote.metadata["isaaclab_version"] == "3.0.0"
        assert remote.metadata["physics"] in ENGINES.values()
        assert env.action_space == gym.spaces.Box(-np.inf, np.inf, (8,), np.float32)
        space = env.observation_space
        assert list(space.spaces) == ["policy", "subtask_terms"]
        assert set(space["subtask_terms"].spaces) == {"grasp_1", "stack_1", "grasp_2"}
        assert space["policy"]["joint_pos"].shape == (9,) and space["policy"]["object"].shape == (39,)
        schema = remote.state_schema
        assert [(e.name, e.kind, e.joints) for e in schema.entities] == [
            ("robot", "articulation", JOINTS),  # the stand-in reads back as the real Franka
            ("cube_1", "rigid", ()),
            ("cube_2", "rigid", ()),
            ("cube_3", "rigid", ()),
        ]
        offsets = schema.offsets()
        q_at = offsets["robot"] + 13  # root pose 7, root velocity 6, then the joint positions
        expert = IsaacLabStackExpert()
        obs, _ = env.reset(seed=3)
        for t in range(6):
            state = np.asarray(remote.last_state)
            np.testing.assert_allclose(state[: offsets["robot"] + 7], [0, 0, 0, 1, 0, 0, 0], atol=1e-6)  # env origin
            np.testing.assert_allclose(state[q_at : q_at + 9], joint_positions(obs), atol=1e-6)
            _object_vs_state(obs, state, offsets)
            if t:  # Isaac Lab's end-effector frame = forward kinematics of the MJCF the stand-in was built from
                # (not at a reset: the task's frame transformer still shows the pose before it until a step)
                tcp = expert.expert.tcp_position(state[q_at : q_at + 7])
                np.testing.assert_allclose(obs["policy"]["eef_pos"], tcp, atol=1e-5)
            np.testing.assert_allclose(
                obs["policy"]["cube_positions"].reshape(3, 3),
                [  # one env: origin 0
                    cube_poses(obs)[c][0] for c in ("cube_1", "cube_2", "cube_3")
                ],
                atol=1e-6,
            )
            assert not stacked(obs)
            obs, reward, terminated, truncated, _ = env.step(expert.act(obs))
            assert reward == 0.0 and not terminated and not truncated  # the task has no reward terms
        again, _ = env.reset(seed=3)
        first, _ = env.reset(seed=3)
        np.testing.assert_array_equal(again["policy"]["object"], first["policy"]["object"])
        other, _ = env.reset(seed=4)
        assert not np.array_equal(other["policy"]["object"], first["policy"]["object"])  # cubes re-placed
        np.testing.assert_allclose(joint_positions(first)[7:], DEFAULT_JOINT_POS[7:], atol=1e-6)  # fingers open
    finally:
        env.close()


def test_vector_two_envs_carry_env_relative_states(server: LocalServer) -> None:
    venv = gym.make_vec(
        "Remote-IsaacSim-v0",
        num_envs=2,
        host=server.local_host,
        port=server.local_port,
        connect_timeout=CONNECT,
        timeout=120.0,
        autoreset_mode="same_step",
        with_state=True,
    )
    try:
        remote = venv.unwrapped
        offsets = remote.state_schema.offsets()
        obs, _ = venv.reset(seed=10)
        for _ in range(3):
            states = np.asarray(remote.last_state)
            assert states.shape == (2, remote.state_schema.size)
            origins = []
            for i in range(2):
                row = {group: {k: v[i] for k, v in terms.items()} for group, terms in obs.items()}
                _object_vs_state(row, states[i], offsets)
                world = row["policy"]["cube_positions"].reshape(3, 3)
                relative = np.stack([states[i][offsets[c] : offsets[c] + 3] for c in ("cube_1", "cube_2", "cube_3")])
                shift = world - relative  # the env's origin, the same for its three cubes
                np.testing.assert_allclose(shift, shift[:1].repeat(3, axis=0), atol=1e-5)
                origins.append(shift[0])
            assert np.linalg.norm(origins[0] - origins[1]) > 1.0  # two envs, 2.5 m apart: states stay env-relative
            actions = np.zeros((2, 8), np.float32)
            actions[:, 7] = 1.0
            obs, rewards, terminated, truncated, _ = venv.step(actions)
            assert rewards.shape == terminated.shape == truncated.shape == (2,)
        # set_state on both sub-envs writes env-relative poses: row 1's cube_1 moved 5 cm along x
        # lands 5 cm from where it was in env 1's own frame, and env 0 is left where it was
        states = remote.get_state()
        written = states.copy()
        written[1, offsets["cube_1"]] += 0.05
        assert remote.set_state(written) is None  # everything restored
        np.testing.assert_allclose(remote.get_state(), written, atol=1e-5)
        obs, *_ = venv.step(np.zeros((2, 8), np.float32))
        for i in range(2):
            world = obs["policy"]["cube_positions"][i].reshape(3, 3)[0]
            np.testing.assert_allclose(
                world - origins[i], written[i, offsets["cube_1"] : offsets["cube_1"] + 3], atol=5e-3
            )
    finally:
        venv.close()


# ---------------------------------------------------------------- the expert, the replay (CI's episode)


def _episode(env: gym.Env, expert: IsaacLabStackExpert, seed: int) -> tuple[list[dict], int | None]:
    """One scripted episode; returns every observation (reset first) and the step of the first stack_1."""
    obs, _ = env.reset(seed=seed)
    expert.reset()
    seen, first = [obs], None
    for step in range(1, MAX_STEPS + 1):
        obs, _, terminated, truncated, _ = env.step(expert.act(obs))
        seen.append(obs)
        assert not (terminated or truncated), f"episode ended at step {step}"
        if first is None and stacked(obs):
            first = step
        if first is not None and step >= first + SETTLE:
            break
    return seen, first


@pytest.mark.timeout(900)
def test_scripted_expert_stacks_and_the_replay_equals_isaac_lab_at_every_step(
    server: LocalServer, tmp_path: Path
) -> None:
    """CI's episode: seed 0 stacks by the task's own stack_1; the laptop's MuJoCo replay of the states
    puts every Franka joint (1e-4 rad) and every cube (1e-4 m) where Isaac Lab's observations say."""
    from gym_remote.replay import MujocoReplayWrapper

    env = MujocoReplayWrapper(_make(server), model=replay_scene(), name_map="isaaclab_franka", width=320, height=240)
    try:
        seen, first = _episode(env, IsaacLabStackExpert(), seed=0)
        trajectory = env.trajectory()
    finally:
        env.close()
    assert first is not None, "stack_1 never held"
    last = seen[-1]
    assert stacked(last), "stack_1 no longer held after the release"
    cubes = cube_poses(last)
    gap = cubes["cube_2"][0] - cubes["cube_1"][0]
    assert np.linalg.norm(gap[:2]) < 0.01 and abs(gap[2] - 0.0406) < 0.003, gap  # resting on top, 4.06 cm up

    replayer = env.replayer
    model, data = replayer.model, replayer.data
    qadr = [int(model.joint(j).qposadr[0]) for j in JOINTS]
    bodies = {"cube_1": model.body("base").id, "cube_2": model.body("cube").id, "cube_3": model.body("cube_3").id}
    assert len(trajectory.states) == len(seen)
    for state, obs in zip(trajectory.states, seen, strict=True):
        replayer.set_state(state)
        np.testing.assert_allclose(data.qpos[qadr], joint_positions(obs), atol=1e-4)
        for name, (pos, quat) in cube_poses(obs).items():
            np.testing.assert_allclose(data.xpos[bodies[name]], pos, atol=1e-4, err_msg=name)
            assert abs(np.dot(data.xquat[bodies[name]], quat)) > 1 - 1e-6, name  # the same turn (q and -q agree)
    frames = [replayer.render(trajectory.states[i]) for i in (0, first)]
    changed = np.abs(frames[0].astype(int) - frames[1]).max(axis=-1) > 40
    assert changed.sum() > 500, changed.sum()  # the frames move: the arm and the red cube drawn elsewhere
    video = tmp_path / "stack.mp4"
    assert env.save_video(video) == len(seen) and video.stat().st_size > 10_000


def test_expert_stacks_in_at_least_one_of_two_seeded_episodes(server: LocalServer) -> None:
    """Seeds 0 and 1 (the cubes' placement and the arm's start differ), judged by stack_1 alone."""
    env = _make(server)
    expert = IsaacLabStackExpert()
    try:
        results = []
        for seed in (0, 1):
            seen, first = _episode(env, expert, seed)
            results.append(first is not None and stacked(seen[-1]))
    finally:
        env.close()
    assert sum(results) >= 1, results
