"""What the README says of an Isaac Lab server's sessions, against the REAL Isaac Lab 3.0.0.

One server for the module, started as an operator would: ``serve --config isaaclab_cartpole
--override env.episode_length_s=0.5`` in the Isaac Lab venv (Newton on Warp's CPU device), the
client in this project's Python. The server's override makes an episode 30 steps (0.5 s at Isaac
Lab's 1/60 s step), so episode ends come quickly. Each claim checked here is one the README makes:
the single env's done step, one session at a time, the task config's ``num_envs`` cap, the order of
server and client overrides, refusals that name their reason (Kit in a kit-less process, a file
path in an override, ``rgb_array``), and SB3 (``VecMonitor``, PPO, ``evaluate_policy``) on Isaac
Lab's ``same_step`` without a final observation.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)
from gym_remote.errors import BadRequestError, ServerBusyError
from gym_remote.local import LocalServer
from tests.test_isaaclab_real import CONNECT, ROOT, _make, _make_vec

pytestmark = pytest.mark.isaaclab

EPISODE = 30  # steps: the server's --override env.episode_length_s=0.5 at 60 steps/s


@pytest.fixture(scope="module")
def server(isaaclab_python: str, isaaclab_assets: Path) -> Iterator[LocalServer]:
    with LocalServer(
        "isaaclab",
        None,
        {"asset_root": str(isaaclab_assets)},
        extra_args=["--config", "isaaclab_cartpole", "--override", "env.episode_length_s=0.5"],
        python=isaaclab_python,
        startup_timeout=CONNECT,
        env={"PYTHONPATH": str(ROOT)},
    ) as server:
        yield server


def _steps_to_truncation(env: gym.Env, limit: int = 200) -> int:
    env.reset(seed=0)
    for t in range(1, limit + 1):
        *_, terminated, truncated, _ = env.step(np.zeros(1, np.float32))
        assert not terminated, "an unpushed Cartpole should not fall within the limits tested here"
        if truncated:
            return t
    raise AssertionError(f"no truncation within {limit} steps")


def test_a_done_step_returns_the_next_episodes_first_obs_and_reset_keeps_it(server: LocalServer) -> None:
    """README: on a single env's done step the obs is already the next episode's first, with
    ``info["reset_in_step"]``; the next plain ``reset()`` returns it without resetting again."""
    env = _make(server)
    try:
        env.reset(seed=3)
        for _ in range(EPISODE - 1):
            _, _, terminated, truncated, info = env.step(np.zeros(1, np.float32))
            assert not (terminated or truncated) and "reset_in_step" not in info
        done_obs, _, terminated, truncated, info = env.step(np.zeros(1, np.float32))
        assert truncated and not terminated and info.get("reset_in_step") is True
        again, _ = env.reset()
        np.testing.assert_array_equal(again, done_obs)
        # and the episode that follows is a whole one: EPISODE steps to its end
        for t in range(1, EPISODE + 1):
            *_, truncated, _ = env.step(np.zeros(1, np.float32))
            assert truncated == (t == EPISODE), t
    finally:
        env.close()


def test_one_session_at_a_time_and_a_closed_one_frees_the_server(server: LocalServer) -> None:
    """README: Isaac Lab holds one env per process, so a second session gets "server busy"."""
    first = _make(server)
    try:
        with pytest.raises(ServerBusyError):
            _make(server)
    finally:
        first.close()
    second = _make(server)
    second.reset(seed=0)
    second.close()


def test_the_task_configs_num_envs_caps_a_session(server: LocalServer) -> None:
    """configs/tasks/isaaclab_cartpole.yaml sets num_envs 256: a session past it is refused at HELLO."""
    with pytest.raises(BadRequestError, match=r"num_envs=257 exceeds this server's limit of 256"):
        _make_vec(server, 257)


def test_client_cfg_attributes_and_overrides_come_after_the_servers(server: LocalServer) -> None:
    """README: client Hydra overrides apply after the server's, then env-cfg attributes by dotted path."""
    env = _make(server)
    assert _steps_to_truncation(env) == EPISODE  # the server's override
    env.close()
    env = _make(server, task_kwargs={"overrides": ["env.episode_length_s=1.0"]})
    assert _steps_to_truncation(env) == 60  # the client's override wins over the server's
    env.close()
    env = _make(server, task_kwargs={"overrides": ["env.episode_length_s=1.0"], "episode_length_s": 0.25})
    assert _steps_to_truncation(env) == 15  # a cfg attribute comes after every override
    env.close()


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        # the 2.x id resolves to 3.x's IsaacContrib-Lift-Cube-Franka, whose cfg fixes its engine (no
        # physics presets) and so cannot take this server's physics=newton_mjwarp
        (
            {"task": "Isaac-Lift-Cube-Franka-v0"},
            r"physics=newton_mjwarp: IsaacContrib-Lift-Cube-Franka has no such physics preset \(its cfg declares no",
        ),
        ({"task_kwargs": {"overrides": ["physics=bogus"]}}, r"physics=bogus: Isaac-Cartpole has no such physics"),
        ({"task_kwargs": {"overrides": ["presets=bogus"]}}, r"\['presets'\] set env-cfg values this server does not"),
        ({"task_kwargs": {"overrides": ["env.scene.robot.spawn.usd_path=/etc/passwd"]}}, r"names a file"),
        ({"task_kwargs": {"episode_lenght_s": 1.0}}, r"episode_lenght_s"),
    ],
)
def test_refusals_name_their_reason_and_the_server_keeps_serving(
    server: LocalServer, kwargs: dict, reason: str
) -> None:
    with pytest.raises(BadRequestError, match=reason):
        _make(server, **kwargs)
    env = _make(server)  # the refused session left nothing behind
    env.reset(seed=0)
    env.close()


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        # issue 22, item 1: a cfg setting past the server's limits, whatever the spelling
        ({"scene.num_envs": 300}, r"\['scene.num_envs'\] set env-cfg values this server does not let clients set"),
        ({"overrides": ["env.scene.num_envs=300"]}, r"\['scene.num_envs'\] set env-cfg values"),
        ({"sim.device": "cuda:0"}, r"\['sim.device'\] set env-cfg values"),
        ({"overrides": ["env.sim.device=cuda:0"]}, r"names code on the server|\['sim.device'\]"),
        ({"overrides": ["hydra.job.chdir=true"]}, r"configures Hydra itself"),
        ({"overrides": ["+env.extra=1"]}, r"adds, deletes or re-packages a key"),
        # item 2: Hydra's grammar reads quoted strings, lists, dicts and interpolations as values
        ({"overrides": ["env.scene.robot.spawn.usd_path='/etc/passwd'"]}, r"is a quoted string"),
        ({"overrides": ['env.scene.robot.spawn.usd_path="/etc/passwd"']}, r"is a quoted string"),
        ({"overrides": ["env.scene.robot.spawn.usd_path=[/etc/passwd]"]}, r"is a list"),
        ({"overrides": ["env.scene.robot.spawn.usd_path={k:/etc/passwd}"]}, r"is a dict"),
        ({"overrides": ["env.scene.robot.spawn.usd_path='~/.ssh/id_rsa'"]}, r"is a quoted string"),
        ({"overrides": ["env.episode_length_s=${oc.env:HOME}"]}, r"names a file|interpolation"),
        ({"overrides": ["env.episode_length_s=a${oc.env:HOME}"]}, r"names a file|interpolation"),
    ],
)
def test_a_cfg_setting_past_the_servers_limits_is_refused_whatever_its_spelling(
    server: LocalServer, kwargs: dict, reason: str
) -> None:
    with pytest.raises(BadRequestError, match=reason):
        _make_vec(server, 2, task_kwargs=kwargs)
    env = _make(server)  # nothing was built, and the server serves on
    env.reset(seed=0)
    env.close()


def test_rgb_array_is_refused_with_the_way_to_watch_a_run(server: LocalServer) -> None:
    with pytest.raises(BadRequestError, match=r"with_state=True and\s+MujocoReplayWrapper"):
        _make(server, render_mode="rgb_array")


def test_sb3_on_isaac_lab_same_step_has_no_terminal_observation_and_ppo_learns(server: LocalServer) -> None:
    """README: Isaac Lab keeps no final observation, so ``RemoteVecEnv`` leaves
    ``terminal_observation`` out (SB3 then treats a truncation as termination), marks the reset row,
    answers ``env_is_wrapped`` from the real wrappers; and SB3's PPO trains and evaluates on it."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import VecMonitor

    from gym_remote.sb3 import RemoteVecEnv

    vec = RemoteVecEnv(_make_vec(server, 4), clip_actions=3.0)  # Isaac Lab's Box(-inf, inf): SB3 needs bounds
    try:
        assert vec.num_envs == 4 and vec.observation_space.shape == (4,)
        assert vec.action_space == gym.spaces.Box(-3.0, 3.0, (1,), np.float32)
        vec.seed(0)
        vec.reset()
        for t in range(1, EPISODE + 1):
            obs, rewards, dones, infos = vec.step(np.zeros((4, 1), np.float32))
            assert obs.shape == (4, 4) and rewards.dtype == np.float32 and dones.dtype == bool
            assert dones.all() == (t == EPISODE), t
        for info in infos:  # the ended step's own info: Isaac Lab's episode log, and no final observation
            assert "terminal_observation" not in info and info["reset_in_step"] and info["TimeLimit.truncated"]
            assert info["log"]["Episode_Termination/time_out"] == 1.0
        # answered from the real wrapper chain of Isaac Lab's env (gym.make's OrderEnforcing): the
        # same for every sub-env, which all live inside it; VecMonitor and evaluate_policy ask it
        assert vec.env_is_wrapped(gym.wrappers.OrderEnforcing) == [True] * 4
        assert vec.env_is_wrapped(Monitor) == [False] * 4 and vec.env_is_wrapped(Monitor, indices=[2]) == [False]
        model = PPO("MlpPolicy", VecMonitor(vec), n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
        model.learn(256)
        assert model.num_timesteps >= 256
        rewards, lengths = evaluate_policy(model, model.get_env(), n_eval_episodes=4, return_episode_rewards=True)
        # VecMonitor's episodes: up to 30 steps each (a barely trained policy may push the cart out first)
        assert len(lengths) == 4 and all(1 <= n <= EPISODE for n in lengths) and all(np.isfinite(rewards))
    finally:
        vec.close()


def test_set_state_on_a_batch_reproduces_every_sub_envs_next_step(server: LocalServer) -> None:
    """A state written to 4 sub-envs at once (Warp took only a single env's columns before) gives
    the step each sub-env took from it."""
    venv = _make_vec(server, 4, with_state=True)
    try:
        remote = venv.unwrapped
        venv.reset(seed=5)
        actions = np.linspace(-1.0, 1.0, 4, dtype=np.float32)[:, None]
        for _ in range(5):
            venv.step(actions)
        recorded = remote.get_state()
        assert recorded.shape == (4, remote.state_schema.size)
        want, *_ = venv.step(actions)
        for _ in range(3):
            venv.step(-actions)  # wander off
        assert remote.set_state(recorded) is None
        np.testing.assert_allclose(remote.get_state(), recorded, atol=1e-6)
        got, *_ = venv.step(actions)
        np.testing.assert_allclose(got, want, atol=1e-5)
    finally:
        venv.close()


def test_compute_final_obs_gives_gymnasiums_final_obs_and_sb3_its_terminal_observation(server: LocalServer) -> None:
    """With Isaac Lab 3.x's ``cfg.compute_final_obs`` (a client's ``task_kwargs``), a same_step vector
    client gets Gymnasium's masked ``final_obs``/``final_info`` for the rows that reset, and SB3 its
    ``terminal_observation``; Isaac Lab's own unmasked ``extras["final_obs"]`` never reaches a client."""
    from gym_remote.sb3 import RemoteVecEnv

    venv = _make_vec(server, 2, task_kwargs={"compute_final_obs": True})
    try:
        assert venv.unwrapped.metadata["final_obs"] is True
        obs, _ = venv.reset(seed=0)
        for t in range(1, EPISODE + 3):
            last = obs
            obs, _, _, truncated, info = venv.step(np.zeros((2, 1), np.float32))
            if t == EPISODE:
                assert truncated.all() and info["_final_obs"].all() and info["_final_info"].all()
                for i in range(2):
                    final = info["final_obs"][i]
                    assert final.shape == (4,) and final.dtype == np.float32
                    assert np.abs(final - last[i]).max() < 0.5  # one step on from the last obs, not a reset
                    assert not np.array_equal(final, obs[i])  # obs is already the next episode's first
            else:
                assert "final_obs" not in info, t  # only on steps that reset, and never Isaac Lab's own
    finally:
        venv.close()
    vec = RemoteVecEnv(_make_vec(server, 2, task_kwargs={"compute_final_obs": True}), clip_actions=3.0)
    try:
        vec.reset()
        for _ in range(EPISODE):
            _, _, dones, infos = vec.step(np.zeros((2, 1), np.float32))
        assert dones.all() and all(info["terminal_observation"].shape == (4,) for info in infos)
        assert all(info["TimeLimit.truncated"] for info in infos)
    finally:
        vec.close()
