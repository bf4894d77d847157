"""Isaac Lab's own trainers through gym-remote, against the REAL Isaac Lab 3.0.0 (Newton on the CPU).

rsl_rl: :class:`gym_remote.rsl_rl.RemoteRslRlVecEnv` keeps rsl_rl's ``VecEnv`` contract, gives the
same outputs as Isaac Lab's own ``RslRlVecEnvWrapper`` run in-process (the oracle, run in the Isaac
Lab venv by ``examples/bench_rsl_rl_parity.py``), and ``OnPolicyRunner`` learns with Isaac Lab's
recipe. skrl: its Gymnasium wrapper over a ``same_step`` ``RemoteVectorEnv`` trains with Isaac Lab's
skrl recipe. The server runs in the Isaac Lab venv, the client here (no Isaac Lab).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict

import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)
from gym_remote.client_session import ConnectOptions
from gym_remote.errors import BadRequestError, RemoteEnvError
from gym_remote.local import LocalServer
from gym_remote.protocol import Kind
from gym_remote.rsl_rl import RemoteRslRlVecEnv, split_threads
from gym_remote.vector import RemoteVectorEnv

pytestmark = pytest.mark.isaaclab

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CONNECT = 300.0  # seconds: a cold Warp kernel cache compiles for about 100 s on the first env
SHORT = {"episode_length_s": 0.25}  # Isaac Lab's Cartpole at 60 steps/s: 15 steps per episode


def _example(name: str) -> Any:
    """Import ``examples/NAME.py`` (scripts, not a package)."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(EXAMPLES))


def _run_example(python: str, script: str, *args: str) -> Any:
    """Run an example script in the Isaac Lab venv; its last stdout line, as JSON."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [python, str(EXAMPLES / script), *args], capture_output=True, text=True, timeout=600, env=env, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _server(python: str, assets: Path, **settings: Any) -> LocalServer:
    return LocalServer(
        "isaaclab",
        "Isaac-Cartpole",
        {"asset_root": str(assets), **settings},
        python=python,
        startup_timeout=CONNECT,
        env={"PYTHONPATH": str(ROOT)},
    )


@pytest.fixture(scope="module")
def cartpole(isaaclab_python: str, isaaclab_assets: Path) -> Iterator[LocalServer]:
    """A server with its default settings: one observation group (``policy``) served as a Box."""
    with _server(isaaclab_python, isaaclab_assets) as server:
        yield server


def _env(server: LocalServer, n: int, **kwargs: Any) -> RemoteRslRlVecEnv:
    return RemoteRslRlVecEnv(
        num_envs=n, host=server.local_host, port=server.local_port, connect_timeout=CONNECT, **kwargs
    )


# ------------------------------------------------------------------------------- the VecEnv contract


def test_vecenv_contract_shapes_dtypes_time_outs_and_log(cartpole: LocalServer) -> None:
    with _env(cartpole, 8, task_kwargs=SHORT, seed=0) as env:
        assert isinstance(env, VecEnv)
        assert (env.num_envs, env.num_actions, env.max_episode_length) == (8, 1, 15)
        assert env.device == torch.device("cpu") and env.cfg.task == "Isaac-Cartpole"
        assert not env.cfg.is_finite_horizon and env.cfg.task_kwargs == SHORT
        obs = env.get_observations()
        assert isinstance(obs, TensorDict) and tuple(obs.batch_size) == (8,) and list(obs.keys()) == ["policy"]
        assert obs["policy"].dtype == torch.float32 and obs["policy"].shape == (8, 4)
        for t in range(1, 16):
            obs, rewards, dones, extras = env.step(torch.zeros(8, 1))
            assert obs is env.get_observations() and obs["policy"].shape == (8, 4)
            assert rewards.dtype == torch.float32 and rewards.shape == (8,)
            assert dones.dtype == torch.long and dones.shape == (8,)
            assert set(extras) == {"log", "time_outs"}, extras.keys()
            time_outs = extras["time_outs"]
            assert time_outs.dtype == torch.bool and time_outs.shape == (8,)
            assert all(isinstance(v, float) for v in extras["log"].values())
            if t < 15:  # zero force from a near-upright start: nothing leaves the track before the limit
                assert not dones.any() and not time_outs.any()
                assert env.episode_length_buf.tolist() == [t] * 8
            else:  # Isaac Lab's clock: every sub-env truncated at step 15, reset inside that step
                assert time_outs.all() and dones.tolist() == [1] * 8
                assert env.episode_length_buf.tolist() == [0] * 8
                assert extras["log"]["Episode_Termination/time_out"] == 1.0
        env.close()
        env.close()  # idempotent
        with pytest.raises(RemoteEnvError, match="closed"):
            env.step(torch.zeros(8, 1))


def test_written_episode_length_buf_ends_episodes_as_isaaclab_does(cartpole: LocalServer) -> None:
    with _env(cartpole, 4, task_kwargs=SHORT, seed=0) as env:
        written = torch.tensor([0, 3, 7, 14])  # what OnPolicyRunner.learn(init_at_random_ep_len=True) does
        env.episode_length_buf = written
        assert env.episode_length_buf.dtype == torch.long
        ends = {}
        for t in range(1, 31):
            _, _, dones, extras = env.step(torch.zeros(4, 1))
            assert torch.equal(dones.bool(), extras["time_outs"])  # zero force: only time-outs end episodes
            for i in dones.nonzero().flatten().tolist():
                ends.setdefault(i, []).append(t)
        # each count reaches 15 first, then every episode is 15 steps long
        assert ends == {0: [15, 30], 1: [12, 27], 2: [8, 23], 3: [1, 16]}, ends
        assert env.episode_length_buf.tolist() == [0, 3, 7, 14]
        with pytest.raises(ValueError, match=r"shape \(4,\)"):
            env.episode_length_buf = torch.zeros(5)


def test_written_counts_are_isaaclabs_own_clocks_and_bad_ones_are_refused(cartpole: LocalServer) -> None:
    """The counts go to the server's episode_length_buf: a plain RemoteVectorEnv, which counts nothing
    itself, sees Isaac Lab end those episodes inside its step; what does not fit is refused on both ends."""
    venv = RemoteVectorEnv(
        4,
        cartpole.local_host,
        cartpole.local_port,
        task_kwargs=SHORT,
        autoreset_mode="same_step",
        options=ConnectOptions(connect_timeout=CONNECT),
    )
    try:
        assert "set_episode_lengths" in venv.remote_methods and venv.time_limit == 15
        venv.reset(seed=0)
        venv.set_episode_lengths(np.array([0, 3, 7, 14]))
        ends = {}
        for t in range(1, 16):
            _, _, terminated, truncated, _ = venv.step(np.zeros((4, 1), np.float32))
            assert not terminated.any()
            for i in np.flatnonzero(truncated).tolist():
                ends.setdefault(i, []).append(t)
        assert ends == {0: [15], 1: [12], 2: [8], 3: [1]}, ends
        for bad, error, match in [
            (np.array([0.5, 1, 2, 3]), TypeError, "integer"),
            (np.array([True, False, True, False]), TypeError, "integer"),
            (np.zeros(5, np.int64), ValueError, r"shape \(4,\)"),
            (np.array([0, 1, 2, 16]), ValueError, r"\[0, 15\]"),
            (np.array([-1, 1, 2, 3]), ValueError, r"\[0, 15\]"),
        ]:
            with pytest.raises(error, match=match):
                venv.set_episode_lengths(bad)
        # the server checks for itself (a client that skips this side's checks)
        shard = venv._shards[0]
        for bad, match in [
            (np.array([0, 1, 2, 2**40]), r"\[0, 15\]"),
            (np.array([0.0, 1, 2, 3]), "integer"),
            ("all", "integer"),
        ]:
            body = {"name": "set_episode_lengths", "args": [bad], "kwargs": {}}
            with pytest.raises(BadRequestError, match=match):
                venv._shards.request(Kind.CALL, [body], [shard])
        venv.step(np.zeros((4, 1), np.float32))  # the session goes on
    finally:
        venv.close()


def test_clip_actions_clamps_before_sending(cartpole: LocalServer) -> None:
    def first_obs(action: float, clip: float | None) -> torch.Tensor:
        with _env(cartpole, 2, seed=3, clip_actions=clip) as env:
            return env.step(torch.full((2, 1), action))[0]["policy"].clone()

    clipped = first_obs(50.0, 1.0)
    assert torch.equal(clipped, first_obs(1.0, None))
    assert not torch.equal(clipped, first_obs(50.0, None))
    with _env(cartpole, 2, clip_actions=1.0) as env:
        assert env.action_space == gym.spaces.Box(-1.0, 1.0, (2, 1), np.float32)
        with pytest.raises(ValueError, match=r"expected \(2, 1\)"):
            env.step(torch.zeros(3, 1))
    with pytest.raises(ValueError, match="clip_actions"):
        RemoteRslRlVecEnv(num_envs=2, host="127.0.0.1", port=1, clip_actions=-1.0)


def test_refuses_other_autoreset_modes_and_non_box_actions(serve: Any) -> None:
    server = serve("CartPole-v1")
    venv = RemoteVectorEnv(2, host=server.local_host, port=server.local_port, task="CartPole-v1")
    with pytest.raises(ValueError, match="same_step"):
        RemoteRslRlVecEnv(venv)
    venv.close()
    with pytest.raises(TypeError, match="Box action space"):
        RemoteRslRlVecEnv(num_envs=2, host=server.local_host, port=server.local_port, task="CartPole-v1")


# ------------------------------------------------------------------------------- Isaac Lab as the oracle


@pytest.mark.parametrize("written", [None, [0, 2, 4, 5]], ids=["as-reset", "episode_length_buf-written"])
def test_one_episode_matches_isaaclabs_own_wrapper_in_process(
    cartpole: LocalServer, isaaclab_python: str, isaaclab_assets: Path, written: list[int] | None
) -> None:
    """Step for step equal to Isaac Lab's RslRlVecEnvWrapper in-process, with the runner's random
    episode lengths written or not (then three episodes end early: the written counts are the
    server's Isaac Lab clocks, so its termination manager counts those time-outs as in-process)."""
    parity = _example("bench_rsl_rl_parity")
    n, steps, length_s = 4, 9, 0.1  # 6 steps per episode: a truncation and the reset inside a step
    write = ("--write-lengths", ",".join(map(str, written))) if written else ()
    ref = _run_example(
        isaaclab_python,
        "bench_rsl_rl_parity.py",
        *("--inprocess-steps", str(steps), "--num-envs", str(n), "--seed", "5"),
        *("--episode-length-s", str(length_s), "--asset-root", str(isaaclab_assets), *write),
    )
    with _env(cartpole, n, task_kwargs={"episode_length_s": length_s}, seed=5) as env:
        if written:
            env.episode_length_buf = torch.tensor(written)  # as OnPolicyRunner.learn(init_at_random_ep_len=True)
        assert (env.max_episode_length, env.num_actions) == (ref["max_episode_length"], ref["num_actions"])
        obs = env.get_observations()
        assert {k: str(v.dtype) for k, v in obs.items()} == ref["obs_dtypes"]
        np.testing.assert_allclose(obs["policy"].numpy(), ref["obs0"]["policy"], atol=1e-6)
        truncated = 0
        for t, want in enumerate(ref["steps"]):
            got = parity.describe(*env.step(parity.step_actions(t, n, env.num_actions)))
            np.testing.assert_allclose(got["obs"]["policy"], want["obs"]["policy"], atol=1e-5, err_msg=f"step {t}")
            np.testing.assert_allclose(got["rew"], want["rew"], rtol=1e-5, atol=1e-6, err_msg=f"step {t}")
            assert (got["dones"], got["time_outs"]) == (want["dones"], want["time_outs"]), t
            assert (got["dtypes"], got["extras_keys"]) == (want["dtypes"], want["extras_keys"]), t
            assert got["log"].keys() == want["log"].keys()
            keys = list(want["log"])  # termination counts included: the written clocks are Isaac Lab's own
            np.testing.assert_allclose([got["log"][k] for k in keys], [want["log"][k] for k in keys], atol=1e-5)
            truncated += sum(want["time_outs"])
        assert truncated >= (4 if written else 1)  # the check covered time-outs


def test_the_examples_recipe_is_isaaclabs(isaaclab_python: str) -> None:
    train = _example("train_rsl_rl")
    assert _run_example(isaaclab_python, "train_rsl_rl.py", "--print-recipe") == train.RECIPES["Isaac-Cartpole"]
    assert train.recipe("Isaac-Cartpole")[0] == train.RECIPES["Isaac-Cartpole"]  # no Isaac Lab here: the copy
    skrl = _example("train_skrl")
    assert _run_example(isaaclab_python, "train_skrl.py", "--print-recipe") == skrl.RECIPES["Isaac-Cartpole"]


def test_every_observation_group_as_a_tensordict(isaaclab_python: str, isaaclab_assets: Path) -> None:
    with _server(isaaclab_python, isaaclab_assets, obs_group=None) as server, _env(server, 3) as env:
        assert env.cfg.metadata["observation_group"] is None
        assert isinstance(env.unwrapped.single_observation_space, gym.spaces.Dict)
        obs, _, _, _ = env.step(torch.zeros(3, 1))
        assert list(obs.keys()) == ["policy"] and obs["policy"].shape == (3, 4)  # Cartpole has one group


# ------------------------------------------------------------------------------- training


def _improved(per_iteration: np.ndarray) -> bool:
    """The mean step reward of the last 5 iterations beats the first 10's by one step's alive bonus (1/60).

    Isaac Lab's Cartpole rewards are rates times ``step_dt`` (1/60 s). At 128 envs a random policy lets
    the pole fall (about -2/60 a step); rsl_rl's recipe keeps it up from about iteration 20 (+0.8/60).
    """
    return bool(per_iteration[-5:].mean() > per_iteration[:10].mean() + 1 / 60)


class _Rewards(RemoteRslRlVecEnv):
    """Records each step's mean reward."""

    def step(self, actions: torch.Tensor) -> Any:
        out = super().step(actions)
        self.means = [*getattr(self, "means", []), float(out[1].mean())]
        self.threads = {*getattr(self, "threads", set()), torch.get_num_threads()}
        return out


def _recording(update: Any, seen: set[int]) -> Any:
    def recorded(*args: Any, **kwargs: Any) -> Any:
        seen.add(torch.get_num_threads())
        return update(*args, **kwargs)

    return recorded


def test_on_policy_runner_learns_with_isaaclabs_recipe(cartpole: LocalServer) -> None:
    from rsl_rl.runners import OnPolicyRunner

    cfg = _example("train_rsl_rl").recipe("Isaac-Cartpole")[0]
    cfg["device"] = "cpu"
    iterations, steps = 30, cfg["num_steps_per_env"]
    torch.manual_seed(0)
    env = _Rewards(num_envs=128, host=cartpole.local_host, port=cartpole.local_port, connect_timeout=CONNECT, seed=0)
    threads, during_updates = torch.get_num_threads(), set()
    with env:
        runner = OnPolicyRunner(env, cfg, log_dir=None, device="cpu")
        runner.alg.update = _recording(runner.alg.update, during_updates)
        split_threads(runner, rollout=1, update=2)  # as examples/train_rsl_rl.py does
        try:
            runner.learn(iterations, init_at_random_ep_len=True)
        finally:
            torch.set_num_threads(threads)
    assert (env.threads, during_updates) == ({1}, {2})  # rollouts on one thread, updates on two
    with pytest.raises(ValueError, match="int >= 1"):
        split_threads(runner, rollout=0)
    per_iteration = np.asarray(env.means).reshape(iterations, steps).mean(axis=1)
    assert all(math.isfinite(p.sum().item()) for p in runner.alg.get_policy().parameters())
    assert _improved(per_iteration), (per_iteration * 60).round(2).tolist()


def test_skrl_gymnasium_wrapper_trains_with_isaaclabs_skrl_recipe(cartpole: LocalServer) -> None:
    """skrl's own Gymnasium wrapper over a same_step RemoteVectorEnv: skrl's contract and its Runner.

    Isaac Lab's skrl recipe learns slower than rsl_rl's (150 iterations of 4096 envs): a few
    iterations here check that the update runs on what the server sends and moves the policy.
    """
    from skrl.envs.wrappers.torch import wrap_env
    from skrl.utils.runner.torch import Runner

    cfg = _example("train_skrl").recipe("Isaac-Cartpole")[0]
    n, rollouts, iterations = 32, cfg["agent"]["rollouts"], 4
    cfg["trainer"].update(timesteps=rollouts * iterations, headless=True, disable_progressbar=True)
    cfg["trainer"]["close_environment_at_exit"] = False
    cfg["agent"]["experiment"].update(write_interval=0, checkpoint_interval=0)
    venv = gym.make_vec(
        "Remote-IsaacSim-v0",
        num_envs=n,
        host=cartpole.local_host,
        port=cartpole.local_port,
        autoreset_mode="same_step",
        connect_timeout=CONNECT,
    )
    env = wrap_env(venv, wrapper="gymnasium")
    try:
        assert env.num_envs == n and env.observation_space.shape == (4,) and env.action_space.shape == (1,)
        obs, _ = env.reset()
        assert isinstance(obs, torch.Tensor) and obs.shape == (n, 4) and obs.dtype == torch.float32
        obs, reward, terminated, truncated, info = env.step(torch.zeros(n, 1))
        assert obs.shape == (n, 4) and reward.shape == terminated.shape == truncated.shape == (n, 1)
        assert (reward.dtype, terminated.dtype, truncated.dtype) == (torch.float32, torch.bool, torch.bool)
        assert set(info["log"]) >= {"Episode_Termination/time_out", "Episode_Reward/alive"}
        runner = Runner(env, cfg)
        before = [p.detach().clone() for p in runner.agent.models["policy"].parameters()]
        runner.run("train")
        after = list(runner.agent.models["policy"].parameters())
        assert all(torch.isfinite(p).all() for p in after)
        assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    finally:
        env.close()
