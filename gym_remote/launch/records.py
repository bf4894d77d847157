"""The servers recorded on a host: ``gym-remote status`` and ``gym-remote stop``.

Every launched server leaves ``<runtime_dir>/server-<port>.pid`` on its host. :func:`list_servers`
reads them and checks each PID (alive *and* our ``gym_remote serve`` on that port, by its command
line); :func:`stop_server` stops one by PID, never by name, and leaves a PID that is not our server
alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from gym_remote.launch.config import HostConfig
from gym_remote.launch.remote import stop_remote
from gym_remote.launch.shell import SHELL_LIB, rpath
from gym_remote.launch.ssh import connected

__all__ = ["ServerRecord", "list_servers", "stop_server"]


@dataclass
class ServerRecord:
    """One PID file in the remote runtime dir (``gym-remote status``)."""

    #: The server's port on the host.
    port: int
    pid: int | None
    #: The PID runs our ``gym_remote serve`` on that port.
    alive: bool
    #: Seconds since the process started (``None`` when not alive).
    uptime: float | None
    log_path: str


def list_servers(cfg: HostConfig | str) -> list[ServerRecord]:
    """Servers recorded in the remote ``runtime_dir`` (alive or stale), sorted by port.

    For ``gym-remote status HOST``. ``cfg`` is a :class:`HostConfig` or a host/config name.
    """
    with connected(cfg) as ssh:
        rt = ssh.cfg.runtime_dir.rstrip("/")
        script = "\n".join(
            [
                SHELL_LIB,
                f"RT={rpath(rt)}",
                'for F in "$RT"/server-*.pid; do [ -f "$F" ] || continue',
                '  PORT=${F##*/server-}; PORT=${PORT%.pid}; P=$(cat "$F" 2>/dev/null)',
                "  A=0; E=",
                '  if gr_ours "$P" "$PORT"; then A=1; E=$(ps -o etimes= -p "$P" 2>/dev/null | tr -d " "); fi',
                '  echo "GYM_REMOTE_SERVER $PORT ${P:--} $A ${E:--}"',
                "done",
            ]
        )
        result = ssh.run(script)
    records = []
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) != 5 or parts[0] != "GYM_REMOTE_SERVER" or not parts[1].isdigit():
            continue
        _, port, pid, alive, uptime = parts
        records.append(
            ServerRecord(
                port=int(port),
                pid=int(pid) if pid.isdigit() else None,
                alive=alive == "1",
                uptime=float(uptime) if uptime.isdigit() else None,
                log_path=f"{rt}/server-{port}.log",
            )
        )
    return sorted(records, key=lambda r: r.port)


def stop_server(cfg: HostConfig | str, port: int) -> bool:
    """Stop the server recorded for ``port`` on the remote host; remove its PID file.

    For ``gym-remote stop HOST --port N``. Returns True if a running server was stopped, False when
    none was (no PID file, a dead PID, or a PID that is not our server: that process is left alone).
    """
    with connected(cfg) as ssh:
        return stop_remote(ssh, int(port))
