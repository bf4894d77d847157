"""Tunnel figures on one machine: a throwaway sshd on 127.0.0.1, then `gym-remote bench --tunnel` runs.

Each run launches one `gym_remote/Payload-v0` server per mode (direct, OpenSSH, Fabric), then times
step round trips with a 16 B and a 1 MiB observation in interleaved blocks (every mode in turn, five
rounds), so a load that comes and goes hits every mode alike; ratios to direct are taken within a run,
and with ``--repeats N`` the summary gives the median of the N runs' ratios and each run's.

Run: python examples/bench_tunnels_loopback.py [--repeats 5]   (needs openssh-server: bash scripts/setup.sh)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gym_remote.bench.tunnels import format_results, tunnel_benchmark
from tests.sshd import start_sshd


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="timed steps per mode with 16 B")
    parser.add_argument("--big-steps", type=int, default=100, help="timed steps per mode with 1 MiB")
    parser.add_argument("--repeats", type=int, default=1, help="runs; the summary gives median ratios")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_sshd(Path(tmp))
        try:
            runs = []
            for i in range(args.repeats):
                results = tunnel_benchmark(
                    server.host, server.host_config(), steps=args.steps, big_steps=args.big_steps
                )
                print(f"run {i + 1}/{args.repeats}\n{format_results(results)}\n", flush=True)
                runs.append({r.mode: r for r in results})
        finally:
            server.stop()
    if args.repeats > 1:
        print(f"median of {args.repeats} runs (ratios taken within each run):")
        print(f"{'mode':<8} {'16 B p50 ms':>11} {'x direct':>8} {'1 MiB p50 ms':>12} {'x direct':>8} {'p99 ms':>7}")
        for mode in runs[0]:
            small = [run[mode].small_ms for run in runs]
            big = [run[mode].big_ms for run in runs]
            small_x = [run[mode].small_ms / run["direct"].small_ms for run in runs]
            big_x = [run[mode].big_ms / run["direct"].big_ms for run in runs]
            p99 = [run[mode].big_p99_ms for run in runs]
            print(
                f"{mode:<8} {statistics.median(small):>11.3f} {statistics.median(small_x):>7.2f}x "
                f"{statistics.median(big):>12.2f} {statistics.median(big_x):>7.2f}x {statistics.median(p99):>7.2f}"
                f"   (1 MiB x direct per run: {', '.join(f'{x:.2f}' for x in big_x)})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
