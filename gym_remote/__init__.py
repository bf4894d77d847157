"""gym-remote: drive a simulator on another machine as a local Gymnasium env.

Importing the package registers ``Remote-IsaacSim-v0`` (with a vector entry point for
``gym.make_vec``), the built-in tasks and the ids in ``GYM_REMOTE_ENVS``, so
``gym.make("gym_remote:Remote-IsaacSim-v0")`` works; :func:`register` binds an id of your own to a
server and task (see :mod:`gym_remote.registration`).
"""

from __future__ import annotations

__version__ = "0.1.0"

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
from gym_remote.registration import register, register_builtin, register_from_environment

register_builtin()
register_from_environment()  # GYM_REMOTE_ENVS: ids bound to a server, for scripts that only gym.make(id)

from gym_remote.client_session import ConnectOptions, ServerHandle  # noqa: E402
from gym_remote.env import RemoteEnv  # noqa: E402

__all__ = [
    "BadRequestError",
    "ConnectError",
    "ConnectOptions",
    "LaunchError",
    "ProtocolError",
    "RemoteEnv",
    "RemoteEnvError",
    "RemoteTimeoutError",
    "ServerBusyError",
    "ServerError",
    "ServerHandle",
    "SessionLostError",
    "SpaceError",
    "StateError",
    "VersionMismatchError",
    "__version__",
    "register",
]
