"""Start env servers elsewhere and clean up after them: over SSH, or as actors on a Ray cluster.

Everything that touches SSH lives in this package, so that the env and client modules know nothing
of Fabric; a client holds a :class:`ServerHandle` (endpoint, log tail, close) and nothing more. The
flow of :func:`launch_server`:

1. Open one Fabric/paramiko connection (optionally through a jump host). Unknown host keys are
   accepted on first use and remembered in ``known_hosts``; a changed key is refused (:mod:`.ssh`).
2. In one remote shell: ``cd workdir``, run the ``setup`` line, export ``env``, pick a free port
   when none was given, stop the stale server that an earlier, crashed run recorded for that port
   (only when ``/proc/PID/cmdline`` proves it is our ``gym_remote serve`` on that port: never by
   name), then start ``python -m gym_remote serve`` with ``nohup setsid`` in the background
   (:mod:`.remote`, with the shell functions of :mod:`.shell`).
3. Follow the log until the READY line (:mod:`.logs`). A Traceback or the death of the process fails
   at once with the log tail, not after a timeout.
4. Only then open the tunnel (:mod:`.tunnels`): Fabric's ``forward_local`` kills its own forwarding
   thread if a connection arrives before the remote port listens, and OpenSSH's is only useful once
   there is something to forward to.

Stopping sends SIGTERM to the server's process group, waits, then SIGKILLs what is left (:mod:`.handle`
closes the tunnel first). :mod:`.records` lists and stops the servers recorded on a host.

Modules, each one concept, arrows one way: ``config`` (``HostConfig``, targets) and ``shell``
(quoting, the remote shell library) <- ``ssh`` (the connection, remote commands) <- ``logs`` <-
``remote`` (``RemoteLauncher``, stop by PID) <- ``tunnels``, ``handle`` (``launch_server``),
``records``. Every name imported from ``gym_remote.launch`` before it became a package still is.

On a Ray cluster, :func:`~gym_remote.launch.ray_pool.start_pool` starts N servers as Ray actors on
the nodes that have the resources asked for, with a CURVE key pair per pool (:mod:`.ray_pool`, and
:mod:`.ray_actor` for what runs on the nodes). Ray is imported only when a pool starts.
"""

from __future__ import annotations

from gym_remote.launch.config import DEFAULT_KNOWN_HOSTS, TUNNELS, HostConfig, resolve_config
from gym_remote.launch.handle import ServerHandle, SshServerHandle, launch_server
from gym_remote.launch.logs import follow_log, read_log, remote_log
from gym_remote.launch.ray_pool import RayServerPool, start_pool
from gym_remote.launch.records import ServerRecord, list_servers, stop_server
from gym_remote.launch.remote import RemoteLauncher
from gym_remote.launch.tunnels import choose_tunnel, free_local_port

__all__ = [
    "DEFAULT_KNOWN_HOSTS",
    "TUNNELS",
    "HostConfig",
    "RayServerPool",
    "RemoteLauncher",
    "ServerHandle",
    "ServerRecord",
    "SshServerHandle",
    "choose_tunnel",
    "follow_log",
    "free_local_port",
    "launch_server",
    "list_servers",
    "read_log",
    "remote_log",
    "resolve_config",
    "start_pool",
    "stop_server",
]
