"""The Isaac Lab and RoboVerse backends against stand-ins of those packages (IsaacSim needs a GPU).

``tests/standins`` holds small fakes with the real module layout and API surface; they prove the
adapters' call order, batching, autoreset mapping and state conversion, not IsaacSim's physics.
Sample states in the documented formats (``tests/data``) are replayed into the built-in MuJoCo
model through the shipped configs and name maps.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gym_remote.config import CONFIG_ROOT, TaskConfig, find_config, load
from gym_remote.errors import BadRequestError, ServerBusyError, StateError
from gym_remote.session import SessionOptions
from gym_remote.state import MujocoBinding, NameMap, state_to_dict

pytestmark = pytest.mark.standin

HERE = Path(__file__).resolve().parent
STANDINS = HERE / "standins"
DATA = HERE / "data"
LIFT = "Isaac-Lift-Cube-Franka-v0"
_STANDIN_PACKAGES = ("isaaclab", "isaaclab_tasks", "metasim")


def _purge() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in _STANDIN_PACKAGES:
            del sys.modules[name]


@pytest.fixture
def standins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fresh stand-in packages importable, and a process where IsaacSim was never started."""
    import gym_remote.backends.isaaclab as backend

    _purge()
    monkeypatch.syspath_prepend(str(STANDINS))
    monkeypatch.setattr(backend, "RUNTIME", None)
    yield
    _purge()


@pytest.fixture
def lift(standins: None):
    from gym_remote.backends.isaaclab import isaaclab_factory

    return isaaclab_factory(LIFT, {"device": "cpu"})


@pytest.fixture
def metasim(standins: None):
    from gym_remote.backends.roboverse import roboverse_factory

    return roboverse_factory("stack_cube", {"device": "cpu"})


def opts(num_envs: int | None = None, mode: str = "same_step", **kw) -> SessionOptions:
    return SessionOptions(num_envs=num_envs, autoreset_mode=mode, **kw)


def drop_cube(n: int, which: int = 0) -> np.ndarray:
    """Lift stand-in actions: gripper -1 on sub-env ``which`` drops its cube (terminated on the 3rd step)."""
    action = np.zeros((n, 8), np.float32)
    action[which, 7] = -1.0
    return action


@pytest.fixture
def count_d2h(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Shapes of every tensor copied to the host (every ``Tensor.cpu()`` call)."""
    import torch

    calls: list[tuple[int, ...]] = []
    original = torch.Tensor.cpu

    def cpu(self, *args, **kwargs):
        calls.append(tuple(self.shape))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", cpu)
    return calls


# ------------------------------------------------------------------------------ Isaac Lab


def test_app_launcher_starts_before_isaaclab_tasks(standins: None) -> None:
    with pytest.raises(ImportError, match="AppLauncher first"):  # the stand-in enforces the real order
        import isaaclab_tasks  # noqa: F401
    _purge()
    from gym_remote.backends.isaaclab import isaaclab_factory

    factory = isaaclab_factory(LIFT, {"device": "cpu", "app": {"enable_cameras": True}})
    import isaaclab.app as app

    startup = ["AppLauncher", "import isaaclab_tasks", "parse_env_cfg"]  # all before the server's READY
    assert startup == app.EVENTS
    assert app.LAUNCH_ARGS == [{"headless": True, "enable_cameras": True}]
    session = factory(opts(2))
    assert [*startup, "parse_env_cfg", "gym.make"] == app.EVENTS
    session.close()
    session = factory(opts(2, render_mode="rgb_array"))  # one app per process: no second launch
    assert app.EVENTS.count("AppLauncher") == 1
    session.reset(seed=0, options=None)
    assert session.render().shape == (48, 64, 3)
    assert session.call("render_mode", [], {}) == ["rgb_array", "rgb_array"]
    session.close()


def test_single_env_replies(lift) -> None:
    session = lift(opts(None, mode="next_step"))  # a RemoteEnv's default mode: irrelevant for one env
    assert session.num_envs is None
    assert session.observation_space.shape == (36,) and session.observation_space.dtype == np.float32
    assert session.action_space.shape == (8,)
    desc = session.describe()
    assert desc["num_envs"] is None and desc["observation_space"]["type"] == "Box"
    obs, info = session.reset(seed=3, options=None)
    assert obs.shape == (36,) and obs.dtype == np.float32
    assert isinstance(info["log"]["Episode_Termination/time_out"], float)
    obs, reward, terminated, truncated, info = session.step(np.zeros(8, np.float32))
    assert obs.shape == (36,)
    assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
    assert session.get_state().shape == (session.state_schema.size,)
    session.close()


@pytest.mark.parametrize("n", [4, 16])
def test_batched_replies_and_one_host_copy_per_array(lift, count_d2h: list, n: int) -> None:
    session = lift(opts(n))
    assert session.metadata["autoreset_mode"] == "same_step" and session.metadata["final_obs"] is False
    session.reset(seed=0, options=None)
    count_d2h.clear()
    obs, reward, terminated, truncated, _ = session.step(np.zeros((n, 8), np.float32))
    # obs, reward, terminated, truncated, and all of extras["log"] stacked into one: 5, whatever n is.
    assert len(count_d2h) == 5, count_d2h
    assert sorted(shape[0] for shape in count_d2h) == [2, n, n, n, n]
    assert obs.shape == (n, 36) and obs.dtype == np.float32
    assert reward.shape == (n,) and reward.dtype == np.float64
    assert terminated.shape == truncated.shape == (n,) and terminated.dtype == truncated.dtype == np.bool_
    count_d2h.clear()
    assert session.get_state().shape == (n, session.state_schema.size)
    assert len(count_d2h) == 1  # the whole scene state in one copy
    session.close()


def test_replies_are_not_overwritten_by_the_next_step(lift) -> None:
    session = lift(opts(2))  # the stand-in, like Isaac Lab, reuses its reward/termination buffers
    session.reset(seed=0, options=None)
    _, reward, *_ = session.step(drop_cube(2))
    kept = reward.copy()
    session.step(drop_cube(2))
    np.testing.assert_array_equal(reward, kept)
    session.close()


def test_in_step_reset_is_served_as_same_step_without_final_obs(lift) -> None:
    session = lift(opts(3))
    obs, _ = session.reset(seed=1, options=None)
    start_z = obs[:, 20].copy()  # cube z in the robot frame
    for _ in range(2):
        obs, _, terminated, _, info = session.step(drop_cube(3))
        assert not terminated.any() and "reset_in_step" not in info
    obs, _, terminated, _, info = session.step(drop_cube(3))
    np.testing.assert_array_equal(terminated, [True, False, False])
    np.testing.assert_array_equal(info["reset_in_step"], [True, False, False])
    np.testing.assert_array_equal(info["_reset_in_step"], [True, False, False])
    assert "final_obs" not in info and "final_info" not in info  # Isaac Lab keeps none
    assert abs(obs[0, 20] - 0.055) < 0.06 and obs[0, 20] > 0  # already the next episode's first obs
    np.testing.assert_allclose(obs[1:, 20], start_z[1:])
    session.close()


@pytest.mark.parametrize("mode", ["next_step", "disabled"])
def test_modes_isaac_lab_cannot_honour_are_refused(lift, mode: str) -> None:
    import isaaclab.app as app

    with pytest.raises(BadRequestError, match=r"same_step.*no final_obs") as err:
        lift(opts(4, mode=mode))
    assert "inside step()" in str(err.value) and "final observation" in str(err.value)
    assert "gym.make" not in app.EVENTS  # refused before any env was built


def test_single_env_done_step_then_reset_does_not_reset_twice(lift) -> None:
    session = lift(opts(None))
    session.reset(seed=0, options=None)
    env = session._u
    for _ in range(3):
        obs, _, terminated, _, info = session.step(drop_cube(1)[0])
    assert terminated and info["reset_in_step"] is True
    calls = env.reset_calls
    again, info = session.reset(seed=None, options=None)
    np.testing.assert_array_equal(again, obs)  # the episode the simulator already started
    assert info == {"reset_in_step": True} and env.reset_calls == calls
    session.reset(seed=None, options=None)
    assert env.reset_calls == calls + 1  # nothing pending any more: a real reset
    session.close()


def test_seeds_and_reset_mask(lift) -> None:
    session = lift(opts(3))
    first, _ = session.reset(seed=[7, 8, 9], options=None)  # what RemoteVectorEnv sends for seed=7
    again, _ = session.reset(seed=7, options=None)
    other, _ = session.reset(seed=8, options=None)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    session.step(np.ones((3, 8), np.float32))
    moved, *_ = session.step(np.ones((3, 8), np.float32))
    obs, _ = session.reset(seed=None, options={"reset_mask": np.array([False, True, False])})
    np.testing.assert_array_equal(obs[[0, 2]], moved[[0, 2]])
    assert not np.array_equal(obs[1], moved[1])
    with pytest.raises(BadRequestError, match="at least one True"):
        session.reset(seed=None, options={"reset_mask": np.zeros(3, bool)})
    session.close()


# Isaac Lab 3.x (x-y-z-w) is tested against the real library: tests/test_isaaclab_real.py.
@pytest.mark.parametrize("version, native", [("2.3.0", "wxyz")])
def test_state_is_relative_and_w_first_for_isaac_lab_2(standins: None, version: str, native: str) -> None:
    import isaaclab

    from gym_remote.backends.isaaclab import isaaclab_factory

    isaaclab.__version__ = version
    session = isaaclab_factory(LIFT, {"device": "cpu"})(opts(4))
    assert session.metadata["native_quat_order"] == native
    session.reset(seed=0, options=None)
    scene = session._u.scene
    yaw = np.array([np.cos(0.3), 0.0, 0.0, np.sin(0.3)])  # w-first, stored so in the stand-in
    scene.rigid_objects["object"].data.root_pose_w[2, 3:7] = __import__("torch").tensor(yaw)
    state = state_to_dict(session.state_schema, session.get_state())
    cube, robot = state["object"], state["robot"]
    np.testing.assert_allclose(cube["root_pose"][2, 3:], yaw, atol=1e-6)
    np.testing.assert_allclose(robot["root_pose"][:, :3], 0.0, atol=1e-6)  # env origins subtracted
    assert scene.env_origins[3].abs().sum() > 0
    data = scene.articulations["robot"].data
    for i, name in enumerate(data.joint_names):
        np.testing.assert_allclose(robot["joint_pos"][name], data.joint_pos[:, i].numpy(), atol=1e-6)

    target = session.get_state()
    target[:, 13] += 0.1  # panda_joint1
    target[1, -13:-10] = [0.4, 0.2, 0.3]  # the cube of sub-env 1, relative to its origin
    data.joint_pos_target[:] = 0.25  # the controller's commands: set_state leaves them alone
    data.joint_vel_target[:] = -0.5
    session.set_state(target)
    assert bool((data.joint_pos_target == 0.25).all()) and bool((data.joint_vel_target == -0.5).all())
    assert scene.reset_to_calls[-1] == {"env_ids": None, "is_relative": True}
    assert session._u.sim.forward_calls == 1
    np.testing.assert_allclose(session.get_state(), target, atol=1e-6)
    world = scene.rigid_objects["object"].data.root_pose_w[1, :3].numpy()
    np.testing.assert_allclose(world, np.array([0.4, 0.2, 0.3]) + scene.env_origins[1].numpy(), atol=1e-6)
    with pytest.raises(StateError, match="does not fit the schema"):
        session.set_state(target[:, :-1])
    session.close()


def test_unknown_version_needs_an_explicit_quat_order(standins: None) -> None:
    import isaaclab

    from gym_remote.backends.isaaclab import isaaclab_factory, quat_order_for_version

    isaaclab.__version__ = "0.0.0"
    with pytest.raises(RuntimeError, match="quat_order"):
        isaaclab_factory(LIFT, {"device": "cpu"})
    assert quat_order_for_version("2.2.1") == "wxyz" and quat_order_for_version("3.0.0rc2") == "xyzw"


def test_episode_limit_and_cfg_overrides(lift) -> None:
    session = lift(opts(2, max_episode_steps=3))
    session.reset(seed=0, options=None)
    flags = [session.step(np.zeros((2, 8), np.float32))[3].all() for _ in range(3)]
    assert flags == [False, False, True]
    session.close()
    session = lift(opts(2, task_kwargs={"episode_length_s": 0.04, "scene.env_spacing": 3.0}))
    assert session._u.cfg.scene.env_spacing == 3.0
    session.reset(seed=0, options=None)
    assert [session.step(np.zeros((2, 8), np.float32))[3].all() for _ in range(2)] == [False, True]
    session.close()
    with pytest.raises(BadRequestError, match="no 'episode_lenght_s'"):
        lift(opts(2, task_kwargs={"episode_lenght_s": 1.0}))
    with pytest.raises(BadRequestError, match="server settings"):
        lift(opts(2, task_kwargs={"device": "cuda:1"}))
    with pytest.raises(BadRequestError, match="num_envs is not a task keyword"):
        lift(opts(None, task_kwargs={"num_envs": 8}))


def test_every_spelling_of_a_cfg_setting_meets_the_allow_list_and_the_final_cfg_check(lift) -> None:
    """Issue 22, item 1: a dotted keyword reaches the cfg after parse_env_cfg(num_envs=n), so it was the
    way past --max-envs and the server's device; the final cfg is checked, and --allow-kwargs widens
    the built-in list of what clients may set (never num_envs or the device)."""
    from gym_remote.session import SessionLimits

    with pytest.raises(BadRequestError, match=r"\['scene.num_envs'\] set env-cfg values .*serve --allow-kwargs"):
        lift(opts(2, task_kwargs={"scene.num_envs": 200000}))
    with pytest.raises(BadRequestError, match=r"\['sim.device'\] set env-cfg values"):
        lift(opts(2, task_kwargs={"sim.device": "cuda:1"}))
    widened = SessionLimits(allowed_kwargs=frozenset({"scene.*", "sim.*"}))
    with pytest.raises(BadRequestError, match=r"make scene.num_envs 200000, not the 2 sub-envs"):
        lift(opts(2, task_kwargs={"scene.num_envs": 200000}, limits=widened))
    with pytest.raises(BadRequestError, match=r"make sim.device 'cuda:1': the device is this server's setting"):
        lift(opts(2, task_kwargs={"sim.device": "cuda:1"}, limits=widened))
    session = lift(opts(2, task_kwargs={"scene.num_envs": 2, "scene.env_spacing": 4.0}, limits=widened))
    assert session._u.cfg.scene.env_spacing == 4.0  # the same values are fine
    session.close()


def test_one_session_per_process_and_num_envs_cap(standins: None) -> None:
    from gym_remote.backends.isaaclab import isaaclab_factory

    factory = isaaclab_factory(LIFT, {"device": "cpu", "num_envs": 8})
    first = factory(opts(8))
    with pytest.raises(ServerBusyError, match="one env at a time"):
        factory(opts(2))
    first.close()
    factory(opts(2)).close()
    with pytest.raises(BadRequestError, match="at most num_envs=8"):
        factory(opts(9))
    with pytest.raises(BadRequestError, match="needs cameras"):
        factory(opts(2, render_mode="rgb_array"))


# ------------------------------------------------------------------------------ RoboVerse


def test_metasim_spaces_and_state_observation(metasim) -> None:
    session = metasim(opts(None))
    schema = session.state_schema
    assert [(e.name, e.kind) for e in schema.entities] == [
        ("franka", "articulation"),
        ("cube", "rigid"),
        ("base", "rigid"),
    ]
    assert list(schema.entities[0].joints) == sorted(schema.entities[0].joints)  # MetaSim's column order
    assert session.metadata["observation"] == "state" and session.metadata["final_obs"] is True
    assert session.observation_space.shape == (schema.size,)
    low = session.action_space.low
    assert session.action_space.shape == (9,) and low[0] == 0.0 and low[5] == np.float32(-3.0718)  # sorted joints
    obs, _ = session.reset(seed=1, options=None)
    np.testing.assert_allclose(obs, session.get_state(), atol=1e-6)
    obs, reward, _, _, info = session.step(session.action_space.low)
    assert obs.shape == (schema.size,) and type(reward) is float and info == {}  # privileged_observation dropped
    session.close()


def test_metasim_next_step(metasim) -> None:
    session = metasim(opts(3, mode="next_step", max_episode_steps=2))
    reset_obs, _ = session.reset(seed=0, options=None)
    action = np.tile(session.action_space.high, (3, 1))
    session.step(action)
    final, _, _, truncated, _ = session.step(action)
    assert truncated.all()
    obs, reward, terminated, truncated, _ = session.step(action)  # the step after a done resets
    assert not (terminated.any() or truncated.any()) and (reward == 0).all()
    assert not np.allclose(obs, final)
    np.testing.assert_allclose(obs[:, 13:22], reset_obs[:, 13:22])  # joints back at the initial pose
    session.close()


def test_metasim_same_step_has_final_obs(metasim) -> None:
    session = metasim(opts(3, mode="same_step"))
    session.reset(seed=0, options=None)
    state = session.get_state()
    cube, base = session.state_schema.offsets()["cube"], session.state_schema.offsets()["base"]
    state[1, cube : cube + 3] = state[1, base : base + 3] + [0.0, 0.0, 0.04]  # cube on base in sub-env 1
    session.set_state(state)
    obs, _, terminated, _, info = session.step(np.tile(session.action_space.low, (3, 1)))
    np.testing.assert_array_equal(terminated, [False, True, False])
    np.testing.assert_array_equal(info["_final_obs"], [False, True, False])
    assert info["final_obs"][0] is None and info["final_obs"][1].shape == (session.state_schema.size,)
    np.testing.assert_allclose(info["final_obs"][1][cube : cube + 3], state[1, cube : cube + 3], atol=1e-6)
    assert not np.allclose(obs[1, cube : cube + 3], state[1, cube : cube + 3])  # reset in the same step
    session.close()


def test_metasim_disabled(metasim) -> None:
    session = metasim(opts(2, mode="disabled", max_episode_steps=1))
    session.reset(seed=0, options=None)
    action = np.tile(session.action_space.high, (2, 1))
    obs, _, _, truncated, _ = session.step(action)
    assert truncated.all()
    with pytest.raises(BadRequestError, match="reset_mask"):
        session.step(action)
    after, _ = session.reset(seed=None, options={"reset_mask": np.array([True, False])})
    np.testing.assert_array_equal(after[1], obs[1])
    assert not np.allclose(after[0], obs[0])
    with pytest.raises(BadRequestError, match="reset_mask"):
        session.step(action)  # sub-env 1 is still finished
    session.reset(seed=None, options={"reset_mask": np.array([False, True])})
    session.step(action)
    session.close()


def test_metasim_set_state_goes_through_set_states(metasim, count_d2h: list) -> None:
    session = metasim(opts(2))
    session.reset(seed=0, options=None)
    handler = session._handler
    target = session.get_state()
    target[:, 13:22] = 0.02  # joint positions
    target[0, 31:34] = [0.6, 0.2, 0.02]  # cube position
    session.set_state(target)
    assert handler.set_states_calls[-1] == ("TensorState", None)
    got = session.get_state()
    np.testing.assert_allclose(got[:, :22], target[:, :22], atol=1e-6)
    np.testing.assert_allclose(got[0, 31:38], target[0, 31:38], atol=1e-6)
    count_d2h.clear()
    session.step(np.zeros((2, 9), np.float32))
    assert len(count_d2h) == 4  # obs (whole scene in one), reward, terminated, time_out
    session.close()


def test_metasim_rl_task_resets_in_step(metasim) -> None:
    with pytest.raises(BadRequestError, match="same_step"):
        metasim(opts(2, mode="next_step", task="stack_cube_rl"))
    session = metasim(opts(2, task="stack_cube_rl", max_episode_steps=1))
    assert session.metadata["observation"] == "task" and session.metadata["final_obs"] is False
    assert session.observation_space.shape == (15,)
    session.reset(seed=0, options=None)
    _, _, _, truncated, info = session.step(np.zeros((2, 9), np.float32))
    assert truncated.all() and info["reset_in_step"].all() and "final_obs" not in info
    session.close()
    with pytest.raises(BadRequestError, match="Unknown task"):
        metasim(opts(2, task="no_such_task"))


# ---------------------------------------------------------------------- through a real server


def _server_env() -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(STANDINS), str(HERE.parent), os.environ.get("PYTHONPATH", "")])}


def test_end_to_end_isaaclab_server_with_remote_env() -> None:
    from gym_remote.env import RemoteEnv
    from gym_remote.local import LocalServer
    from gym_remote.vector import RemoteVectorEnv

    with LocalServer("isaaclab", LIFT, {"device": "cpu"}, env=_server_env()) as server:
        env = RemoteEnv(server.local_host, server.local_port)
        try:
            assert env.observation_space.shape == (36,) and env.action_space.shape == (8,)
            assert [e.name for e in env.state_schema.entities] == ["robot", "object"]
            obs, _ = env.reset(seed=0)
            assert obs.shape == (36,) and obs.dtype == np.float32
            for _ in range(3):
                obs, _, terminated, _, info = env.step(drop_cube(1)[0])
            assert terminated and info["reset_in_step"]
            state = np.array(env.get_state())  # replies are read-only views of the message
            state[13] = 0.3
            env.set_state(state)
            np.testing.assert_allclose(env.get_state()[13], 0.3, atol=1e-6)
        finally:
            env.close()
        with pytest.raises(BadRequestError, match="same_step"):
            RemoteVectorEnv(3, server.local_host, server.local_port)  # next_step by default
        venv = RemoteVectorEnv(3, server.local_host, server.local_port, autoreset_mode="same_step")
        try:
            obs, _ = venv.reset(seed=1)
            obs, reward, terminated, _, info = venv.step(drop_cube(3, which=2))
            assert obs.shape == (3, 36) and reward.shape == (3,) and venv.get_state().shape[0] == 3
        finally:
            venv.close()


def test_episode_lengths_reach_each_servers_own_rows() -> None:
    """Two servers, one RemoteVectorEnv: each gets its slice of the written counts, and the simulator's
    own time limit ends each row's episode when its count reaches it (Isaac Lab's episode_length_buf)."""
    from gym_remote.client_session import ConnectOptions
    from gym_remote.local import LocalServer
    from gym_remote.vector import RemoteVectorEnv

    settings = {"device": "cpu"}
    with (
        LocalServer("isaaclab", LIFT, settings, env=_server_env()) as a,
        LocalServer("isaaclab", LIFT, settings, env=_server_env()) as b,
    ):
        hosts = [f"{s.local_host}:{s.local_port}" for s in (a, b)]
        options = ConnectOptions(timeout=30)
        venv = RemoteVectorEnv(4, hosts=hosts, autoreset_mode="same_step", max_episode_steps=10, options=options)
        try:
            assert "set_episode_lengths" in venv.remote_methods and venv.time_limit == 10
            venv.reset(seed=0)
            venv.set_episode_lengths(np.array([9, 0, 5, 7]))  # rows 0-1 on the first server, 2-3 on the second
            ends: dict[int, list[int]] = {}
            hold = np.zeros((4, 8), np.float32)
            hold[:, 7] = 1.0  # the gripper open lifts the cube a little: never a termination
            for t in range(1, 11):
                _, _, terminated, truncated, _ = venv.step(hold)
                assert not terminated.any()
                for i in np.flatnonzero(truncated).tolist():
                    ends.setdefault(i, []).append(t)
            assert ends == {0: [1], 1: [10], 2: [5], 3: [3]}, ends
            with pytest.raises(ValueError, match=r"\[0, 10\]"):
                venv.set_episode_lengths(np.array([0, 0, 0, 11]))
        finally:
            venv.close()


def test_end_to_end_roboverse_server_with_vector_env() -> None:
    from gym_remote.local import LocalServer
    from gym_remote.vector import RemoteVectorEnv

    with LocalServer("roboverse", "stack_cube", {"device": "cpu"}, env=_server_env()) as server:
        venv = RemoteVectorEnv(2, server.local_host, server.local_port, autoreset_mode="same_step", max_episode_steps=1)
        try:
            venv.reset(seed=0)
            _, _, _, truncated, info = venv.step(np.zeros((2, 9), np.float32))
            assert truncated.all() and info["_final_obs"].all()
            assert info["final_obs"][0].shape == venv.single_observation_space.shape
        finally:
            venv.close()


# ------------------------------------------------------- recorded states into the MuJoCo model


def _model_and_map(config: str):
    import mujoco

    from gym_remote.tasks.stack_cube import ASSET_PATH

    cfg = load(TaskConfig, config, kind="tasks")
    model_path = CONFIG_ROOT.parent / cfg.model
    assert model_path.resolve() == ASSET_PATH.resolve()
    name_map = NameMap.load(find_config(cfg.name_map, "maps"))
    return mujoco, mujoco.MjModel.from_xml_path(str(model_path)), name_map


def _assert_pose(mujoco, model, data, body: str, pose: np.ndarray) -> None:
    np.testing.assert_allclose(data.body(body).xpos, pose[:3], atol=1e-6)
    quat = np.asarray(data.body(body).xquat)
    assert min(np.abs(quat - pose[3:7]).max(), np.abs(quat + pose[3:7]).max()) < 1e-6


@pytest.mark.parametrize("fixture", ["isaaclab2_lift_state.json", "isaaclab3_lift_state.json"])
def test_recorded_isaaclab_states_replay_into_the_builtin_model(fixture: str) -> None:
    from gym_remote.backends.isaaclab import isaaclab_schema, isaaclab_state_to_flat

    sample = json.loads((DATA / fixture).read_text())
    state = {
        kind: {name: {k: np.asarray(v) for k, v in entry.items()} for name, entry in group.items()}
        for kind, group in sample["state"].items()
    }
    schema, pieces = isaaclab_schema(state, sample["joint_names"])
    flat = isaaclab_state_to_flat(state, schema, pieces, sample["quat_order"])
    mujoco, model, name_map = _model_and_map("isaaclab_lift_cube")
    binding = MujocoBinding(model, schema, name_map)
    data = mujoco.MjData(model)
    for env in range(flat.shape[0]):
        binding.write(data, flat[env])
        mujoco.mj_forward(model, data)
        for i, joint in enumerate(sample["joint_names"]["robot"]):
            expected = sample["state"]["articulation"]["robot"]["joint_position"][env][i]
            assert data.joint(joint).qpos[0] == pytest.approx(expected)
        pose = np.asarray(sample["state"]["rigid_object"]["object"]["root_pose"][env], dtype=float)
        if sample["quat_order"] == "xyzw":
            pose = np.r_[pose[:3], pose[6], pose[3:6]]
        _assert_pose(mujoco, model, data, "cube", pose)


def test_recorded_roboverse_states_replay_into_the_builtin_model() -> None:
    from gym_remote.backends.roboverse import tensor_state_schema, tensor_state_to_flat

    sample = json.loads((DATA / "roboverse_stack_cube_state.json").read_text())

    def group(name: str) -> dict[str, SimpleNamespace]:
        return {k: SimpleNamespace(**{f: np.asarray(v) for f, v in entry.items()}) for k, entry in sample[name].items()}

    states = SimpleNamespace(robots=group("robots"), objects=group("objects"))
    schema, layout = tensor_state_schema(states, lambda name: sample["joint_names"][name])
    flat = tensor_state_to_flat(states, schema, layout)
    mujoco, model, name_map = _model_and_map("roboverse_stack_cube")
    binding = MujocoBinding(model, schema, name_map)
    data = mujoco.MjData(model)
    for env in range(flat.shape[0]):
        binding.write(data, flat[env])
        mujoco.mj_forward(model, data)
        for i, joint in enumerate(sample["joint_names"]["franka"]):
            assert data.joint(joint).qpos[0] == pytest.approx(sample["robots"]["franka"]["joint_pos"][env][i])
        for body in ("cube", "base"):
            _assert_pose(mujoco, model, data, body, np.asarray(sample["objects"][body]["root_state"][env][:7]))


# ---------------------------------------------------------------------------------- doctor


def test_doctor_reports_backends_and_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    from gym_remote_apps.doctor import doctor, format_report

    monkeypatch.setenv("PYTHONPATH", _server_env()["PYTHONPATH"])
    report = doctor(timeout=60)
    backends = report["backends"]
    assert set(backends) == {"gymnasium", "python", "isaaclab", "roboverse"}  # what serve --backend takes
    assert backends["gymnasium"]["ok"] and report["tasks"]["gym_remote/StackCube-v0"]["ok"]
    assert set(report["server_venvs"]) == {"isaaclab", "metasim", "ray"}
    assert not backends["isaaclab"]["ok"] and "isaacsim" in backends["isaaclab"]["detail"]  # no stand-in for it
    assert backends["roboverse"]["ok"]  # the stand-in imports
    assert report["packages"]["numpy"] == np.__version__
    assert report["gpu"]["torch"]["ok"] and report["gpu"]["torch"]["cuda"] is False
    text = format_report(report)
    assert "isaaclab" in text and "unavailable" in text and "nvidia-smi" in text
    assert "built-in tasks" in text and "server venvs" in text
