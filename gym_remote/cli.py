"""The ``gym-remote`` command. Each sub-command is a thin layer over the library."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("gym_remote.cli")


def _host_port(text: str, default_port: int = 5555) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT") from None


def _json_map(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object, e.g. '{\"frame_skip\": 4}'")
    return value


# --------------------------------------------------------------------------------------- serve


def cmd_serve(args: argparse.Namespace) -> int:
    import importlib

    import zmq
    import zmq.auth

    import gym_remote  # noqa: F401  (registers the built-in tasks)
    from gym_remote.backends import make_factory
    from gym_remote.protocol import Limits
    from gym_remote.server import EnvServer

    for module in args.imports:
        importlib.import_module(module)  # operator-given modules that register env ids
    options: dict[str, Any] = {"vectorization": args.vectorization}
    if args.backend == "gymnasium":
        options["allow_any_task"] = not args.fixed_task
    factory = make_factory(args.backend, args.task, args.kwargs, **options)
    secret = public = None
    if args.curve_secret:
        public, secret = zmq.auth.load_certificate(args.curve_secret)
        if secret is None:
            raise SystemExit(f"{args.curve_secret} holds no secret key")
    server = EnvServer(
        factory,
        args.address,
        max_sessions=args.max_sessions,
        idle_timeout=args.idle_timeout or None,
        max_message_bytes=args.max_message_bytes,
        limits=Limits(max_array_bytes=args.max_message_bytes),
        curve_secret_key=secret,
        curve_public_key=public,
        insecure=args.insecure,
        backend=args.backend,
        task=args.task,
    )
    server.serve_forever()
    return 0


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve an env to gym-remote clients",
        description="Serve a simulator task over ZeroMQ. Prints 'GYM_REMOTE READY <endpoint>' on stdout when "
        "ready; logs go to stderr. Binds 127.0.0.1 unless told otherwise: reach it through an SSH tunnel.",
    )
    p.add_argument("--backend", default="gymnasium", choices=["gymnasium", "python", "isaaclab", "roboverse"])
    p.add_argument(
        "--task",
        "--env",
        dest="task",
        help="env id (gymnasium, isaaclab, roboverse) or pkg.module:factory (python)",
    )
    p.add_argument("--kwargs", type=_json_map, default={}, help="task keyword arguments as a JSON object")
    p.add_argument(
        "--address", default="tcp://127.0.0.1:5555", help="ZeroMQ endpoint; port '*' picks a free one"
    )
    p.add_argument("--max-sessions", type=int, default=16, help="concurrent client sessions (default 16)")
    p.add_argument(
        "--idle-timeout", type=float, default=600.0, help="close sessions idle this many seconds (0: never)"
    )
    p.add_argument("--max-message-bytes", type=int, default=1 << 30, help="drop larger incoming messages")
    p.add_argument(
        "--vectorization", choices=["sync", "async"], default="sync", help="how N sub-envs are stepped"
    )
    p.add_argument("--fixed-task", action="store_true", help="refuse clients that ask for another task")
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (to register env ids)",
    )
    p.add_argument(
        "--curve-secret", type=Path, help="CURVE secret key file (zmq.auth certificate) to encrypt the link"
    )
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback address without CURVE")
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
    p = sub.add_parser(
        "bench",
        help="measure latency and throughput against a server",
        description="Measure reset/step/get_state latency and steps/s against a server, with the raw ZeroMQ "
        "REQ/REP floor for the same payload sizes measured in the same run (the overhead is the ratio). "
        "Without HOST:PORT a local server is started.",
    )
    p.add_argument(
        "target", nargs="?", type=_host_port, metavar="HOST:PORT", help="server (default: start one locally)"
    )
    p.add_argument(
        "--task", default=None, help="task to ask for (default: CartPole-v1 locally, else the server's)"
    )
    p.add_argument("--steps", type=int, default=3000, help="timed steps (default 3000)")
    p.add_argument(
        "--payload", action="store_true", help="also time a 1 MiB observation against msgpack-numpy"
    )
    p.add_argument("--with-state", action="store_true", help="also time steps with the state attached")
    p.add_argument("--vector", action="store_true", help="batched vector-env figures instead (starts its own servers)")
    p.add_argument("--num-envs", type=int, default=64, help="sub-envs for --vector (default 64)")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds per --vector figure (default 3)")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.set_defaults(func=cmd_bench)


# ---------------------------------------------------------------------------------------- main

_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_serve, _add_ping, _add_bench]


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
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
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
