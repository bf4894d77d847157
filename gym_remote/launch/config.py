"""Where and how to run a server over SSH: :class:`HostConfig`, SSH targets, jump hosts.

A config comes from ``configs/hosts/*.yaml`` (every field is commented in ``example.yaml``), a
mapping, or keywords; :func:`resolve_config` accepts any of them and keyword overrides win. Targets
are ``host``, ``user@host``, ``user@host:port`` or ``[v6addr]:port``; the parts present in the text
win over the separate ``user``/``port`` fields. Nothing here opens a connection.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gym_remote.config import find_config, load

__all__ = ["DEFAULT_KNOWN_HOSTS", "TUNNELS", "HostConfig", "resolve_config"]

#: The ways to reach a launched server: OpenSSH's ``ssh -L``, Fabric's ``forward_local``, or none.
TUNNELS = ("auto", "openssh", "fabric", None)
#: Where new host keys are remembered (trust on first use, a changed key is refused).
DEFAULT_KNOWN_HOSTS = "~/.gym-remote/known_hosts"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class HostConfig:
    """Where and how to run a server over SSH (``configs/hosts/*.yaml``; see ``example.yaml``).

    Defaults suit a GPU box reached with the user's own SSH setup (``~/.ssh/config``, agent, keys).
    """

    #: ``"host"``, ``"user@host"`` or ``"user@host:port"``.
    host: str = ""
    user: str | None = None
    #: SSH port; ``None``: ``~/.ssh/config``'s ``Port``, else 22.
    port: int | None = None
    #: Private key; disables the agent and the key search when given.
    key_filename: str | None = None
    #: Jump host: ``"user@host:port"`` or ``{host, user, port, key_filename}``.
    gateway: str | dict[str, Any] | None = None
    #: Seconds to open the SSH connection.
    connect_timeout: float = 10.0
    #: Local file where new host keys are remembered.
    known_hosts: str = DEFAULT_KNOWN_HOSTS
    #: Remote interpreter; may be a command such as ``"~/isaaclab/isaaclab.sh -p"``.
    python: str = "python3"
    workdir: str | None = None
    #: A shell line run before the server, e.g. ``"source ~/venv/bin/activate"``.
    setup: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    #: Remote folder for PID and log files.
    runtime_dir: str = "~/.gym-remote"
    #: Server port on the remote side; 0/None: a free one.
    remote_port: int | None = None
    #: Remote bind address; default 127.0.0.1 (tunnelled) or 0.0.0.0 (direct).
    bind_host: str | None = None
    #: ``"auto"`` | ``"openssh"`` | ``"fabric"`` | ``None``/``"none"`` (connect directly).
    tunnel: str | None = "auto"
    #: Local end of the tunnel; ``None``: a free one.
    local_port: int | None = None
    #: Seconds for the server to print READY (Isaac Sim needs a minute).
    ready_timeout: float = 120.0
    #: Seconds between SIGTERM and SIGKILL.
    stop_timeout: float = 10.0
    #: Seconds for one remote shell command (setup included).
    command_timeout: float = 60.0
    backend: str = "gymnasium"
    task: str | None = None
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    #: Extra ``gym-remote serve`` arguments.
    serve_args: list[str] = field(default_factory=list)
    #: A Traceback before READY fails the launch (after 1.5 s for the READY line or the exit), even if
    #: the process lingers (a non-daemon thread can keep a crashed server alive). False: only the
    #: death of the process or ready_timeout fails it, for simulators that print harmless tracebacks.
    fail_on_traceback: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.tunnel, str) and self.tunnel.lower() in ("none", "direct", "off", ""):
            self.tunnel = None
        if self.tunnel not in TUNNELS:
            raise ValueError(f"tunnel must be one of {TUNNELS} (or 'none'), got {self.tunnel!r}")
        if self.host:
            target = parse_target(self.host, self.user, self.port)
            self.host, self.user, self.port = target.host, target.user, target.port
        self.port = int(self.port) if self.port else None
        self.env = {str(k): str(v) for k, v in (self.env or {}).items()}
        bad = [k for k in self.env if not _ENV_NAME.match(k)]
        if bad:
            raise ValueError(f"invalid environment variable names {bad}")
        self.serve_args = [str(a) for a in (self.serve_args or [])]
        self.task_kwargs = dict(self.task_kwargs or {})

    @property
    def direct(self) -> bool:
        return self.tunnel is None

    def effective_bind_host(self) -> str:
        if self.bind_host:
            return self.bind_host
        if not self.direct or is_loopback(self.host):
            return "127.0.0.1"
        return "0.0.0.0"  # reachable without a tunnel: the server then insists on CURVE or --insecure


def resolve_config(
    host: str | None = None,
    config: HostConfig | str | Path | Mapping[str, Any] | None = None,
    **overrides: Any,
) -> HostConfig:
    """A :class:`HostConfig` from a config object, file, bare name or plain host name.

    ``host`` may itself name a config in ``configs/hosts/`` (``launch_server("gpu-box")``); otherwise
    it is the SSH host. Keyword overrides that are ``None`` are ignored (``tunnel="none"`` turns the
    tunnel off). ``task_kwargs`` given as an override are merged over the config's own (a host
    config's server settings, such as Isaac Lab's ``asset_root``, stay), not put in their place.

    Raises:
        ValueError: no host anywhere, or a field with a bad value.
        KeyError: an unknown field (the message lists the known ones).
    """
    extra_kwargs = overrides.pop("task_kwargs", None)
    cfg = _resolve(host, config, **overrides)
    if extra_kwargs:
        cfg = dataclasses.replace(cfg, task_kwargs={**(cfg.task_kwargs or {}), **extra_kwargs})
    return cfg


def _resolve(
    host: str | None, config: HostConfig | str | Path | Mapping[str, Any] | None, **overrides: Any
) -> HostConfig:
    if isinstance(config, HostConfig):
        changes = {k: v for k, v in overrides.items() if v is not None}
        if host:
            changes["host"] = host
        return dataclasses.replace(config, **changes)
    if config is None and host:
        try:
            find_config(host, "hosts")
        except FileNotFoundError:
            return load(HostConfig, None, kind="hosts", host=host, **overrides)
        return load(HostConfig, host, kind="hosts", **overrides)
    cfg = load(HostConfig, config, kind="hosts", host=host, **overrides)
    if not cfg.host:
        raise ValueError("no host: give host=... or a config with a host")
    return cfg


@dataclass
class Target:
    """One SSH endpoint: the host itself or its jump host."""

    host: str
    user: str | None
    port: int | None
    key_filename: str | None = None

    @classmethod
    def of(cls, cfg: HostConfig) -> Target:
        """The host of ``cfg`` itself."""
        return cls(cfg.host, cfg.user, cfg.port, cfg.key_filename)


def parse_target(text: str, user: str | None, port: int | None) -> Target:
    """Split ``user@host:port``; the parts present in the text win over the defaults."""
    if "@" in text:
        user, text = text.rsplit("@", 1)
    if text.startswith("["):  # [v6addr]:port
        addr, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
        return Target(addr, user, port)
    if text.count(":") == 1:
        text, port_text = text.split(":")
        port = int(port_text)
    return Target(text, user, int(port) if port else None)


def gateway_target(cfg: HostConfig) -> Target | None:
    """The jump host of ``cfg`` (its user and key default to the host's), or ``None``."""
    gw = cfg.gateway
    if not gw:
        return None
    if isinstance(gw, str):
        target = parse_target(gw, cfg.user, None)
        target.key_filename = cfg.key_filename
        return target
    if isinstance(gw, Mapping):
        unknown = set(gw) - {"host", "user", "port", "key_filename"}
        if unknown or "host" not in gw:
            raise ValueError(f"gateway mapping needs 'host' and may have user, port, key_filename; got {sorted(gw)}")
        target = parse_target(str(gw["host"]), gw.get("user", cfg.user), gw.get("port"))
        target.key_filename = gw.get("key_filename", cfg.key_filename)
        return target
    raise ValueError(f"gateway must be 'user@host:port' or a mapping, got {type(gw).__name__}")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (a name is not resolved)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
