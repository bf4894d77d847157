"""SB3's VecEnv contract, run over ``[DummyVecEnv, RemoteVecEnv]`` (issue 13, item 2).

Each behaviour runs the same scenario on SB3's ``DummyVecEnv`` (the reference) and on
``RemoteVecEnv`` against a real server, and asserts that everything SB3 and its wrappers read is
equal: observations, rewards (dtype included), dones, every info key (``TimeLimit.truncated`` on
every step, ``terminal_observation``), ``reset_infos`` after automatic resets, attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env  # noqa: F401  (SB3 importable: CI installs it)
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor, VecNormalize

import tests.envs  # noqa: F401  (registers the test envs)
from gym_remote.local import LocalServer
from gym_remote.sb3 import RemoteVecEnv

TASKS = ["tests/EpisodeCounter-v0", "CartPole-v1", "Pendulum-v1"]
N = 3


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer("gymnasium", "CartPole-v1", extra_args=["--import", "tests.envs"]) as srv:
        yield srv


def makers(server: LocalServer, task: str) -> dict[str, Callable[[], VecEnv]]:
    return {
        "DummyVecEnv": lambda: DummyVecEnv([lambda: gym.make(task)] * N),
        "RemoteVecEnv": lambda: RemoteVecEnv(num_envs=N, host=server.local_host, port=server.local_port, task=task),
    }


def assert_same(a, b, where: str) -> None:
    """Equal values and types, recursively (numpy arrays: dtype, shape and values)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (where, sorted(a), sorted(b))
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), (where, a, b)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, (where, a, b)
        np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=where)
    elif isinstance(a, (bool, int, float, np.generic)):
        # Known difference: Gymnasium's vector infos stack scalars into arrays, so an info's Python
        # int comes back as np.int64 (and np.float64 as np.float64): the kind and value must match.
        x, y = np.asarray(a), np.asarray(b)
        assert x.dtype.kind == y.dtype.kind and x.item() == y.item(), (where, a, b)
    else:
        assert type(a) is type(b) and a == b, (where, a, b)


def scenario(vec: VecEnv, steps: int) -> list:
    """What SB3 reads from a VecEnv over a seeded run with fixed actions."""
    record: list = [vec.num_envs, vec.observation_space, vec.action_space, vec.get_attr("render_mode")]
    vec.seed(7)
    record += [vec.reset(), [dict(i) for i in vec.reset_infos]]
    rng = np.random.default_rng(0)
    for _ in range(steps):
        space = vec.action_space
        if isinstance(space, gym.spaces.Box):
            actions = rng.uniform(space.low, space.high, (N, *space.shape))
        else:
            actions = rng.integers(0, space.n, N)
        vec.step_async(actions.astype(vec.action_space.dtype))
        obs, rewards, dones, infos = vec.step_wait()
        record.append((obs, rewards, dones, infos, [dict(i) for i in vec.reset_infos]))
    vec.close()
    return record


@pytest.mark.parametrize("task", TASKS)
def test_remote_vec_env_reads_as_dummy_vec_env(server, task):
    reference, remote = (scenario(make(), 40) for make in makers(server, task).values())
    assert reference[:4] == remote[:4]  # num_envs, spaces, render_mode
    for i, (x, y) in enumerate(zip(reference[4:], remote[4:], strict=True)):
        assert_same(x, y, f"record {i}")


@pytest.mark.parametrize("kind", ["DummyVecEnv", "RemoteVecEnv"])
def test_reset_infos_follow_automatic_resets_and_time_limits_mark_every_step(server, kind):
    vec = makers(server, "tests/EpisodeCounter-v0")[kind]()
    vec.reset()
    assert [i["episode"] for i in vec.reset_infos] == [1] * N
    seen_truncation = False
    for _ in range(8):
        vec.step_async(np.ones(N, np.int64))
        _, _, dones, infos = vec.step_wait()
        assert all("TimeLimit.truncated" in i for i in infos)
        seen_truncation |= any(i["TimeLimit.truncated"] for i in infos)
        for i in np.flatnonzero(dones):
            assert "terminal_observation" in infos[i]
    assert seen_truncation  # episode 2 runs into the 5-step limit
    assert [i["episode"] for i in vec.reset_infos] == [3] * N  # terminated at 3, truncated at 5+3
    vec.close()


@pytest.mark.parametrize("kind", ["DummyVecEnv", "RemoteVecEnv"])
def test_sb3_wrappers_run_on_top(server, kind):
    vec = VecNormalize(VecMonitor(makers(server, "CartPole-v1")[kind]()))
    vec.reset()
    for _ in range(30):
        vec.step(np.zeros(N, np.int64))
    assert vec.get_attr("render_mode") == [None] * N
    vec.close()


@pytest.mark.parametrize("kind", ["DummyVecEnv", "RemoteVecEnv"])
def test_env_is_wrapped_answers_from_the_real_wrappers(server, kind):
    from gymnasium.wrappers import TimeLimit
    from stable_baselines3.common.monitor import Monitor

    vec = makers(server, "CartPole-v1")[kind]()
    assert vec.env_is_wrapped(TimeLimit) == [True] * N  # gym.make wraps in TimeLimit, on the server too
    assert vec.env_is_wrapped(Monitor) == [False] * N
    assert vec.env_is_wrapped(TimeLimit, indices=[1]) == [True]
    vec.close()


def test_set_options_equal_per_sub_env_reach_every_reset(server):
    """CartPole's reset takes low/high bounds: equal options on both give equal observations."""
    results = []
    for make in makers(server, "CartPole-v1").values():
        vec = make()
        vec.seed(3)
        vec.set_options({"low": 0.2, "high": 0.3})
        results.append(vec.reset())
        vec.close()
    np.testing.assert_allclose(*results, rtol=1e-6)
    assert (results[1] >= 0.2).all()


def test_different_options_per_sub_env_are_refused_on_purpose(server):
    vec = makers(server, "CartPole-v1")["RemoteVecEnv"]()
    vec.set_options([{"low": 0.2, "high": 0.3}, None, {"low": -0.3, "high": -0.2}])
    with pytest.raises(ValueError, match="refused on purpose"):
        vec.reset()
    vec.reset()  # the options went with the refused reset, as DummyVecEnv consumes them
    vec.close()


def test_clip_actions_bounds_a_box_and_clips_what_is_sent(server):
    """``clip_actions`` (Isaac Lab's wrappers' name): finite bounds for SB3, within the space's own."""
    kwargs = {"num_envs": 2, "host": server.local_host, "port": server.local_port, "task": "Pendulum-v1"}
    vec = RemoteVecEnv(clip_actions=1.0, **kwargs)
    local = DummyVecEnv([lambda: gym.make("Pendulum-v1")] * 2)
    try:
        assert vec.action_space == gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        vec.seed(0)
        local.seed(0)
        np.testing.assert_array_equal(vec.reset(), local.reset())
        remote_obs, *_ = vec.step(np.array([[5.0], [-0.5]], np.float32))  # 5.0 goes out as 1.0
        local_obs, *_ = local.step(np.array([[1.0], [-0.5]], np.float32))
        np.testing.assert_array_equal(remote_obs, local_obs)
    finally:
        vec.close()
        local.close()
    wide = RemoteVecEnv(clip_actions=10.0, **kwargs)  # the space's own bounds (Pendulum's 2.0) stay
    assert wide.action_space == gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    wide.close()
    with pytest.raises(ValueError, match="positive finite number, not 0"):
        RemoteVecEnv(clip_actions=0, **kwargs)
    with pytest.raises(TypeError, match="bounds a Box action space; this one is Discrete"):
        RemoteVecEnv(clip_actions=1.0, **{**kwargs, "task": "CartPole-v1"})
    from gym_remote import RemoteEnv

    with RemoteEnv(server.local_host, server.local_port) as probe:
        assert probe.ping()["sessions"] == 1  # its own: the refused RemoteVecEnv closed the one it made


def test_batch_level_info_values_reach_every_sub_env():
    """A value that is not one per sub-env (Isaac Lab's ``extras["log"]`` scalars) goes to each."""
    from gym_remote.sb3 import split_infos

    info = {"log": {"Episode_Reward/alive": 0.5}, "x": np.array([1, 2]), "_x": np.array([True, False])}
    assert split_infos(info, 2) == [
        {"log": {"Episode_Reward/alive": 0.5}, "x": 1},
        {"log": {"Episode_Reward/alive": 0.5}},
    ]
    assert split_infos({"pair": (0.0, 1.0)}, 2) == [{"pair": 0.0}, {"pair": 1.0}]  # a tuple of one per sub-env
    out = split_infos({"hist": [1, 2, 3]}, 2)  # batch-level and mutable: a copy each
    assert out[0] == out[1] == {"hist": [1, 2, 3]} and out[0]["hist"] is not out[1]["hist"]


# SB3's own VecEnv test cases (tests/test_vec_envs.py), written again here with only the construction
# changed (issue 25, item 6).

SB3_SPACES = ["sb3-discrete", "sb3-multidiscrete", "sb3-multibinary", "sb3-continuous", "sb3-dict", "sb3-tuple"]


@pytest.mark.parametrize("space", SB3_SPACES)
def test_per_env_actions_as_sb3_indexes_them(server, space):
    """``actions[i]`` is sub-env i's action: a list of dicts or tuples for Dict and Tuple spaces too."""
    task, kwargs = "tests/SpaceEcho-v0", {"space": space}
    records = []
    for vec in (
        DummyVecEnv([lambda: gym.make(task, **kwargs)] * N),
        RemoteVecEnv(num_envs=N, host=server.local_host, port=server.local_port, task=task, task_kwargs=kwargs),
    ):
        vec.seed(0)
        record = [vec.reset()]
        vec.action_space.seed(1)
        for _ in range(8):  # past the episode's end (7 steps)
            obs, rewards, dones, infos = vec.step([vec.action_space.sample() for _ in range(N)])
            record.append((obs, rewards, dones, infos))
        records.append(record)
        vec.close()
    assert_same(records[0], records[1], space)


def test_seed_without_a_value_seeds_each_sub_env_differently(server):
    vec = makers(server, "Pendulum-v1")["RemoteVecEnv"]()
    vec.seed()
    obs = vec.reset()
    assert not np.allclose(obs[0], obs[1]) and not np.allclose(obs[1], obs[2])
    vec.close()


def test_metadata_is_the_envs_as_dummy_vec_env_copies_it(serve):
    server = serve("tests/Frames-v0")
    task = "tests/Frames-v0"
    local = DummyVecEnv([lambda: gym.make(task, render_mode="rgb_array")] * 2)
    vec = RemoteVecEnv(num_envs=2, host=server.local_host, port=server.local_port, task=task, render_mode="rgb_array")
    assert vec.metadata == local.metadata  # render_fps 10 among them
    vec.close(), local.close()


def test_vec_video_recorder_writes_at_the_envs_frame_rate(serve, tmp_path):
    """SB3's VecVideoRecorder reads ``metadata["render_fps"]`` (10 here, not its default 30)."""
    import imageio.v3 as iio
    from stable_baselines3.common.vec_env import VecVideoRecorder

    server = serve("tests/Frames-v0")
    vec = RemoteVecEnv(
        num_envs=2, host=server.local_host, port=server.local_port, task="tests/Frames-v0", render_mode="rgb_array"
    )
    recorder = VecVideoRecorder(vec, str(tmp_path), record_video_trigger=lambda step: step == 0, video_length=5)
    assert recorder.frames_per_sec == 10
    recorder.reset()
    for _ in range(6):
        recorder.step(np.ones(2, np.int64))
    recorder.close()
    (video,) = tmp_path.glob("*.mp4")
    assert iio.immeta(video)["fps"] == 10


def test_refused_on_purpose_writes_and_arbitrary_methods(server):
    """DummyVecEnv's set_attr and env_method reach any attribute; remote envs are not written to."""
    vec = makers(server, "CartPole-v1")["RemoteVecEnv"]()
    with pytest.raises(AttributeError, match="not allowed"):
        vec.set_attr("dummy", 12)
    with pytest.raises(AttributeError, match="not callable on remote envs"):
        vec.env_method("set_wrapper_attr", "dummy2", 2)
    assert not vec.has_attr("dummy")
    vec.close()
