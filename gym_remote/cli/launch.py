"""``gym-remote launch`` (over SSH, or ``--ray N``), ``status``, ``stop`` and ``logs``: servers on other machines."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from gym_remote.cli.args import _json_map
from gym_remote.config import BACKENDS


def _host_options(p: argparse.ArgumentParser, optional: bool = False) -> None:
    p.add_argument(
        "host",
        metavar="HOST",
        nargs="?" if optional else None,
        help="SSH target (user@host[:port]) or a name in configs/hosts/",
    )
    p.add_argument("--config", help="a host config YAML (fields of configs/hosts/example.yaml)")
    p.add_argument("--ssh-port", type=int, dest="port", help="SSH port")
    p.add_argument("--key", dest="key_filename", help="SSH private key")
    p.add_argument("--gateway", help="jump host user@host:port")
    p.add_argument("--connect-timeout", type=float, help="SSH connect timeout (s)")
    p.add_argument("--runtime-dir", help="remote folder of PID and log files (default ~/.gym-remote)")


def _host_config(args: argparse.Namespace, **extra: Any) -> Any:
    from gym_remote.launch import resolve_config

    keys = ("port", "key_filename", "gateway", "connect_timeout", "runtime_dir")
    return resolve_config(args.host, args.config, **{k: getattr(args, k) for k in keys}, **extra)


def cmd_launch(args: argparse.Namespace) -> int:
    from gym_remote.launch import launch_server

    if args.ray is not None:
        return _launch_ray(args)
    if args.host is None:
        raise SystemExit("gym-remote launch: give a HOST to start a server over SSH, or --ray N for a Ray pool")
    cfg = _host_config(
        args,
        python=args.python,
        setup=args.setup,
        workdir=args.workdir,
        backend=args.backend,
        task=args.task,
        task_kwargs=args.kwargs,
        remote_port=args.remote_port,
        tunnel=args.tunnel,
        local_port=args.local_port,
        ready_timeout=args.ready_timeout,
    )
    handle = launch_server(config=cfg)
    if args.detach:
        print(f"server pid {handle.pid} on {cfg.host}, remote port {handle.remote_port} (left running)")
        handle.detach()
        return 0
    print(f"GYM_REMOTE ENDPOINT {handle.local_host}:{handle.local_port}")
    print(f"  gym.make('Remote-IsaacSim-v0', host='{handle.local_host}', port={handle.local_port})")
    print("Ctrl-C stops the tunnel and the server.", flush=True)
    try:
        _wait_for_stop()
    finally:
        handle.close()
    return 0


def _wait_for_stop() -> None:
    """Block until Ctrl-C or SIGTERM."""
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass


def _launch_ray(args: argparse.Namespace) -> int:
    """``launch --ray N``: N servers as Ray actors; endpoints on stdout, the client keys in a 0600 file."""
    import shutil
    import tempfile

    import ray

    from gym_remote.launch.ray_pool import start_pool

    if args.host is not None:
        raise SystemExit("gym-remote launch --ray: Ray places the servers; give no HOST")
    ray.init(address=args.ray_address, log_to_driver=False)
    pool = start_pool(
        args.ray,
        backend=args.backend or "gymnasium",
        task=args.task,
        task_kwargs=args.kwargs,
        resources=args.resources,
        startup_timeout=args.ready_timeout or 300.0,
    )
    folder = tempfile.mkdtemp(prefix="gym-remote-pool-")  # 0700: only this user reads the keys
    try:
        keys = os.path.join(folder, "client_keys.json")
        fd = os.open(keys, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({k: v.decode() if isinstance(v, bytes) else v for k, v in pool.client_options().items()}, f)
        for handle in pool.handles:
            print(f"GYM_REMOTE ENDPOINT {handle.host_port}")
        print(f"GYM_REMOTE KEYS {keys}")
        print(f"  gym.make_vec('Remote-IsaacSim-v0', num_envs=N, hosts={pool.hosts!r}, **json.load(open({keys!r})))")
        print("Ctrl-C stops the servers and deletes the keys.", flush=True)
        _wait_for_stop()
    finally:
        pool.close()
        shutil.rmtree(folder, ignore_errors=True)
        ray.shutdown()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from gym_remote.launch import list_servers

    records = list_servers(_host_config(args))
    if not records:
        print("no servers recorded")
    for r in records:
        uptime = "-" if r.uptime is None else f"{r.uptime:.0f} s"
        print(
            f"port {r.port:<6} pid {r.pid!s:<8} {'alive' if r.alive else 'stale':<6} uptime {uptime}  log {r.log_path}"
        )
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from gym_remote.launch import stop_server

    stopped = stop_server(_host_config(args), args.server_port)
    print(f"server on port {args.server_port} {'stopped' if stopped else 'was not running'}")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    import threading

    from gym_remote.launch import follow_log, read_log

    cfg = _host_config(args)
    if not args.follow:
        sys.stdout.write(read_log(cfg, args.server_port, lines=args.lines))
        return 0
    stop = threading.Event()
    try:
        follow_log(cfg, args.server_port, lambda line: print(line, flush=True), stop, lines=args.lines)
    except KeyboardInterrupt:
        stop.set()
    return 0


def _add_launch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "launch",
        help="start a server over SSH and tunnel to it",
        description="Start 'gym-remote serve' on HOST over SSH (stale servers on the same port are stopped by "
        "PID), wait for READY, tunnel a local port to it and print the endpoint; or, with --ray N, N servers as "
        "Ray actors on the nodes Ray picks (endpoints printed, the pool's client keys in a 0600 file). Runs "
        "until Ctrl-C, then stops the tunnel and the server(s).",
    )
    _host_options(p, optional=True)
    p.add_argument("--ray", type=int, metavar="N", help="start N servers as Ray actors instead of over SSH")
    p.add_argument("--resources", type=_json_map, help='with --ray: what each server asks Ray for (default {"GPU": 1})')
    p.add_argument("--ray-address", help="with --ray: the cluster to join (default: RAY_ADDRESS, else a local one)")
    p.add_argument("--python", help="remote interpreter, e.g. '~/isaaclab/isaaclab.sh -p'")
    p.add_argument("--setup", help="shell line run first, e.g. 'source ~/venv/bin/activate'")
    p.add_argument("--workdir", help="remote working directory")
    p.add_argument("--backend", choices=BACKENDS)
    p.add_argument("--task", help="task the server serves")
    p.add_argument("--kwargs", type=_json_map, help="task keyword arguments (JSON)")
    p.add_argument("--remote-port", type=int, help="server port on HOST (default: a free one)")
    p.add_argument("--tunnel", choices=["auto", "openssh", "fabric", "none"], help="how to reach it (default auto)")
    p.add_argument("--local-port", type=int, help="local end of the tunnel (default: a free one)")
    p.add_argument("--ready-timeout", type=float, help="seconds to wait for READY")
    p.add_argument("--detach", action="store_true", help="leave the server running and exit (no tunnel)")
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser(
        "status",
        help="servers recorded on a host",
        description="List the servers whose PID "
        "files are in the remote runtime folder: port, PID, alive or stale, uptime.",
    )
    _host_options(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "stop",
        help="stop a server on a host",
        description="Stop the server recorded for a "
        "port, by PID (after checking that the PID is that server), and remove its PID file.",
    )
    _host_options(p)
    p.add_argument("--port", dest="server_port", type=int, required=True, help="the server's remote port")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser(
        "logs",
        help="show a server's log",
        description="Print the end of a remote server's log, or follow it.",
    )
    _host_options(p)
    p.add_argument("--port", dest="server_port", type=int, required=True, help="the server's remote port")
    p.add_argument("-n", "--lines", type=int, default=100)
    p.add_argument("-f", "--follow", action="store_true")
    p.set_defaults(func=cmd_logs)
