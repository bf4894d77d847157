"""``gym-remote serve``: a simulator task served over ZeroMQ until stopped."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from gym_remote.cli.args import _json_map, _names
from gym_remote.config import BACKENDS, add_server_config_flags, admission_of, positive_int


def cmd_serve(args: argparse.Namespace) -> int:
    import importlib

    import gym_remote  # noqa: F401  (registers the built-in tasks)
    from gym_remote.backends import DEFAULT_MAX_ENVS, DEFAULT_MAX_PROCESSES, PYTHON_ENV_BACKENDS, make_factory
    from gym_remote.config import TaskConfig, load
    from gym_remote.protocol import Limits
    from gym_remote.server import EnvServer
    from gym_remote.server.startup import load_curve_secret
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
    fixed_task, max_envs = args.fixed_task, args.max_envs
    allow_kwargs = None if args.allow_kwargs is None else frozenset().union(*args.allow_kwargs)
    if args.config:  # a task config (configs/tasks/*.yaml); flags given on the command line win
        cfg = load(TaskConfig, args.config, kind="tasks")
        backend, task = backend or cfg.backend, task or cfg.task
        kwargs = {**cfg.task_kwargs, **kwargs}
        fixed_task = fixed_task or cfg.fixed_task
        if allow_kwargs is None and cfg.allow_kwargs is not None:
            allow_kwargs = frozenset(cfg.allow_kwargs)
        max_envs = max_envs or cfg.num_envs
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
        max_envs=max_envs or DEFAULT_MAX_ENVS.get(backend, SessionLimits.max_envs),
        max_kwargs_bytes=args.max_kwargs_bytes,
        allowed_kwargs=allow_kwargs,
        fixed_kwargs=dict(kwargs) if fixed_task else {},
        allow_client_paths=args.allow_client_paths,
    )
    admission = admission_of(args)
    factory = make_factory(backend, task, kwargs, **options)
    secret = public = None
    if args.curve_secret:
        public, secret = load_curve_secret(args.curve_secret)  # refused when group or others may read it
    server = EnvServer(
        factory,
        **dataclasses.asdict(admission),
        session_limits=session_limits,
        limits=Limits(max_array_bytes=admission.max_message_bytes),
        curve_secret_key=secret,
        curve_public_key=public,
        curve_clients=str(args.curve_clients) if args.curve_clients else None,
        insecure=args.insecure,
        backend=backend,
        task=task,
        watch_pid=args.watch_pid,
        freeze_gc=True,  # this process is the server's alone
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
    p.add_argument("--backend", choices=BACKENDS, help="default: gymnasium")
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
    add_server_config_flags(p)
    p.add_argument(
        "--max-envs",
        type=positive_int,
        metavar="N",
        help="sub-envs one session may ask for (default 1024 for gymnasium and python, 16384 for isaaclab and "
        "roboverse)",
    )
    p.add_argument(
        "--max-processes",
        type=positive_int,
        default=DEFAULT_MAX_PROCESSES,
        metavar="N",
        help=f"worker processes --vectorization async may run over all sessions (default {DEFAULT_MAX_PROCESSES}: "
        "twice the CPUs)",
    )
    p.add_argument(
        "--max-kwargs-bytes",
        type=positive_int,
        default=SessionLimits.max_kwargs_bytes,
        metavar="N",
        help=f"size of a client's task_kwargs (default {SessionLimits.max_kwargs_bytes})",
    )
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
        action="append",
        metavar="PATTERN",
        help="task keywords clients may set: fnmatch patterns, repeatable or comma-separated. gymnasium and "
        "python allow any keyword until this lists the allowed ones ('' for none); isaaclab allows a built-in "
        "list of harmless env-cfg settings (physics, episode_length_s, compute_final_obs, seed, "
        "scene.env_spacing, rewards.*.weight) and this adds cfg paths to it, however a client spells them "
        "(keyword, dotted keyword, Hydra override): e.g. 'scene.tiled_camera.*'. A client never changes "
        "isaaclab's num_envs or device this way",
    )
    p.add_argument(
        "--allow-client-paths",
        action="store_true",
        help="let client keywords name files on this server (by default '/x', '~/x', './x', '..' and "
        "'${...}' are refused, and in isaaclab overrides also quoted strings, lists and dicts)",
    )
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (to register env ids)",
    )
    p.add_argument(
        "--curve-secret",
        type=Path,
        help="CURVE secret key file (zmq.auth certificate) to encrypt the link; refused unless private (chmod 600)",
    )
    p.add_argument(
        "--curve-clients", type=Path, metavar="DIR", help="client public keys allowed in (with --curve-secret)"
    )
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback address without CURVE")
    p.add_argument("--watch-pid", type=int, metavar="PID", help="exit when process PID is gone (set by local clients)")
    p.set_defaults(func=cmd_serve)
