"""Where ``gym.make`` keywords arrive: folded once into records, and the server they ask for started.

``gym.make("Remote-IsaacSim-v0", host=..., timeout=5.0, launch=True, setup=...)`` hands its keywords
to :func:`make_env` (``gym.make_vec`` to :func:`make_vector_env`), which sorts them once:

- the fields of :class:`~gym_remote.client_session.ConnectOptions` (timeouts, retries, CURVE keys)
  become that record;
- ``launch``, ``backend`` and the launch options start a server and become its
  :class:`~gym_remote.client_session.ServerHandle`: a local subprocess when no host is given, one
  started over SSH with ``launch=True`` (:mod:`gym_remote.launch`), or placed by Ray with
  ``launch="ray"`` (:mod:`gym_remote.launch.ray_pool`), each imported only then;
- the rest are the env's own keywords.

The env classes take only records (``options=``, ``server=``/``servers=``) and know nothing of
launching. Every keyword is checked before anything starts, and a server started here is stopped
when the env cannot be made.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from gym_remote.checks import (
    CLIENT_KEYWORDS,
    LAUNCH_HELP,
    VECTOR_KEYWORDS,
    check_client_keywords,
    check_vector_keywords,
    unexpected_keyword,
)
from gym_remote.client_session import ConnectOptions, ServerHandle
from gym_remote.config import DEFAULT_PORT
from gym_remote.env import RemoteEnv, check_render_mode, default_local_task
from gym_remote.vector.env import RemoteVectorEnv

__all__ = ["front_end_venv", "make_env", "make_vector_env", "split_keywords", "start_server"]

#: The env's own keywords besides the endpoint and task (``RemoteEnv``'s; the vector adds its own).
ENV_KEYWORDS = frozenset({"render_mode", "with_state", "max_episode_steps"})
#: The vector env's own keywords besides the endpoint(s) and task.
VECTOR_ENV_KEYWORDS = ENV_KEYWORDS | {"autoreset_mode", "batch_size"}

#: Keywords of ``launch="ray"``: those of :func:`gym_remote.launch.ray_pool.start_pool` (``servers``
#: for vector envs only).
RAY_OPTIONS = frozenset(
    {"servers", "resources", "serve_args", "python", "env", "bind_host", "curve", "startup_timeout"}
    | {"wait_for_resources"}
)


def check_launch_options(owner: str, launch: Any, options: Mapping[str, Any]) -> None:
    """Launch options (``launch=True`` plus keywords, or ``launch={...}``) name :class:`HostConfig` fields.

    Raises:
        TypeError: launch options without ``launch=True``, or an unknown option (with close matches).
    """
    own = CLIENT_KEYWORDS | (VECTOR_KEYWORDS if owner == "RemoteVectorEnv" else frozenset())
    if options and not launch:
        name = next(iter(options))  # the first, as Python names it
        raise TypeError(
            f"{unexpected_keyword(owner, name, own)} (Note: launch options need launch=True; launch takes "
            f"{LAUNCH_HELP})"
        )
    if not launch:
        return
    if launch == "ray":
        known_ray = RAY_OPTIONS if owner == "RemoteVectorEnv" else RAY_OPTIONS - {"servers"}
        for name in options:
            if name not in known_ray:
                raise TypeError(
                    f"{unexpected_keyword(owner, name, own | known_ray)} Options of launch='ray': "
                    f"{', '.join(sorted(known_ray))}"
                )
        servers = options.get("servers", 1)
        if not isinstance(servers, int) or isinstance(servers, bool) or servers < 1:
            raise ValueError(f"{owner}(servers=...) takes a positive int (Ray pool servers), got {servers!r}")
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ImportError(
                f"{owner}(launch='ray') needs Ray on this machine: pip install 'gym-remote[ray]' and ray.init() "
                "(or connect to your cluster) first; RLlib users: bash scripts/build_ray_venv.sh"
            )
        return
    from gym_remote.launch.config import HostConfig

    known = {f.name for f in dataclasses.fields(HostConfig)} | {"config"}
    given = {**(launch if isinstance(launch, Mapping) else {}), **options}
    for name in given:
        if name not in known:
            raise TypeError(
                f"{unexpected_keyword(owner, name, own | known)} Launch options: {', '.join(sorted(known))}"
            )


def split_keywords(
    owner: str, keywords: Mapping[str, Any], own: frozenset[str] = ENV_KEYWORDS
) -> tuple[ConnectOptions, dict[str, Any], dict[str, Any]]:
    """``keywords`` as ``(ConnectOptions, the env's own keywords in own, launch options)``.

    Raises:
        TypeError, ValueError: a connection field of the wrong type or value, named for ``owner``.
    """
    fields = ConnectOptions.fields()
    connect = {k: v for k, v in keywords.items() if k in fields}
    check_client_keywords(owner, **connect)  # named for the class the user called, not the record
    env = {k: v for k, v in keywords.items() if k in own}
    rest = {k: v for k, v in keywords.items() if k not in fields and k not in own}
    return ConnectOptions(**connect), env, rest


def start_server(
    host: str | None,
    *,
    launch: bool | str | dict[str, Any],
    backend: str,
    task: str | None,
    task_kwargs: dict[str, Any] | None,
    launch_options: dict[str, Any],
) -> ServerHandle | None:
    """The server ``host`` and the launch keywords ask for, started; ``None`` for a server that runs already.

    No host: a subprocess on this machine. ``launch=True``: started over SSH by
    :mod:`gym_remote.launch`. ``launch="ray"``: one server placed by Ray; its handle also gives the
    pool's CURVE keys (``client_options()``).

    Raises:
        LaunchError: the server did not start (its log tail attached).
        ValueError: ``launch="ray"`` with a host.
    """
    if launch == "ray":
        if host is not None:
            raise ValueError("launch='ray' lets Ray place the server: give no host")
        from gym_remote.launch.ray_pool import start_pool

        return start_pool(1, backend=backend, task=task, task_kwargs=task_kwargs, **launch_options).handles[0]
    if host is None:
        from gym_remote.local import LocalServer

        return LocalServer(backend, task or default_local_task(), task_kwargs)
    if launch:
        from gym_remote.launch import launch_server

        options = {**(launch if isinstance(launch, dict) else {}), **launch_options}
        # The launch mapping's task_kwargs are the server's own settings (serve --kwargs, e.g. Isaac
        # Lab's asset_root, which a client may not send); the client's task_kwargs go there too.
        server_kwargs = options.pop("task_kwargs", None)
        if server_kwargs is not None or task_kwargs is not None:
            server_kwargs = {**(server_kwargs or {}), **(task_kwargs or {})}
        return launch_server(host=host, backend=backend, task=task, task_kwargs=server_kwargs, **options)
    return None


def with_server_keys(options: ConnectOptions, server: ServerHandle | None) -> ConnectOptions:
    """``options`` with the CURVE keys a Ray pool's server gives its clients (others give none)."""
    keys = getattr(server, "client_options", None)
    return dataclasses.replace(options, **keys()) if callable(keys) else options


def make_env(
    host: str | None = None,
    port: int = DEFAULT_PORT,
    task: str | None = None,
    task_kwargs: dict[str, Any] | None = None,
    *,
    launch: bool | str | dict[str, Any] = False,
    backend: str = "gymnasium",
    **keywords: Any,
) -> RemoteEnv:
    """``gym.make``'s entry point: a :class:`RemoteEnv` from flat keywords (see the module docstring).

    Raises:
        TypeError, ValueError: a keyword of the wrong type or value, or one nobody takes (with close
            matches), before anything starts.
        LaunchError: the server asked for did not start.
        RemoteEnvError: the env could not be made (the server started here is stopped).
    """
    options, own, launch_options = split_keywords("RemoteEnv", keywords)
    check_client_keywords(
        "RemoteEnv", host=host, port=port, task=task, task_kwargs=task_kwargs, launch=launch, backend=backend, **own
    )
    check_launch_options("RemoteEnv", launch, launch_options)
    check_render_mode(own.get("render_mode"))
    server = start_server(
        host, launch=launch, backend=backend, task=task, task_kwargs=task_kwargs, launch_options=launch_options
    )
    if server is None:
        return RemoteEnv(host, port, task, task_kwargs, options=options, **own)
    try:
        options = with_server_keys(options, server)
        return RemoteEnv(task=task, task_kwargs=task_kwargs, options=options, server=server, **own)
    except BaseException:
        server.close()  # idempotent: the env closes what it adopted when it fails
        raise


def make_vector_env(
    num_envs: int = 1,
    host: str | None = None,
    port: int = DEFAULT_PORT,
    task: str | None = None,
    task_kwargs: dict[str, Any] | None = None,
    *,
    hosts: Sequence[str] | None = None,
    launch: bool | str | dict[str, Any] = False,
    backend: str = "gymnasium",
    **keywords: Any,
) -> RemoteVectorEnv:
    """``gym.make_vec``'s entry point: a :class:`~gym_remote.vector.RemoteVectorEnv` from flat keywords.

    One server per endpoint is started when asked for: a local one without ``host``/``hosts``, one
    over SSH per host with ``launch=True``, or ``servers=N`` placed by Ray with ``launch="ray"``.

    Raises:
        TypeError, ValueError: a keyword of the wrong type or value, or one nobody takes, before
            anything starts.
        LaunchError: a server asked for did not start (those started are stopped).
        RemoteEnvError: the env could not be made (the servers started here are stopped).
    """
    options, own, launch_options = split_keywords("RemoteVectorEnv", keywords, VECTOR_ENV_KEYWORDS)
    check_vector_keywords("RemoteVectorEnv", num_envs=num_envs, hosts=hosts)
    check_client_keywords(
        "RemoteVectorEnv", host=host, port=port, task=task, task_kwargs=task_kwargs, launch=launch, backend=backend
    )
    check_launch_options("RemoteVectorEnv", launch, launch_options)
    check_render_mode(own.get("render_mode"))
    servers: list[ServerHandle] = []
    try:
        if launch == "ray":
            if host is not None or hosts:
                raise ValueError("RemoteVectorEnv(launch='ray') lets Ray place the servers: give servers=N, no host(s)")
            from gym_remote.launch.ray_pool import start_pool

            count = launch_options.pop("servers", 1)
            if count > num_envs:
                raise ValueError(f"RemoteVectorEnv: {count} servers for {num_envs} sub-envs; some would serve none")
            pool = start_pool(count, backend=backend, task=task, task_kwargs=task_kwargs, **launch_options)
            servers = list(pool.handles)
            options = dataclasses.replace(options, **pool.client_options())
        elif (host is None and not hosts) or launch:
            for endpoint in hosts or [host]:
                started = start_server(
                    endpoint,
                    launch=launch,
                    backend=backend,
                    task=task,
                    task_kwargs=task_kwargs,
                    launch_options=launch_options,
                )
                assert started is not None  # no host, or launch=True: a server was started
                servers.append(started)
        if servers:
            return RemoteVectorEnv(
                num_envs, task=task, task_kwargs=task_kwargs, servers=servers, options=options, **own
            )
        return RemoteVectorEnv(num_envs, host, port, task, task_kwargs, hosts=hosts, options=options, **own)
    except BaseException:
        for server in servers:  # idempotent: the env closes those it adopted when it fails
            server.close()
        raise


@contextlib.contextmanager
def front_end_venv(venv: RemoteVectorEnv | None, kwargs: dict[str, Any]) -> Iterator[RemoteVectorEnv]:
    """The :class:`~gym_remote.vector.RemoteVectorEnv` a front end (SB3, rsl_rl) wraps, for its set-up.

    ``venv`` as given, or one made here from ``kwargs`` (``gym.make_vec``'s flat keywords) with
    ``autoreset_mode="same_step"`` by default; one made here is closed when the set-up in the
    ``with`` block fails, so no session is left open.

    Raises:
        TypeError: both a ``venv`` and keywords to make one.
    """
    made = venv is None
    if venv is None:
        kwargs.setdefault("autoreset_mode", "same_step")
        venv = make_vector_env(**kwargs)
    elif kwargs:
        raise TypeError("give either a RemoteVectorEnv or the keyword arguments to make one, not both")
    try:
        yield venv
    except BaseException:
        if made:
            with contextlib.suppress(Exception):  # the first error is the one to see
                venv.close()
        raise
