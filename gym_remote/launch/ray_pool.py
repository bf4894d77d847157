"""Env servers as Ray actors: a pool of N ``gym-remote serve`` processes placed by Ray.

A lab that runs a Ray cluster (KubeRay, ``ray up``) asks Ray for the resources a simulator needs
(``{"GPU": 1}`` per server by default, any Ray resource dict) and Ray picks the nodes. Each server
is the same ``python -m gym_remote serve`` the CLI runs, started by one actor on its node
(:class:`~gym_remote.local.LocalServer`), so it binds a free port itself and reports it in its READY
line. Clients connect straight to ``node_ip:port``, one endpoint per server; a vector env fans out
over them::

    import ray
    from gym_remote.launch.ray_pool import start_pool
    from gym_remote import ConnectOptions
    from gym_remote.vector import RemoteVectorEnv

    ray.init()
    with start_pool(4, backend="isaaclab", task="Isaac-Cartpole", resources={"GPU": 1}) as pool:
        options = ConnectOptions(**pool.client_options())  # the pool's CURVE keys
        venv = RemoteVectorEnv(4096, hosts=pool.hosts, task="Isaac-Cartpole", options=options)
        ...
        venv.close()

Lifetimes: a server dies with its actor (``serve --watch-pid`` names the actor's process), and the
actors are owned by the driver, so Ray kills them when the driver exits (or crashes).
:meth:`RayServerPool.close` (also run by a finalizer) stops every server by PID, then kills its actor.

Security: links between nodes are not loopback, so every pool gets its own CURVE key pairs, one for
the servers and one for the clients: the servers encrypt every link, prove themselves with the
server key, and admit only the pool's client key (``--curve-clients``). Keys are generated in
memory by the driver and reach each actor as an argument of a method call (Ray's own channel: turn
on Ray's TLS where the cluster network is not trusted), never in the actor's creation spec. On the
node they touch the disk only inside a fresh 0700 temp dir, as 0600 files, deleted as soon as the
server is ready (it has read them by then).

A node lost under a server is seen by clients as today's dead server (a timeout or a refused
connection); :meth:`RayServerHandle.log_tail`, which clients attach to their errors, names the node,
its address, and whether Ray still counts it alive.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from gym_remote.errors import LaunchError
from gym_remote.launch.ray_actor import CurveKeys, ServerActor

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_RESOURCES",
    "CurveKeys",
    "RayServerHandle",
    "RayServerPool",
    "ServerActor",
    "server_for_runner",
    "start_pool",
]

#: What each server asks Ray for unless told otherwise: one GPU (and no CPU: see :func:`start_pool`).
DEFAULT_RESOURCES: Mapping[str, float] = {"GPU": 1}

#: Seconds a pool waits for an actor to stop its server before it kills the actor.
STOP_TIMEOUT = 10.0


def server_for_runner(runner_index: int, servers: int) -> int:
    """The pool server an RLlib EnvRunner connects to.

    RLlib numbers remote EnvRunners 1..R and the local one 0: runner ``i >= 1`` gets server
    ``(i - 1) % servers``, runner 0 gets server 0. With R = N each runner has a server of its own;
    with R > N runners share servers round-robin.
    """
    if servers < 1:
        raise ValueError(f"a pool has at least one server, got {servers}")
    return max(int(runner_index) - 1, 0) % servers


class RayServerHandle:
    """One pool server, as a client sees it (a :class:`~gym_remote.launch.handle.ServerHandle`, plus
    :meth:`client_options`: the pool's CURVE keys a client needs).

    Attributes:
        local_host, local_port: where the server listens (the node's address, or ``bind_host``).
        index: its place in the pool. node_id, node_ip: the Ray node it runs on. pid: its PID there.
    """

    def __init__(self, actor: Any, index: int, info: Mapping[str, Any], keys: CurveKeys | None = None) -> None:
        self._actor = actor
        self._keys = keys
        self.index = index
        self.local_host: str = str(info["host"])
        self.local_port: int = int(info["port"])
        self.pid: int = int(info["pid"])
        self.actor_pid: int = int(info["actor_pid"])
        self.node_id: str = str(info["node_id"])
        self.node_ip: str = str(info["node_ip"])
        # Each handle owns its actor: dropping the pool object keeps the servers whose handles live.
        self._finalizer = weakref.finalize(self, _stop_actors, [actor])

    @property
    def endpoint(self) -> str:
        return f"tcp://{self.local_host}:{self.local_port}"

    @property
    def host_port(self) -> str:
        """``host:port``, as ``RemoteVectorEnv(hosts=[...])`` takes it."""
        return f"{self.local_host}:{self.local_port}"

    def client_options(self) -> dict[str, bytes]:
        """The CURVE keywords a client of this server needs (its pool's; empty without CURVE)."""
        return self._keys.client_options() if self._keys is not None else {}

    @property
    def where(self) -> str:
        return f"pool server {self.index} (PID {self.pid}) on Ray node {self.node_id[:12]} at {self.node_ip}"

    def node_alive(self) -> bool | None:
        """Whether Ray still counts this server's node alive (``None``: Ray cannot tell)."""
        import ray

        try:
            for node in ray.nodes():
                if node.get("NodeID") == self.node_id:
                    return bool(node.get("Alive"))
        except Exception:  # Ray is down or unreachable
            return None
        return False

    def log_tail(self, n: int = 40) -> str:
        """Which node the server runs on, then the end of its log; never raises.

        When the actor cannot answer (its node was lost, or it was killed), says so and whether Ray
        still counts the node alive, instead of the log.
        """
        import ray

        head = f"[{self.where}]"
        try:
            tail = ray.get(self._actor.log_tail.remote(n), timeout=5.0)
        except Exception as exc:  # RayActorError, GetTimeoutError, Ray shut down
            state = {True: "alive", False: "DEAD (lost)", None: "unknown"}[self.node_alive()]
            return f"{head} its Ray actor is unreachable ({type(exc).__name__}); Ray says the node is {state}"
        return f"{head}\n{tail}".rstrip()

    def alive(self) -> bool:
        """Whether the actor answers and its server runs."""
        import ray

        try:
            return bool(ray.get(self._actor.alive.remote(), timeout=5.0))
        except Exception:
            return False

    def close(self) -> None:
        """Stop the server (by PID, on its node), then kill its actor. Idempotent."""
        self._finalizer()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def __repr__(self) -> str:
        return f"<RayServerHandle {self.where} at {self.endpoint}{' closed' if self.closed else ''}>"


def _stop_actors(actors: Sequence[Any], timeout: float = STOP_TIMEOUT) -> None:
    """Ask each actor to stop its server (concurrently), then kill the actors."""
    import ray

    if not ray.is_initialized():  # Ray went down first: its actors, and so their servers, are gone
        return
    refs = []
    for actor in actors:
        with contextlib.suppress(Exception):
            refs.append(actor.stop.remote())
    if refs:
        with contextlib.suppress(Exception):
            ray.wait(refs, num_returns=len(refs), timeout=timeout)
    for actor in actors:
        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)


class RayServerPool:
    """N servers started by :func:`start_pool`; :meth:`close` stops them all.

    Attributes:
        handles: one :class:`RayServerHandle` per server, in pool order.
        keys: the pool's :class:`CurveKeys` (``None`` when started with ``curve=False``).
    """

    def __init__(self, handles: list[RayServerHandle], keys: CurveKeys | None) -> None:
        self.handles = handles
        self.keys = keys

    @property
    def hosts(self) -> list[str]:
        """``["host:port", ...]`` in pool order, for ``RemoteVectorEnv(hosts=...)``."""
        return [h.host_port for h in self.handles]

    @property
    def endpoints(self) -> list[str]:
        return [h.endpoint for h in self.handles]

    @property
    def closed(self) -> bool:
        return all(h.closed for h in self.handles)

    def client_options(self) -> dict[str, bytes]:
        """The CURVE keywords every client of this pool needs (empty without CURVE)."""
        return self.keys.client_options() if self.keys is not None else {}

    def for_runner(self, runner_index: int) -> RayServerHandle:
        """The server an RLlib EnvRunner connects to (see :func:`server_for_runner`)."""
        return self.handles[server_for_runner(runner_index, len(self.handles))]

    def close(self) -> None:
        """Stop every server (concurrently) and kill every actor. Idempotent.

        Each handle also stops its own server when it is closed, garbage collected, or at exit.
        """
        open_handles = [h for h in self.handles if h._finalizer.detach() is not None]
        _stop_actors([h._actor for h in open_handles])

    def __len__(self) -> int:
        return len(self.handles)

    def __iter__(self) -> Iterator[RayServerHandle]:
        return iter(self.handles)

    def __enter__(self) -> RayServerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RayServerPool of {len(self.handles)}: {', '.join(self.hosts)}{' closed' if self.closed else ''}>"


def _actor_options(resources: Mapping[str, float] | None) -> dict[str, Any]:
    """Ray actor options from a resource dict: ``CPU`` and ``GPU`` become num_cpus/num_gpus."""
    rest = dict(DEFAULT_RESOURCES if resources is None else resources)
    options: dict[str, Any] = {"num_cpus": rest.pop("CPU", 0), "num_gpus": rest.pop("GPU", 0)}
    memory = rest.pop("memory", None)
    if memory is not None:
        options["memory"] = memory
    if rest:
        options["resources"] = rest
    return options


def _check_feasible(servers: int, resources: Mapping[str, float]) -> None:
    """A LaunchError now, rather than a silent wait, when the cluster lacks a resource outright."""
    import ray

    total = ray.cluster_resources()
    short = {k: v * servers for k, v in resources.items() if v and total.get(k, 0) < v * servers}
    if short:
        have = {k: v for k, v in sorted(total.items()) if not k.startswith("node:") and "memory" not in k}
        raise LaunchError(
            f"{servers} pool servers need {short} in all, but the Ray cluster has {have}: pass "
            "resources={...} that it has (e.g. a custom resource of your GPU nodes), fewer servers, "
            "or wait_for_resources=True when an autoscaler will add nodes"
        )


def start_pool(
    servers: int = 1,
    *,
    backend: str = "gymnasium",
    task: str | None = None,
    task_kwargs: Mapping[str, Any] | None = None,
    resources: Mapping[str, float] | None = None,
    serve_args: Sequence[str] = (),
    python: str | None = None,
    env: Mapping[str, str] | None = None,
    bind_host: str | None = None,
    curve: bool = True,
    startup_timeout: float = 300.0,
    wait_for_resources: bool = False,
) -> RayServerPool:
    """Start ``servers`` env servers as Ray actors and return the pool once every one is ready.

    Args:
        servers: how many servers (one Ray actor each).
        backend, task, task_kwargs, serve_args: what each server serves (as ``gym-remote serve``).
        resources: what each actor asks Ray for; default ``{"GPU": 1}``. ``"CPU"`` and ``"GPU"``
            map to ``num_cpus``/``num_gpus`` (CPU defaults to 0: the simulator's node is chosen by
            its GPU, and a 0-CPU actor leaves the CPUs to the EnvRunners); other keys are custom
            resources.
        python: the server's interpreter on the nodes (default: the actor's own).
        env: extra environment variables for the servers.
        bind_host: the address the servers bind and clients dial; default the node's address as
            Ray knows it (``ray.init(_node_ip_address=...)`` sets it on a local cluster).
        curve: encrypt and authenticate every link with the pool's keys (see the module notes).
            ``False`` is allowed only on a single-node cluster bound to 127.0.0.1.
        startup_timeout: seconds for every server to be ready (placement included).
        wait_for_resources: wait (up to ``startup_timeout``) for resources the cluster does not
            have yet, e.g. under an autoscaler; otherwise that is an immediate error.

    Raises:
        LaunchError: the cluster lacks the resources, a server failed to start (its log tail and
            node attached), or not every server was ready within ``startup_timeout``. Nothing is
            left running then.
    """
    import ray

    if servers < 1:
        raise ValueError(f"servers must be at least 1, got {servers}")
    options = _actor_options(resources)
    if not curve and bind_host != "127.0.0.1":
        raise ValueError("curve=False needs bind_host='127.0.0.1': links between nodes are always encrypted")
    if not ray.is_initialized():
        ray.init()
    if not wait_for_resources:
        wanted = {"CPU": options["num_cpus"], "GPU": options["num_gpus"], **options.get("resources", {})}
        _check_feasible(servers, wanted)
    keys = CurveKeys.generate() if curve else None
    spec = {
        "backend": backend,
        "task": task,
        "task_kwargs": dict(task_kwargs or {}),
        "serve_args": list(serve_args),
        "python": python,
        "env": dict(env or {}),
        "bind_host": bind_host,
        "curve": keys,
        "startup_timeout": startup_timeout,
    }
    actor_cls = ray.remote(ServerActor).options(max_restarts=0, **options)
    actors = [actor_cls.remote() for _ in range(servers)]
    refs = [actor.start.remote(spec) for actor in actors]
    try:
        _, pending = ray.wait(refs, num_returns=len(refs), timeout=startup_timeout)
        if pending:
            raise LaunchError(
                f"{len(pending)} of {servers} pool servers were not ready after {startup_timeout:g} s "
                f"(resources per server: {dict(resources or DEFAULT_RESOURCES)}; is the cluster busy?)"
            )
        infos = []
        for i, ref in enumerate(refs):
            try:
                infos.append(ray.get(ref))
            except ray.exceptions.RayTaskError as exc:  # the server failed: LaunchError with its log
                cause = exc.as_instanceof_cause()
                message = str(getattr(cause, "message", cause)).splitlines()[0]
                raise LaunchError(
                    f"pool server {i} failed to start: {message}", log_tail=getattr(cause, "log_tail", None)
                ) from None
            except ray.exceptions.RayError as exc:  # the actor or its node died
                raise LaunchError(f"pool server {i} failed to start: {type(exc).__name__}: {exc}") from None
    except BaseException:
        _stop_actors(actors)
        raise
    handles = [RayServerHandle(a, i, info, keys) for i, (a, info) in enumerate(zip(actors, infos, strict=True))]
    pool = RayServerPool(handles, keys)
    log.info("%r", pool)
    return pool
