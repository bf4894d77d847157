"""``gym-remote ping`` and ``gym-remote bench``: is a server there, and how fast is it."""

from __future__ import annotations

import argparse

from gym_remote.cli.args import _host_port


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
