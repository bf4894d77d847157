"""The Fabric tunnel's forwarder process: ``python -m gym_remote.launch.forwarder``.

Paramiko decrypts and parses every packet in Python and holds the GIL for each one (32 packets per
MiB). In the process of a training loop that runs Python while a reply is on its way, each packet
can wait up to the 5 ms switch interval for the GIL: beside one busy Python thread, a 1 MiB step
took 13-27 ms (once 185 ms) with the forwarder in the client's process, 10-13 ms in a process of
its own (OpenSSH ~9 ms; direct 0.7-6 ms, the client's own decoding waiting for the GIL too).
So :class:`~gym_remote.launch.tunnels.FabricTunnel` runs a
:class:`~gym_remote.launch.channels.ChannelForwarder` here, over a second SSH login with the same
host config.

The protocol, on pipes only the parent holds: the parent writes one JSON line (the SSH fields of
the host config, ``remote_port``, ``local_port``, ``timeout``); this process answers ``READY`` once
the port accepts connections, or ``ERROR`` (the reason on stderr) and exits. It then runs until its
stdin ends, which is when the parent closes the tunnel or dies in any way, or until the SSH
connection is lost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
from typing import Any

from gym_remote.errors import LaunchError
from gym_remote.launch.channels import ChannelForwarder

log = logging.getLogger(__name__)

__all__ = ["SSH_FIELDS", "main"]

#: The :class:`~gym_remote.launch.config.HostConfig` fields the forwarder process logs in with.
SSH_FIELDS = ("host", "user", "port", "key_filename", "gateway", "connect_timeout", "known_hosts")


def _run_a_command(transport: Any) -> None:
    """Run ``true`` once: sshd turns Nagle's algorithm off (TCP_NODELAY) on a connection only when a
    session runs a command, and keeps it off. With it on, a 32 KiB packet can wait for the ACK of the
    previous one (up to 40 ms: 1 MiB steps had a p99 of ~50 ms)."""
    with contextlib.suppress(Exception):  # an sshd that refuses commands: slower, not broken
        channel = transport.open_session(timeout=10)
        channel.exec_command("true")
        channel.recv_exit_status()
        channel.close()


def main() -> int:
    """The forwarder process (see the module docstring). Returns the exit status."""
    from gym_remote.launch.config import HostConfig
    from gym_remote.launch.ssh import SshClient

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="gym-remote forwarder: %(message)s")
    request = json.loads(sys.stdin.buffer.readline())
    ssh = SshClient(HostConfig(**{k: request["ssh"][k] for k in SSH_FIELDS}))
    try:
        ssh.connect()
        _run_a_command(ssh.connection.transport)
        forwarder = ChannelForwarder(ssh.connection, request["remote_port"], request["local_port"], request["timeout"])
    except (LaunchError, OSError) as exc:
        print(exc, file=sys.stderr, flush=True)
        print("ERROR", flush=True)
        ssh.disconnect()
        return 1
    print("READY", flush=True)
    parent_gone = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.buffer.read(), parent_gone.set()), daemon=True).start()
    status = 0
    while not parent_gone.wait(1.0):
        if not ssh.connection.transport.is_active():
            log.error("the SSH connection to %s was lost", ssh.where)
            status = 1
            break
    forwarder.close()
    ssh.disconnect()
    return status


if __name__ == "__main__":
    raise SystemExit(main())
