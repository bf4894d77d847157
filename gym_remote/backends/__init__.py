"""Server backends: how a session's env gets built from the task a client names.

- ``gymnasium``: any registered Gymnasium id (``CartPole-v1``, ``gym_remote/StackCube-v0``...).
- ``python``: a ``pkg.module:factory`` path for custom envs, old-style ones included.
- ``isaaclab`` / ``roboverse``: NVIDIA IsaacSim through Isaac Lab or RoboVerse MetaSim (GPU box).

Each returns a :data:`gym_remote.server.SessionFactory`. Imports of simulator packages happen
inside the factories so that ``gym-remote serve --help`` works everywhere.

A factory may have a ``validate()`` method, which the server calls once before it reports READY
(:func:`gym_remote.server.validate_factory`): it checks what the server was told to serve (the task
id, its keywords) and raises :class:`~gym_remote.errors.ConfigError` with one clear paragraph (close
matches by :func:`~gym_remote.errors.did_you_mean`). The ``gymnasium`` and ``python`` backends build
one env there; a simulator that is slow to build can check the id and keywords against its registry
and config instead. Factories without it are not checked.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from gym_remote.config import BACKENDS
from gym_remote.errors import ConfigError, did_you_mean
from gym_remote.server import SessionFactory

#: Sub-envs one session may ask for unless ``serve --max-envs`` says otherwise. The gymnasium and
#: python backends build a Python env per sub-env, one after the other on the serving thread; Isaac
#: Lab and MetaSim allocate one batch on the device (and cap it further with their ``num_envs`` setting).
DEFAULT_MAX_ENVS = {"gymnasium": 1024, "python": 1024, "isaaclab": 16384, "roboverse": 16384}

#: Backends that take the ``vectorization`` and ``max_processes`` options (the natively batched ones do not).
PYTHON_ENV_BACKENDS = ("gymnasium", "python")

#: Worker processes ``--vectorization async`` may run at once, over all sessions: twice the CPUs.
DEFAULT_MAX_PROCESSES = max(2, 2 * (os.cpu_count() or 1))


def make_factory(
    backend: str, task: str | None, task_kwargs: dict[str, Any] | None = None, **options: Any
) -> SessionFactory:
    """The session factory of ``backend`` serving ``task`` by default."""
    kwargs = dict(task_kwargs or {})
    if backend == "gymnasium":
        from gym_remote.backends.gym import gymnasium_factory

        return gymnasium_factory(task, kwargs, **options)
    if backend == "python":
        from gym_remote.backends.gym import python_factory

        if not task:
            raise ConfigError(
                "the python backend needs an entry point: serve --backend python --task pkg.module:factory"
            )
        return python_factory(task, kwargs, **options)
    if backend == "isaaclab":
        from gym_remote.backends.isaaclab import isaaclab_factory

        return isaaclab_factory(task, kwargs, **options)
    if backend == "roboverse":
        from gym_remote.backends.roboverse import roboverse_factory

        return roboverse_factory(task, kwargs, **options)
    raise ConfigError(f"unknown backend {backend!r}.{did_you_mean(backend, BACKENDS)} Backends: {', '.join(BACKENDS)}")


def load_entry_point(path: str) -> Callable[..., Any]:
    """Resolve ``'pkg.module:attr'`` (trusted server-side configuration, never client input)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"entry point {path!r} must look like 'pkg.module:factory'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
