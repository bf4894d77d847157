"""gym-remote: drive a simulator on another machine as a local Gymnasium env.

Importing the package registers ``Remote-IsaacSim-v0`` (with a vector entry point for
``gym.make_vec``) and the built-in tasks, so ``gym.make("gym_remote:Remote-IsaacSim-v0")`` works.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import Any

import gymnasium as gym

from gym_remote.errors import (
    BadRequestError,
    ConnectError,
    LaunchError,
    ProtocolError,
    RemoteEnvError,
    RemoteTimeoutError,
    ServerBusyError,
    ServerError,
    SessionLostError,
    SpaceError,
    StateError,
    VersionMismatchError,
)


def _register() -> None:
    specs: dict[str, dict[str, Any]] = {
        "Remote-IsaacSim-v0": dict(
            entry_point="gym_remote.env:RemoteEnv",
            vector_entry_point="gym_remote.vector:RemoteVectorEnv",
            nondeterministic=True,  # the remote simulator decides; IsaacSim on a GPU is not bit-exact
        ),
        "gym_remote/StackCube-v0": dict(entry_point="gym_remote.tasks.stack_cube:StackCubeEnv", max_episode_steps=250),
        "gym_remote/Payload-v0": dict(entry_point="gym_remote.tasks.payload:PayloadEnv", disable_env_checker=True),
    }
    for env_id, kwargs in specs.items():
        if env_id not in gym.registry:
            gym.register(env_id, **kwargs)


_register()

from gym_remote.env import RemoteEnv  # noqa: E402

__all__ = [
    "BadRequestError",
    "ConnectError",
    "LaunchError",
    "ProtocolError",
    "RemoteEnv",
    "RemoteEnvError",
    "RemoteTimeoutError",
    "ServerBusyError",
    "ServerError",
    "SessionLostError",
    "SpaceError",
    "StateError",
    "VersionMismatchError",
    "__version__",
]
