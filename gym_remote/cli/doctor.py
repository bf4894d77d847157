"""``gym-remote doctor``: what this machine can serve."""

from __future__ import annotations

import argparse
import json


def cmd_doctor(args: argparse.Namespace) -> int:
    from gym_remote_apps.doctor import doctor, format_report

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
