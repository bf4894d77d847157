"""The handle of a server started over SSH: :class:`SshServerHandle`, from :func:`launch_server`.

It is a :class:`~gym_remote.client_session.ServerHandle`, the protocol the client layer owns (where
to connect, the log tail for errors, ``close()``), so ``RemoteEnv(server=launch_server(...))`` takes it.

:func:`launch_server` starts the server (:class:`~gym_remote.launch.remote.RemoteLauncher`), then
opens the tunnel (:mod:`gym_remote.launch.tunnels`). What must be released lives in a small
resources object that a ``weakref.finalize`` closes, tunnel first, then the server, at the latest
when the handle is garbage collected or the interpreter exits.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gym_remote.client_session import ServerHandle
from gym_remote.errors import LaunchError
from gym_remote.launch.config import HostConfig, resolve_config
from gym_remote.launch.remote import RemoteLauncher
from gym_remote.launch.tunnels import FabricTunnel, OpenSshTunnel, check_port_free, choose_tunnel, free_local_port

log = logging.getLogger(__name__)

__all__ = ["ServerHandle", "SshServerHandle", "launch_server"]


class _Resources:
    """What a :class:`SshServerHandle` must release; kept apart so the finalizer holds no handle."""

    def __init__(self, launcher: RemoteLauncher) -> None:
        self.launcher = launcher
        self.tunnel: FabricTunnel | OpenSshTunnel | None = None
        self.closed = False
        self.lock = threading.Lock()

    def close(self, stop_server: bool = True) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            try:
                if self.tunnel is not None:
                    self.tunnel.close()
            finally:
                if stop_server:
                    self.launcher.close()
                else:
                    self.launcher.disconnect()


class SshServerHandle:
    """A server launched over SSH, reachable at ``local_host:local_port``; :meth:`close` stops everything.

    ``close()`` (tunnel first, then the server) runs at the latest when the handle is garbage
    collected or the interpreter exits.
    """

    def __init__(
        self,
        launcher: RemoteLauncher,
        local_host: str,
        local_port: int,
        tunnel: str | None,
        resources: _Resources,
    ) -> None:
        self.launcher = launcher
        self.config = launcher.cfg
        self.host = launcher.cfg.host
        self.remote_port = launcher.remote_port
        self.pid = launcher.pid
        self.local_host = local_host
        self.local_port = local_port
        self.tunnel = tunnel
        self._resources = resources
        self._finalizer = weakref.finalize(self, resources.close)

    @property
    def endpoint(self) -> str:
        return f"tcp://{self.local_host}:{self.local_port}"

    @property
    def closed(self) -> bool:
        return self._resources.closed

    def log_tail(self, n: int = 40) -> str:
        """The end of the remote server log (for error messages)."""
        return self.launcher.log_tail(n)

    def close(self) -> None:
        """Close the tunnel, stop the server, disconnect. Idempotent."""
        self._finalizer.detach()
        self._resources.close(stop_server=True)

    def detach(self) -> None:
        """Close the tunnel and SSH connection but leave the server running (``gym-remote launch``)."""
        self._finalizer.detach()
        self._resources.close(stop_server=False)

    def __enter__(self) -> SshServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"PID {self.pid}"
        return (
            f"<SshServerHandle {self.host}:{self.remote_port} -> {self.endpoint} via {self.tunnel or 'direct'}, "
            f"{state}>"
        )


def launch_server(
    host: str | None = None,
    config: HostConfig | str | Path | Mapping[str, Any] | None = None,
    **overrides: Any,
) -> SshServerHandle:
    """Start a server over SSH, open the tunnel, and return its :class:`SshServerHandle`.

    ``host`` is an SSH host or the name of a ``configs/hosts`` file; ``config`` a :class:`HostConfig`,
    a YAML path/name or a mapping; keyword overrides set any :class:`HostConfig` field. On failure
    (including Ctrl-C) nothing is left running and a :class:`LaunchError` says why.
    """
    cfg = resolve_config(host, config, **overrides)
    tunnel = choose_tunnel(cfg.tunnel)
    if tunnel is not None and cfg.local_port:
        # Checked before anything starts: Fabric's listener would fail silently in its thread, and
        # the readiness probe would then reach whatever squats the port.
        check_port_free(cfg.local_port)
    launcher = RemoteLauncher(cfg)
    resources = _Resources(launcher)
    try:
        launcher.start()
        assert launcher.remote_port is not None
        if tunnel is None:
            if cfg.gateway:
                log.warning(
                    "tunnel=None with a gateway: the client must reach %s:%d itself",
                    cfg.host,
                    launcher.remote_port,
                )
            # The real address when cfg.host is an alias from ~/.ssh/config.
            local_host, local_port = launcher.connection.host, launcher.remote_port
        else:
            local_host, local_port = "127.0.0.1", cfg.local_port or free_local_port()
            timeout = cfg.connect_timeout + 10
            if tunnel == "fabric":
                resources.tunnel = FabricTunnel(cfg, launcher.remote_port, local_port, timeout)
            else:
                resources.tunnel = OpenSshTunnel(cfg, launcher.remote_port, local_port, timeout)
    except BaseException as exc:
        if isinstance(exc, LaunchError) and exc.log_tail is None and launcher.remote_port is not None:
            exc.log_tail = launcher.log_tail() or None
        resources.close()
        raise
    handle = SshServerHandle(launcher, local_host, local_port, tunnel, resources)
    log.info("%r", handle)
    return handle
