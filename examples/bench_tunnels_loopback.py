"""Tunnel figures on one machine: start a throwaway sshd on 127.0.0.1 and run `gym-remote bench --tunnel`.

Run: python examples/bench_tunnels_loopback.py   (needs openssh-server: bash scripts/setup.sh)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gym_remote.cli import main
from tests.sshd import start_sshd


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="steps per tunnel kind (a tenth with 1 MiB)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_sshd(Path(tmp))
        try:
            config = Path(tmp) / "loopback.yaml"
            config.write_text(yaml.safe_dump(server.host_config()))
            return main(["bench", "--tunnel", server.host, "--config", str(config), "--steps", str(args.steps)])
        finally:
            server.stop()


if __name__ == "__main__":
    raise SystemExit(run())
