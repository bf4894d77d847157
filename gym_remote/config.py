"""Configuration as dataclasses, loaded from YAML files in ``configs/`` and overridable by kwargs.

``load(HostConfig, "configs/hosts/gpu-box.yaml", port=6000)`` reads the file, refuses keys the
dataclass does not have (a typo should fail loudly, not be ignored), then applies the keyword
overrides. A bare name such as ``"gpu-box"`` is looked up in ``configs/hosts/`` of the working
directory, then of the source checkout.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import argparse

T = TypeVar("T")

#: The port a server binds and a client dials when none is given.
DEFAULT_PORT = 5555
#: The server backends (``gym-remote serve --backend``; the ``backend`` of a launch or a task config).
BACKENDS = ("gymnasium", "python", "isaaclab", "roboverse")

#: The repository's configs/ folder (present in a source checkout or editable install).
CONFIG_ROOT = Path(__file__).resolve().parent.parent / "configs"


def find_config(name: str | Path, kind: str) -> Path:
    """Resolve a config path, or a bare name inside ``configs/<kind>/``."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    for root in (Path.cwd() / "configs", CONFIG_ROOT):
        for candidate in (root / kind / path, root / kind / f"{path}.yaml"):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"no config {str(name)!r}: not a file, and not in configs/{kind}/")


def load(cls: type[T], source: str | Path | Mapping[str, Any] | None = None, kind: str = "", **overrides: Any) -> T:
    """Build ``cls`` from a YAML file (or mapping), then apply non-None keyword overrides."""
    data: dict[str, Any] = {}
    if isinstance(source, Mapping):
        data = dict(source)
    elif source is not None:
        import yaml  # here, not at the top: `import gym_remote` (the client) needs no YAML

        with open(find_config(source, kind), encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise ValueError(f"config {source} must be a YAML mapping")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown keys {unknown} in {cls.__name__} config {source}; known: {sorted(names)}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(data) - names)
    if unknown:
        raise TypeError(f"unknown {cls.__name__} options {unknown}; known: {sorted(names)}")
    try:
        return cls(**data)
    except ValueError as exc:
        given = sorted(k for k, v in overrides.items() if v is not None)
        where = [f"config {source}"] if source is not None else []
        where += [f"overrides {given}"] if given else []
        raise ValueError(f"{exc} (from {' and '.join(where)})" if where else str(exc)) from exc


@dataclass
class TaskConfig:
    """A task served by a backend (``configs/tasks/*.yaml``)."""

    backend: str = "gymnasium"
    task: str | None = None
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    #: The most sub-envs one session may ask for, as ``serve --max-envs`` (which wins); ``None``: the
    #: backend's default. A vector client chooses its ``num_envs`` up to this; a RemoteEnv gets one.
    num_envs: int | None = None
    #: Serve only this task, and these ``task_kwargs`` as given (clients may not change them).
    fixed_task: bool = False
    #: Keywords clients may set, fnmatch patterns, as ``serve --allow-kwargs`` (which wins): for gymnasium and
    #: python the only ones (``None``: any; ``[]``: none); for isaaclab cfg paths added to its built-in list.
    allow_kwargs: list[str] | None = None
    name_map: str | dict[str, Any] | None = None  # for MujocoReplayWrapper
    model: str | None = None  # local MJCF for replay
    description: str = ""

    def __post_init__(self) -> None:
        n = self.num_envs
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise ValueError(f"TaskConfig.num_envs must be a positive integer or null, not {n!r}")


@dataclass
class ServerConfig:
    """How a server admits clients (``configs/servers/*.yaml``, ``gym-remote serve --server-config``).

    The one place these defaults live: :class:`~gym_remote.server.EnvServer`'s keywords and the
    ``serve`` flags both read them. What one session may build (sub-envs, keyword sizes) is
    :class:`~gym_remote.session.SessionLimits`.
    """

    #: ZeroMQ endpoint to bind; port ``*`` picks a free one. Loopback: reach it through an SSH tunnel.
    address: str = f"tcp://127.0.0.1:{DEFAULT_PORT}"
    #: Open sessions at once; the next HELLO gets a "server busy" error.
    max_sessions: int = 16
    #: Sessions one peer (an IP address, or a client key) may hold (``None``: half of ``max_sessions``).
    max_sessions_per_peer: int | None = None
    #: Seconds without a request after which a session is closed (``None`` or 0: never).
    idle_timeout: float | None = 600.0
    #: Larger incoming messages are dropped by libzmq (ZMQ_MAXMSGSIZE), and no array may be larger.
    max_message_bytes: int = 1 << 30
    #: Agree to compress large array frames when a client asks at HELLO (with the codecs installed
    #: here: ``gym-remote[compress]``); ``False`` (``serve --no-compression``): every frame travels raw.
    compression: bool = True

    def __post_init__(self) -> None:
        for name in ("max_sessions", "max_sessions_per_peer", "max_message_bytes"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"ServerConfig.{name} must be a positive integer, not {value!r}")
        if self.idle_timeout is not None:
            if isinstance(self.idle_timeout, bool) or not isinstance(self.idle_timeout, int | float):
                raise ValueError(f"ServerConfig.idle_timeout must be seconds or null, not {self.idle_timeout!r}")
            if not 0 <= self.idle_timeout < math.inf:
                raise ValueError(f"ServerConfig.idle_timeout must be >= 0 finite seconds, not {self.idle_timeout!r}")
            if self.idle_timeout == 0:
                self.idle_timeout = None


#: The ``serve`` flags that set :class:`ServerConfig` fields of the same name.
SERVER_FLAGS = ("address", "max_sessions", "max_sessions_per_peer", "idle_timeout", "max_message_bytes", "compression")


def positive_int(text: str) -> int:
    """An argparse type: a positive integer, or the error argparse shows."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def add_server_config_flags(parser: argparse.ArgumentParser) -> None:
    """``serve``'s ``--server-config`` and :data:`SERVER_FLAGS` (their one definition): what :func:`admission_of`
    reads."""
    parser.add_argument(
        "--server-config",
        metavar="NAME",
        help="admission settings (configs/servers/NAME.yaml or a path): address, max_sessions, "
        "max_sessions_per_peer, idle_timeout, max_message_bytes, compression; flags override it",
    )
    parser.add_argument(
        "--address", help=f"ZeroMQ endpoint; port '*' picks a free one (default {ServerConfig.address})"
    )
    parser.add_argument(
        "--max-sessions", type=positive_int, help=f"concurrent client sessions (default {ServerConfig.max_sessions})"
    )
    parser.add_argument(
        "--max-sessions-per-peer",
        type=positive_int,
        metavar="N",
        help="sessions one peer (an IP address, or a client key with --curve-clients) may hold (default: half "
        "of --max-sessions), so that one client cannot lock the others out",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        help=f"close sessions idle this many seconds (0: never; default {ServerConfig.idle_timeout:g})",
    )
    parser.add_argument(
        "--max-message-bytes",
        type=positive_int,
        help=f"drop larger incoming messages (default {ServerConfig.max_message_bytes})",
    )
    parser.add_argument(
        "--no-compression",
        dest="compression",
        action="store_const",
        const=False,
        help="refuse to compress large array frames even when a client asks at HELLO (default: agree, with "
        "the zstd or lz4 library installed here)",
    )


def admission_of(args: argparse.Namespace | list[str]) -> ServerConfig:
    """The admission settings a ``serve`` command line gives: :class:`ServerConfig`'s defaults, then
    its ``--server-config`` file, then the flags. ``args`` is parsed, or the arguments after ``serve``
    (other flags are left alone).

    Raises:
        ValueError, FileNotFoundError: a bad value, or no such server config.
    """
    if isinstance(args, list):
        import argparse

        parser = argparse.ArgumentParser(prog="gym-remote serve", add_help=False)
        add_server_config_flags(parser)
        args, _ = parser.parse_known_args(args)
    flags = {name: getattr(args, name) for name in SERVER_FLAGS}
    return load(ServerConfig, args.server_config, kind="servers", **flags)
