"""The ``gym-remote`` command. Each sub-command is a thin layer over the library.

One module per command group, each giving ``cmd_*`` (run it) and ``_add_*`` (its sub-parser):
``serve``; ``probe`` (ping, bench); ``launch`` (launch over SSH or ``--ray``, status, stop, logs);
``demo`` (demo, replay); ``doctor``. ``args`` holds the argument types they share. This module
assembles the parser and runs :func:`main` (the ``gym-remote`` console script and ``python -m gym_remote``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from gym_remote.cli.demo import _add_demo, _add_replay
from gym_remote.cli.doctor import _add_doctor
from gym_remote.cli.launch import _add_launch
from gym_remote.cli.probe import _add_bench, _add_ping
from gym_remote.cli.serve import _add_serve

#: The command line's API is the command; each module's ``cmd_*`` and ``_add_*`` are its parts.
__all__ = [
    "build_parser",
    "main",
]

log = logging.getLogger("gym_remote.cli")

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
