"""Shared fixtures: real server processes on loopback."""

from __future__ import annotations

import os
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
