"""The ``gym-remote`` command. Each sub-command is a thin layer over the library."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("gym_remote.cli")


def _host_port(text: str) -> tuple[str, int]:
    from gym_remote.client import parse_host_port

    try:
        return parse_host_port(text, 5555)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _json_map(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object, e.g. '{\"frame_skip\": 4}'")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def _names(text: str) -> frozenset[str]:
    return frozenset(n.strip() for n in text.split(",") if n.strip())


# --------------------------------------------------------------------------------------- serve


def cmd_serve(args: argparse.Namespace) -> int:
    import importlib

    import zmq
    import zmq.auth

    import gym_remote  # noqa: F401  (registers the built-in tasks)
    from gym_remote.backends import DEFAULT_MAX_ENVS, DEFAULT_MAX_PROCESSES, PYTHON_ENV_BACKENDS, make_factory
    from gym_remote.protocol import Limits
    from gym_remote.server import EnvServer
    from gym_remote.session import SessionLimits

    # stdout carries one line, READY, which launchers wait for; anything a simulator prints there (Isaac
    # Lab's [INFO] lines, C libraries) goes to stderr instead, before and after READY.
    sys.stdout.flush()
    # Paths first: a backend may change the working directory (MetaSim's data_dir).
    for name in ("curve_secret", "curve_clients"):
        if getattr(args, name):
            setattr(args, name, Path(getattr(args, name)).resolve())
    ready = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    for module in args.imports:
        importlib.import_module(module)  # operator-given modules that register env ids
    backend, task, kwargs = args.backend, args.task, dict(args.kwargs)
    fixed_task, allow_kwargs = args.fixed_task, args.allow_kwargs
    if args.config:  # a task config (configs/tasks/*.yaml); flags given on the command line win
        from gym_remote.config import TaskConfig, load

        cfg = load(TaskConfig, args.config, kind="tasks")
        backend, task = backend or cfg.backend, task or cfg.task
        kwargs = {**cfg.task_kwargs, **kwargs}
        fixed_task = fixed_task or cfg.fixed_task
        if allow_kwargs is None and cfg.allow_kwargs is not None:
            allow_kwargs = frozenset(cfg.allow_kwargs)
    options: dict[str, Any] = {"vectorization": args.vectorization, "allow_any_task": not fixed_task}
    backend = backend or "gymnasium"
    if args.overrides:
        if backend != "isaaclab":
            raise SystemExit("--override is Isaac Lab's Hydra override syntax: use it with --backend isaaclab")
        kwargs["overrides"] = [*kwargs.get("overrides", []), *args.overrides]
    if backend in PYTHON_ENV_BACKENDS:
        options["max_processes"] = args.max_processes
    elif args.vectorization != "sync" or args.max_processes != DEFAULT_MAX_PROCESSES:
        raise SystemExit(
            f"--vectorization and --max-processes are for the gymnasium and python backends; {backend} batches natively"
        )
    session_limits = SessionLimits(
        max_envs=args.max_envs or DEFAULT_MAX_ENVS.get(backend, SessionLimits.max_envs),
        max_kwargs_bytes=args.max_kwargs_bytes,
        allowed_kwargs=allow_kwargs,
        fixed_kwargs=dict(kwargs) if fixed_task else {},
        allow_client_paths=args.allow_client_paths,
    )
    factory = make_factory(backend, task, kwargs, **options)
    secret = public = None
    if args.curve_secret:
        public, secret = zmq.auth.load_certificate(args.curve_secret)
        if secret is None:
            raise SystemExit(f"{args.curve_secret} holds no secret key")
    server = EnvServer(
        factory,
        args.address,
        max_sessions=args.max_sessions,
        max_sessions_per_peer=args.max_sessions_per_peer,
        session_limits=session_limits,
        idle_timeout=args.idle_timeout or None,
        max_message_bytes=args.max_message_bytes,
        limits=Limits(max_array_bytes=args.max_message_bytes),
        curve_secret_key=secret,
        curve_public_key=public,
        curve_clients=str(args.curve_clients) if args.curve_clients else None,
        insecure=args.insecure,
        backend=backend,
        task=task,
        watch_pid=args.watch_pid,
    )
    server.serve_forever(ready=ready)
    return 0


def _add_serve(sub: argparse._SubParsersAction) -> None:
    from gym_remote.backends import DEFAULT_MAX_PROCESSES
    from gym_remote.session import SessionLimits

    p = sub.add_parser(
        "serve",
        help="serve an env to gym-remote clients",
        description="Serve a simulator task over ZeroMQ. Prints 'GYM_REMOTE READY <endpoint>' on stdout when "
        "ready; logs go to stderr. Binds 127.0.0.1 unless told otherwise: reach it through an SSH tunnel.",
    )
    p.add_argument("--backend", choices=["gymnasium", "python", "isaaclab", "roboverse"], help="default: gymnasium")
    p.add_argument(
        "--config",
        metavar="NAME",
        help="a task config (configs/tasks/NAME.yaml or a path): backend, task and kwargs; flags override it",
    )
    p.add_argument(
        "--task",
        "--env",
        dest="task",
        help="env id (gymnasium, isaaclab, roboverse) or pkg.module:factory (python)",
    )
    p.add_argument("--kwargs", type=_json_map, default={}, help="task keyword arguments as a JSON object")
    p.add_argument(
        "--override",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Isaac Lab Hydra override, repeatable (e.g. presets=newton_mjwarp, env.scene.replicate_physics=true)",
    )
    p.add_argument("--address", default="tcp://127.0.0.1:5555", help="ZeroMQ endpoint; port '*' picks a free one")
    p.add_argument("--max-sessions", type=_positive, default=16, help="concurrent client sessions (default 16)")
    p.add_argument(
        "--max-sessions-per-peer",
        type=_positive,
        metavar="N",
        help="sessions one peer (an IP address, or a client key with --curve-clients) may hold (default: half "
        "of --max-sessions), so that one client cannot lock the others out",
    )
    p.add_argument(
        "--max-envs",
        type=_positive,
        metavar="N",
        help="sub-envs one session may ask for (default 1024 for gymnasium and python, 16384 for isaaclab and "
        "roboverse)",
    )
    p.add_argument(
        "--max-processes",
        type=_positive,
        default=DEFAULT_MAX_PROCESSES,
        metavar="N",
        help=f"worker processes --vectorization async may run over all sessions (default {DEFAULT_MAX_PROCESSES}: "
        "twice the CPUs)",
    )
    p.add_argument(
        "--max-kwargs-bytes",
        type=_positive,
        default=SessionLimits.max_kwargs_bytes,
        metavar="N",
        help=f"size of a client's task_kwargs (default {SessionLimits.max_kwargs_bytes})",
    )
    p.add_argument("--idle-timeout", type=float, default=600.0, help="close sessions idle this many seconds (0: never)")
    p.add_argument("--max-message-bytes", type=int, default=1 << 30, help="drop larger incoming messages")
    p.add_argument("--vectorization", choices=["sync", "async"], default="sync", help="how N sub-envs are stepped")
    p.add_argument(
        "--fixed-task",
        action="store_true",
        help="refuse clients that ask for another task, or for other values of the keywords given here (--kwargs, "
        "or the task config's)",
    )
    p.add_argument(
        "--allow-kwargs",
        type=_names,
        metavar="NAMES",
        help="the only task keywords clients may set, comma-separated ('' for none; default: any)",
    )
    p.add_argument(
        "--allow-client-paths",
        action="store_true",
        help="let client keywords name files on this server (by default '/x', '~/x', './x' and '..' are refused)",
    )
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (to register env ids)",
    )
    p.add_argument("--curve-secret", type=Path, help="CURVE secret key file (zmq.auth certificate) to encrypt the link")
    p.add_argument(
        "--curve-clients", type=Path, metavar="DIR", help="client public keys allowed in (with --curve-secret)"
    )
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback address without CURVE")
    p.add_argument("--watch-pid", type=int, metavar="PID", help="exit when process PID is gone (set by local clients)")
    p.set_defaults(func=cmd_serve)


# ---------------------------------------------------------------------------------------- ping


def cmd_ping(args: argparse.Namespace) -> int:
    import time

    from gym_remote.client import Connection
    from gym_remote.protocol import Kind

    host, port = args.target
    conn = Connection(host, port, timeout=args.timeout, retries=0)
    try:
        for _ in range(args.count):
            t0 = time.perf_counter()
            reply = conn.request(Kind.PING)
            print(
                f"{host}:{port} gym-remote {reply['version']}, {reply['sessions']} sessions, "
                f"{(time.perf_counter() - t0) * 1e3:.2f} ms"
            )
    finally:
        conn.close()
    return 0


def _add_ping(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ping", help="check that a server answers", description="Send PING requests and print the round trip."
    )
    p.add_argument("target", type=_host_port, metavar="HOST:PORT")
    p.add_argument("-n", "--count", type=int, default=1)
    p.add_argument("--timeout", type=float, default=5.0)
    p.set_defaults(func=cmd_ping)


# --------------------------------------------------------------------------------------- bench


def cmd_bench(args: argparse.Namespace) -> int:
    from gym_remote.bench import run_bench

    return run_bench(args)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from gym_remote.bench import add_arguments

    p = sub.add_parser(
        "bench",
        help="every figure as a ratio to its floor, p50 and p99, in one run",
        description="Measure in one run, in interleaved blocks, each figure against its floor: a single step "
        "and a ping against raw ZeroMQ REQ/REP of the same byte sizes and against a pickle-over-ZeroMQ peer; "
        "batched steps against a local SyncVectorEnv for N in 1..1024 with fitted fixed and per-env costs; "
        "image batches in GB/s; an emulated slow link with 1, 2, 4 and 8 groups in flight. Without HOST:PORT "
        "local servers are started; with it, only the single-env figures are measured against that server.",
    )
    p.add_argument(
        "target", nargs="?", type=_host_port, metavar="HOST:PORT", help="server (default: start one locally)"
    )
    add_arguments(p)
    p.set_defaults(func=cmd_bench)


# ------------------------------------------------------------------------------------- launch


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
        print(
            f"  gym.make_vec('Remote-IsaacSim-v0', num_envs=N, hosts={pool.hosts!r}, "
            f"**json.load(open({keys!r})))"
        )
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
    p.add_argument(
        "--resources", type=_json_map, help='with --ray: what each server asks Ray for (default {"GPU": 1})'
    )
    p.add_argument("--ray-address", help="with --ray: the cluster to join (default: RAY_ADDRESS, else a local one)")
    p.add_argument("--python", help="remote interpreter, e.g. '~/isaaclab/isaaclab.sh -p'")
    p.add_argument("--setup", help="shell line run first, e.g. 'source ~/venv/bin/activate'")
    p.add_argument("--workdir", help="remote working directory")
    p.add_argument("--backend", choices=["gymnasium", "python", "isaaclab", "roboverse"])
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


# ------------------------------------------------------------------------------ demo, replay


def cmd_demo(args: argparse.Namespace) -> int:
    from gym_remote.replay import run_demo

    # Progress as it happens (episodes, rendering), also when stderr is no terminal and tqdm is quiet.
    for name in ("gym_remote.replay", "gym_remote.local"):
        logging.getLogger(name).setLevel(min(logging.INFO, logging.getLogger(name).getEffectiveLevel()))
    if args.backend == "isaaclab":
        return _demo_isaaclab(args)
    where = "a local server" if args.target is None else f"{args.target[0]}:{args.target[1]}"
    print(f"gym-remote demo: stack-cube on {where}, {args.episodes} episodes, states replayed locally", flush=True)
    host, port = args.target if args.target else (None, None)
    r = run_demo(args.output, args.episodes, args.seed, host, port, args.width, args.height, args.camera)
    print(f"success rate      {r['success_rate']:.0%} ({r['successes']}/{r['episodes']} episodes stacked)")
    print(f"per-step latency  {r['mean_step_latency_ms']:.2f} ms (round trip with the state attached)")
    print(f"frames rendered   {r['frames']} ({r['steps']} steps)")
    print(f"video             {r['video']}")
    print(f"trajectory        {r['trajectory']}")
    return 0


def _demo_isaaclab(args: argparse.Namespace) -> int:
    from gym_remote.replay.isaaclab_demo import run_isaaclab_demo

    host, port = args.target if args.target else (None, None)
    where = "a local Isaac Lab 3.0 server (its venv)" if host is None else f"{host}:{port}"
    task = args.task or "IsaacContrib-Stack-Cube-Franka"
    print(f"gym-remote demo: {task} on {where}, {args.episodes} episodes", flush=True)
    r = run_isaaclab_demo(
        args.output, args.episodes, args.seed, host, port, args.task, args.width, args.height, args.camera or "oblique"
    )
    print(f"stacked (stack_1)  {r['stacked']}/{r['episodes']} episodes, first at steps {r['stack_steps']}")
    print(f"cube_2 - cube_1    {r['offsets']} m at the end of each episode")
    print(f"server + env       {r['startup_s']:.1f} s; episodes {', '.join(f'{t:.1f}' for t in r['episode_s'])} s")
    print(f"per-step latency   {r['step_ms']:.1f} ms (Isaac Lab step and round trip, state attached)")
    print(f"frames rendered    {r['frames']} in {r['render_s']:.1f} s ({sum(r['steps'])} steps)")
    for key in ("mp4", "npz", "xml", "png"):
        print(f"{key:<18} {r[key]}")
    return 0


def _frame_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--width", type=int, default=640, help="video width (default 640)")
    p.add_argument("--height", type=int, default=480, help="video height (default 480)")
    p.add_argument("--camera", help="camera name in the model (default: the model's first)")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole remote-replay loop",
        description="Start (or connect to) a stack-cube server, run the scripted expert, record the states it "
        "sends, replay them in a local MuJoCo model and write stack_cube.mp4 and stack_cube.npz.",
    )
    p.add_argument("target", nargs="?", type=_host_port, metavar="HOST:PORT", help="server (default: start one)")
    p.add_argument("-o", "--output", type=Path, default=Path("demo-out"), help="output folder (default demo-out)")
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--backend",
        choices=["isaaclab"],
        help="isaaclab: the real Isaac Lab 3.0 stack task, served from its venv (default: the built-in MuJoCo task)",
    )
    p.add_argument("--task", help="with --backend isaaclab: IsaacContrib-Stack-Cube-Franka (the default)")
    _frame_options(p)
    p.set_defaults(func=cmd_demo)


def cmd_replay(args: argparse.Namespace) -> int:
    from gym_remote.replay import replay

    frames = replay(
        args.trajectory,
        args.output,
        model=args.model,
        name_map=args.map,
        camera=args.camera,
        width=args.width,
        height=args.height,
        fps=args.fps,
        episode=args.episode,
        env_index=args.env_index,
    )
    print(f"wrote {args.output}: {frames} frames")
    return 0


def _add_replay(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="render a saved trajectory to video",
        description="Replay the states of a trajectory file (from MujocoReplayWrapper.save_trajectory or "
        "gym-remote demo) in a local MuJoCo model and write an MP4.",
    )
    p.add_argument("trajectory", type=Path, metavar="TRAJ.npz")
    p.add_argument("-o", "--output", type=Path, required=True, help="the MP4 to write")
    p.add_argument("--model", help="MJCF file (default: the built-in model for the built-in task)")
    p.add_argument("--map", help="name map: a YAML path or a name in configs/maps/")
    _frame_options(p)
    p.add_argument("--fps", type=float, help="default: the recorded fps")
    p.add_argument("--episode", type=int, help="only this episode")
    p.add_argument("--env-index", type=int, default=0, help="sub-env of a batched trajectory")
    p.set_defaults(func=cmd_replay)


# ------------------------------------------------------------------------------------- doctor


def cmd_doctor(args: argparse.Namespace) -> int:
    from gym_remote.doctor import doctor, format_report

    report = doctor()
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(format_report(report))
    return 0


def _add_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="check a server machine",
        description="Report which backends can be "
        "imported here and why not, the GPU if any, and the versions that matter.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_doctor)


# ---------------------------------------------------------------------------------------- main

_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_serve,
    _add_ping,
    _add_bench,
    _add_demo,
    _add_replay,
    _add_launch,
    _add_doctor,
]


def build_parser() -> argparse.ArgumentParser:
    from gym_remote import __version__

    parser = argparse.ArgumentParser(
        prog="gym-remote",
        description="Drive a simulator on another machine as a local Gymnasium env.",
    )
    parser.add_argument("--version", action="version", version=f"gym-remote {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * args.verbose
    if args.command == "serve":
        level = min(level, logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from gym_remote.errors import RemoteEnvError

        if isinstance(exc, (RemoteEnvError, ValueError, FileNotFoundError)) and args.verbose == 0:
            print(f"gym-remote {args.command}: error: {exc}", file=sys.stderr)
            return 1
        raise
