"""What runs on a Ray node for a server pool: the pool's CURVE keys, and the actor that serves.

:class:`ServerActor` starts one ``python -m gym_remote serve`` (a
:class:`~gym_remote.local.LocalServer`, which passes ``--watch-pid`` with the actor's own PID: the
server dies with its actor). Its CURVE keys arrive as an argument of :meth:`ServerActor.start`,
are written as ZeroMQ certificate files (0600) into a fresh 0700 temp dir for ``serve
--curve-secret`` and ``--curve-clients``, and that dir is deleted once the server is ready: it has
read them by then (the authenticator loads the client keys before the socket binds). Nothing here
imports Ray at module level, so :mod:`gym_remote.launch.ray_pool` decides when Ray is needed.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

__all__ = ["CurveKeys", "ServerActor", "node_address"]


def sessions_per_peer_args(args: list[str]) -> list[str]:
    """The ``--max-sessions-per-peer`` a pool server needs, or none when ``args`` already set it.

    Every client of a pool holds the pool's one client key, so the server counts them all as one
    peer: that peer may hold every session, as many as ``args`` admit (read by ``serve``'s own
    parser: its flags, its ``--server-config``, else :class:`~gym_remote.config.ServerConfig`'s default).
    """
    from gym_remote.config import admission_of

    admission = admission_of(args)
    if admission.max_sessions_per_peer is not None:
        return []
    return ["--max-sessions-per-peer", str(admission.max_sessions)]


def node_address(node_id: str) -> str:
    """The address Ray registered for node ``node_id`` (``ray.init(_node_ip_address=...)``)."""
    import ray

    for node in ray.nodes():
        if node.get("NodeID") == node_id and node.get("NodeManagerAddress"):
            return str(node["NodeManagerAddress"])
    return ray.util.get_node_ip_address()


@dataclass(frozen=True, repr=False)
class CurveKeys:
    """One pool's CURVE key pairs (Z85 bytes): the servers' and the clients'."""

    server_public: bytes
    server_secret: bytes
    client_public: bytes
    client_secret: bytes

    @classmethod
    def generate(cls) -> CurveKeys:
        """Two fresh key pairs, in memory."""
        import zmq

        server_public, server_secret = zmq.curve_keypair()
        client_public, client_secret = zmq.curve_keypair()
        return cls(server_public, server_secret, client_public, client_secret)

    def client_options(self) -> dict[str, bytes]:
        """The keywords a client takes (``RemoteEnv``, ``RemoteVectorEnv``, ``ConnectOptions``)."""
        return {
            "curve_server_key": self.server_public,
            "curve_public_key": self.client_public,
            "curve_secret_key": self.client_secret,
        }

    def __repr__(self) -> str:  # never print a secret
        server, client = self.server_public.decode(), self.client_public.decode()
        return f"CurveKeys(server_public={server!r}, client_public={client!r})"


def _write_certificate(path: str, public: bytes, secret: bytes | None = None) -> None:
    """A ZeroMQ certificate file (``zmq.auth.load_certificate`` reads it), created 0600."""
    text = f'metadata\ncurve\n    public-key = "{public.decode()}"\n'
    if secret is not None:
        text += f'    secret-key = "{secret.decode()}"\n'
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text)


class ServerActor:
    """The body of one pool actor: starts, reports on and stops one server on its node.

    Made a Ray actor class by :func:`start_pool` (``ray.remote(ServerActor)``), so importing this
    module needs no Ray.
    """

    def __init__(self) -> None:
        self.server: Any = None

    def start(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Start the server; returns where it listens (``host``, ``port``), its ``pid`` and its node.

        ``spec`` holds the server's backend, task, task_kwargs, serve_args, python, env, bind_host,
        startup_timeout and, for CURVE, the pool's keys (``curve``: a :class:`CurveKeys`).

        Raises:
            LaunchError: the server exited or was not ready in time (its log tail attached).
        """
        import ray

        from gym_remote.local import LocalServer

        node_id = ray.get_runtime_context().get_node_id()
        node_ip = node_address(node_id)
        bind = spec.get("bind_host") or node_ip
        args = list(spec.get("serve_args") or [])
        keys: CurveKeys | None = spec.get("curve")
        folder = tempfile.mkdtemp(prefix="gym-remote-curve-")  # 0700, private to this user
        try:
            if keys is not None:
                secret = os.path.join(folder, "server.key_secret")
                clients = os.path.join(folder, "clients")
                os.mkdir(clients, 0o700)
                _write_certificate(secret, keys.server_public, keys.server_secret)
                _write_certificate(os.path.join(clients, "pool.key"), keys.client_public)
                args += ["--curve-secret", secret, "--curve-clients", clients]
                args += sessions_per_peer_args(args)
            elif bind != "127.0.0.1":
                args.append("--insecure")
            self.server = LocalServer(
                spec.get("backend") or "gymnasium",
                spec.get("task"),
                spec.get("task_kwargs"),
                address=f"tcp://{bind}:*",
                extra_args=args,
                python=spec.get("python") or sys.executable,
                startup_timeout=float(spec.get("startup_timeout") or 300.0),
                env=spec.get("env"),
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # READY: the server has read its keys
        return {
            "host": self.server.local_host,
            "port": self.server.local_port,
            "pid": self.server.pid,
            "node_id": node_id,
            "node_ip": node_ip,
            "actor_pid": os.getpid(),
        }

    def log_tail(self, n: int = 40) -> str:
        return self.server.log_tail(n) if self.server is not None else ""

    def alive(self) -> bool:
        return self.server is not None and self.server.alive

    def stop(self) -> None:
        """Stop the server by PID (SIGTERM, then SIGKILL). Idempotent."""
        if self.server is not None:
            self.server.close()
