"""Shared fixtures: real server processes on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Headless MuJoCo: decided before anything imports mujoco.
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
sys.path.insert(0, str(ROOT))

import tests.envs  # noqa: E402,F401  (registers the test envs in this process too)
from gym_remote.local import LocalServer  # noqa: E402


@pytest.fixture
def serve() -> Iterator[Callable[..., LocalServer]]:
    """Start ``gym-remote serve`` subprocesses (with the test envs importable); stop them after."""
    servers: list[LocalServer] = []

    def start(task: str = "CartPole-v1", backend: str = "gymnasium", *args: str, **kwargs) -> LocalServer:
        extra = ["--import", "tests.envs", *args] if backend == "gymnasium" else list(args)
        server = LocalServer(backend, task, extra_args=extra, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def in_venv(python: str, module: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` in a server venv, serving this checkout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([python, "-m", module, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="session")
def isaaclab_python() -> str:
    """The Isaac Lab 3.0 venv's Python (scripts/build_isaaclab_venv.sh; CI builds it: missing is a failure)."""
    from gym_remote_apps.venvs import server_python

    try:
        return server_python("isaaclab")
    except FileNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def isaaclab_assets(isaaclab_python: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh offline asset root written by ``gym_remote.backends.isaaclab.assets`` (every stand-in)."""
    root = tmp_path_factory.mktemp("isaac-assets")
    out = in_venv(isaaclab_python, "gym_remote.backends.isaaclab.assets", str(root), timeout=300)
    assert out.returncode == 0, out.stderr
    return root
