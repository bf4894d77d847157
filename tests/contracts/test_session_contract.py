"""One contract for every backend's sessions, checked through the real client against real servers.

:class:`SessionContract` holds what any served task must do as a ``gym.make("Remote-IsaacSim-v0")``
env, whatever simulator is behind it: the spaces hold what reset and step return, with Gymnasium's
types; equal seeds give equal starts; a state read with ``get_state`` and written back with
``set_state`` reproduces the next step (or, for a task without state, both are refused with a
``BadRequestError`` saying so); a refused request leaves the session usable; a closed session is gone from the
server. Each backend subclasses it with a ``served`` fixture: Gymnasium's own envs and the MuJoCo
stand-in in this interpreter's server, the REAL Isaac Lab 3.0 and the REAL MetaSim each in their own
venv (``scripts/build_isaaclab_venv.sh``, ``scripts/build_metasim_venv.sh``; a missing venv fails
the run and names the script).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)
from gym_remote.errors import BadRequestError, RemoteEnvError
from gym_remote.local import LocalServer
from gym_remote_apps.venvs import SERVER_VENVS, venv_root

ROOT = Path(__file__).resolve().parents[2]
CONNECT = 300.0  # seconds: a cold Warp kernel cache compiles for minutes on Isaac Lab's first env


@dataclass
class Served:
    """A running server and how to make one of its envs."""

    server: LocalServer
    task: str | None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def make(self, **kwargs: Any) -> gym.Env:
        return gym.make(
            "Remote-IsaacSim-v0",
            host=self.server.local_host,
            port=self.server.local_port,
            task=self.task,
            connect_timeout=CONNECT,
            timeout=120.0,
            **{**self.kwargs, **kwargs},
        )


def assert_close(actual: Any, expected: Any, atol: float, path: str = "obs") -> None:
    """Observations (arrays, or dicts of them for Dict spaces) equal within ``atol``."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), path
        for key in expected:
            assert_close(actual[key], expected[key], atol, f"{path}[{key!r}]")
    else:
        np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), atol=atol, rtol=0, err_msg=path)


class SessionContract:
    """Subclass with a class-scoped ``served`` fixture (a classmethod); set the class attributes the task needs."""

    #: whether the task's sessions have a state (``get_state``/``set_state``)
    has_state: ClassVar[bool] = True
    #: tolerance of the step replayed from a restored state (physics engines differ in what a
    #: state write leaves behind: warm starts, contact caches, float32 storage)
    restore_atol: ClassVar[float] = 0.0
    #: restore a state taken at rest (right after reset), for simulators that cannot write velocities
    #: (``set_state`` then reports them in ``not_restored``)
    restore_from_rest: ClassVar[bool] = False
    #: whether the server hosts one session at a time (a simulator process with one scene)
    one_session: ClassVar[bool] = False

    @staticmethod
    def actions(env: gym.Env, n: int, seed: int = 0) -> list[Any]:
        env.action_space.seed(seed)
        return [env.action_space.sample() for _ in range(n)]

    def test_spaces_hold_what_reset_and_step_return(self, served: Served) -> None:
        env = served.make()
        try:
            obs, info = env.reset(seed=0)
            assert env.observation_space.contains(obs), f"reset's {obs!r} is not in {env.observation_space}"
            assert isinstance(info, dict)
            for action in self.actions(env, 5):
                obs, reward, terminated, truncated, info = env.step(action)
                assert env.observation_space.contains(obs)
                assert isinstance(reward, (float, int, np.floating, np.integer)) and np.isfinite(reward)
                assert isinstance(terminated, (bool, np.bool_)) and isinstance(truncated, (bool, np.bool_))
                assert isinstance(info, dict)
                if terminated or truncated:
                    env.reset()
        finally:
            env.close()

    def test_equal_seeds_give_equal_starts(self, served: Served) -> None:
        env = served.make()
        try:
            first = env.reset(seed=3)[0]
            again = env.reset(seed=3)[0]
            assert data_equivalence(first, again, exact=True)
        finally:
            env.close()

    def test_a_restored_state_reproduces_the_next_step(self, served: Served) -> None:
        env = served.make()
        remote = env.unwrapped
        try:
            env.reset(seed=1)
            for action in self.actions(env, 0 if self.restore_from_rest else 3, seed=1):
                env.step(action)
            if not self.has_state:
                with pytest.raises(BadRequestError, match="state"):
                    remote.get_state()
                with pytest.raises(BadRequestError, match="state"):
                    remote.set_state(np.zeros(3))
                return
            state = remote.get_state()
            action = self.actions(env, 1, seed=2)[0]
            expected = env.step(action)[0]
            env.step(self.actions(env, 1, seed=3)[0])  # move away from it
            report = remote.set_state(state)
            assert report is None or report.get("not_restored") == [], f"set_state reported {report}"
            np.testing.assert_allclose(np.asarray(remote.get_state()), np.asarray(state), atol=1e-6, rtol=0)
            again = env.step(action)[0]
            assert_close(again, expected, self.restore_atol)
        finally:
            env.close()

    def test_a_refused_request_leaves_the_session_usable(self, served: Served) -> None:
        env = served.make()
        remote = env.unwrapped
        try:
            env.reset(seed=0)
            with pytest.raises((RemoteEnvError, ValueError)):
                remote.set_state({"not": "a state"})
            with pytest.raises((RemoteEnvError, ValueError)):
                remote.set_state(np.zeros(3))  # the wrong size for every task here
            obs = env.step(self.actions(env, 1)[0])[0]
            assert env.observation_space.contains(obs)
        finally:
            env.close()

    def test_a_closed_session_is_gone_from_the_server(self, served: Served) -> None:
        env = served.make()
        action = self.actions(env, 1)[0]
        watcher = None if self.one_session else served.make()
        try:
            before = env.unwrapped.ping()["sessions"]
            env.close()
            if watcher is None:  # the one slot is free again: a new session opens at once
                watcher = served.make()
                assert watcher.unwrapped.ping()["sessions"] == before == 1
            else:
                assert watcher.unwrapped.ping()["sessions"] == before - 1
            with pytest.raises(RemoteEnvError, match="closed"):
                env.unwrapped.step(action)
        finally:
            if watcher is not None:
                watcher.close()
        assert served.server.alive


# -------------------------------------------------------------------------- in this interpreter


class TestGymnasiumCartPole(SessionContract):
    """A Gymnasium env with neither MuJoCo nor state hooks: state requests are refused."""

    has_state = False

    @pytest.fixture(scope="class")
    @classmethod
    def served(cls) -> Iterator[Served]:
        with LocalServer("gymnasium", "CartPole-v1") as server:
            yield Served(server, "CartPole-v1")


class TestGymnasiumMujocoHopper(SessionContract):
    """A Gymnasium MuJoCo env: its state is read from the MuJoCo model, exactly restorable."""

    @pytest.fixture(scope="class")
    @classmethod
    def served(cls) -> Iterator[Served]:
        with LocalServer("gymnasium", "Hopper-v5") as server:
            yield Served(server, "Hopper-v5")


class TestStackCubeStandIn(SessionContract):
    """The built-in MuJoCo stand-in task (what a newcomer's first command serves)."""

    @pytest.fixture(scope="class")
    @classmethod
    def served(cls) -> Iterator[Served]:
        with LocalServer("gymnasium", "gym_remote/StackCube-v0") as server:
            yield Served(server, "gym_remote/StackCube-v0")


# ------------------------------------------------------------------ the real libraries, own venvs


@pytest.mark.isaaclab
class TestRealIsaacLabCartpole(SessionContract):
    """Isaac Lab 3.0's Isaac-Cartpole on Newton (Warp, CPU), served from the Isaac Lab venv."""

    restore_atol = 1e-5
    one_session = True

    @pytest.fixture(scope="class")
    @classmethod
    def served(cls, isaaclab_python: str, isaaclab_assets: Path) -> Iterator[Served]:
        settings = {"asset_root": str(isaaclab_assets)}
        env = {"PYTHONPATH": str(ROOT)}
        with LocalServer(
            "isaaclab", "Isaac-Cartpole", settings, python=isaaclab_python, startup_timeout=CONNECT, env=env
        ) as server:
            yield Served(server, "Isaac-Cartpole")


@pytest.mark.isaaclab
class TestRealIsaacLabFrankaStack(SessionContract):
    """The Franka stacking three cubes on Isaac Lab 3.0 (``serve --config isaaclab_stack_cube``):
    position-controlled joints and contacts, unlike Cartpole's effort-driven joints."""

    restore_atol = 1e-5  # measured: 1.2e-7, float32's last bit
    one_session = True

    @pytest.fixture(scope="class")
    @classmethod
    def served(cls, isaaclab_python: str, isaaclab_assets: Path) -> Iterator[Served]:
        with LocalServer(
            "isaaclab",
            None,
            {"asset_root": str(isaaclab_assets)},
            extra_args=["--config", "isaaclab_stack_cube"],
            python=isaaclab_python,
            startup_timeout=CONNECT,
            env={"PYTHONPATH": str(ROOT)},
        ) as server:
            yield Served(server, None)  # the task the config names


@pytest.mark.metasim
class TestRealMetaSimStackCube(SessionContract):
    """RoboVerse MetaSim's stack_cube on its MuJoCo handler, served from the MetaSim venv.

    Its handler zeroes velocities on a state write (``set_state`` reports that), so the state
    restored is one at rest.
    """

    restore_atol = 1e-5
    restore_from_rest = True
    one_session = True

    @pytest.fixture(scope="class")
    @classmethod
    def served(cls) -> Iterator[Served]:
        folder, build = SERVER_VENVS["metasim"]
        venv = venv_root() / folder
        python = venv / "bin" / "python"
        if not python.exists():
            pytest.fail(f"the MetaSim venv is missing at {venv}; build it with `{build}`")
        settings = {"simulator": "mujoco", "data_dir": str(venv / "data")}
        with LocalServer("roboverse", "stack_cube", settings, python=str(python), startup_timeout=240) as server:
            yield Served(server, "stack_cube")
