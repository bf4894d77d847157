"""Slow links, 1 MiB step: plaintext ZeroMQ, CURVE, OpenSSH and Fabric tunnels, each with and without
compression, on loopback and on a link capped by a tbf qdisc between two network namespaces.

Loopback: a throwaway sshd on 127.0.0.1 starts the servers; the client runs in this process. Capped
(``--rate``, default 100mbit; root only): two network namespaces this script makes and deletes, a veth
pair capped at the rate each way by the kernel, sshd and the servers in one namespace, the client in
a process of its own in the other. Every mode is timed in interleaved blocks, the whole comparison
repeated; figures are the median [min-max] of the repeats' p50s, ratios taken within each repeat.

Run: python examples/bench_links.py [--rate 100mbit] [--content camera|noise|zeros] [--repeats 3]
     (needs openssh-server and gym-remote[launch,compress]: bash scripts/setup.sh test)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gym_remote.bench.links import MODES, CappedLink, compare_links, format_links, run_in_namespace
from tests.sshd import start_sshd


def _modes(text: str) -> list[str]:
    names = [m for m in text.split(",") if m]
    unknown = sorted(set(names) - set(MODES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown modes {unknown}; choose from {', '.join(MODES)}")
    return names


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--where", choices=("both", "loopback", "capped"), default="both", help="which links")
    parser.add_argument("--rate", default="100mbit", help="tbf rate of the capped link, each way (default 100mbit)")
    parser.add_argument("--burst", default="32kbit", help="tbf burst (default 32kbit; 1mbit for rates of 1gbit)")
    parser.add_argument("--content", default="camera", help="observation content: camera, noise or zeros")
    parser.add_argument("--modes", type=_modes, default=list(MODES), help=f"comma-separated of {', '.join(MODES)}")
    parser.add_argument("--block", type=int, default=0, help="steps per block (default 50 loopback, 10 capped)")
    parser.add_argument("--blocks", type=int, default=3, help="blocks per mode in each repeat (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the whole comparison (default 3)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = {}
    common = {"modes": args.modes, "content": args.content, "blocks": args.blocks, "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        if args.where in ("both", "loopback"):
            sshd = start_sshd(Path(tmp) / "sshd-loopback")
            try:
                cfg = sshd.host_config(runtime_dir=f"{tmp}/runtime-loopback")
                figures["loopback"] = compare_links(cfg, block=args.block or 50, curve_dir=f"{tmp}/curve-l", **common)
            finally:
                sshd.stop()
            print(format_links(figures["loopback"], "loopback"), "\n", flush=True)
        if args.where in ("both", "capped"):
            with CappedLink(args.rate, burst=args.burst) as link:
                sshd = start_sshd(Path(tmp) / "sshd-capped", listen=link.server_addr, prefix=link.prefix("server"))
                try:
                    spec = {
                        "host_config": sshd.host_config(runtime_dir=f"{tmp}/runtime-capped"),
                        "bind_host": link.server_addr,
                        "block": args.block or 10,
                        "curve_dir": f"{tmp}/curve-c",
                        "counters": {side: link.counter(side) for side in ("server", "client")},
                        **common,
                    }
                    figures["capped"] = run_in_namespace(link.prefix("client"), spec)
                finally:
                    sshd.stop()
            print(format_links(figures["capped"], f"capped link, tbf {args.rate} each way"), flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
