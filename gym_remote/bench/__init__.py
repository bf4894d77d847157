"""``gym-remote bench``: every figure as a ratio to its floor, p50 and p99, measured in one run.

Sections (``--only``; all of them by default, only ``single`` against a given ``HOST:PORT``):

- ``single``: a CartPole step and a ping against the raw ZeroMQ floor of the same byte sizes and
  against a pickle-over-ZeroMQ peer of the same env (:mod:`gym_remote.bench.single`);
- ``payload``: a 1 MiB observation against msgpack-numpy and raw bytes;
- ``batched``: ``RemoteVectorEnv`` against a local ``SyncVectorEnv`` for N in 1..1024, with the
  fixed and per-env costs of a straight-line fit (:mod:`gym_remote.bench.batched`);
- ``images``: 64 x 84x84x3 uint8 observations per step, GB/s against raw ZeroMQ;
- ``link``: an emulated slow link (a delaying TCP relay on loopback) with 1, 2, 4, 8 groups in flight.

``--tunnel SSH_HOST`` (direct against OpenSSH and Fabric tunnels, :mod:`gym_remote.bench.tunnels`) and
``--render`` are separate runs.
Every section shows a progress bar; ``--json`` writes every figure.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gym_remote.bench.batched import SIZES, bench_images, bench_link, bench_sweep
from gym_remote.bench.peers import DelayRelay
from gym_remote.bench.single import bench_payload, bench_single
from gym_remote.bench.timing import Timing

#: ``gym-remote bench`` (its parser and run) and the delaying relay examples/train_async_groups.py uses; the
#: measurement helpers below are the benchmark's own parts.
__all__ = [
    "DelayRelay",
    "add_arguments",
    "run_bench",
]

SECTIONS = ("single", "payload", "batched", "images", "link")


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive integers")
    return sizes


def _sections(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``gym-remote bench`` (``target`` is added by the CLI)."""
    p.add_argument(
        "--only", type=_sections, metavar="SECTIONS", help=f"comma-separated subset of {', '.join(SECTIONS)}"
    )
    p.add_argument("--task", default=None, help="task for 'single' (default: CartPole-v1 locally, else the server's)")
    p.add_argument("--steps", type=int, default=3000, help="timed calls per figure of 'single' (default 3000)")
    p.add_argument("--payload", action="store_true", help="with HOST:PORT: also the 1 MiB 'payload' section")
    p.add_argument("--with-state", action="store_true", help="'single' also times steps with the state attached")
    p.add_argument("--vector", action="store_true", help="the batched sections only: batched, images, link")
    p.add_argument(
        "--sizes", type=_sizes, default=list(SIZES), help="N of the batched sweep (default 1,4,16,64,256,1024)"
    )
    p.add_argument("--seconds", type=float, default=2.0, help="seconds per batched figure (default 2)")
    p.add_argument("--link-envs", type=int, default=2048, help="sub-envs over the emulated link (default 2048)")
    p.add_argument(
        "--groups", type=_sizes, default=[1, 2, 4, 8], help="groups in flight over the link (default 1,2,4,8)"
    )
    p.add_argument("--rtt-ms", type=float, default=50.0, help="round-trip time of the emulated link (default 50)")
    p.add_argument("--render", action="store_true", help="local MuJoCo replay rendering frames/s instead")
    p.add_argument(
        "--tunnel", metavar="SSH_HOST", help="compare direct, OpenSSH and Fabric tunnels to SSH_HOST instead"
    )
    p.add_argument("--config", help="host config YAML for --tunnel")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")


def run_bench(args: argparse.Namespace) -> int:
    """Entry point of ``gym-remote bench``: runs the chosen sections and prints their figures."""
    if args.render:
        from gym_remote.bench.render import render_benchmark

        for width, height in ((320, 240), (640, 480)):
            print(f"local replay rendering {width}x{height}: {render_benchmark(width, height, 100):.1f} frames/s")
        return 0
    if args.tunnel:
        from gym_remote.bench.tunnels import format_results, tunnel_benchmark

        print(format_results(tunnel_benchmark(args.tunnel, args.config, steps=max(100, args.steps // 10))))
        return 0
    if args.only:
        sections = args.only
    elif args.vector:
        sections = ["batched", "images", "link"]
    elif args.target is not None:
        sections = ["single", "payload"] if args.payload else ["single"]
    else:
        sections = list(SECTIONS)
    results: dict[str, Any] = {}
    if "single" in sections or "payload" in sections:
        results.update(_run_single(args, sections))
    if "batched" in sections:
        results["batched"] = bench_sweep(args.sizes, args.seconds)
        print_sweep(results["batched"])
    if "images" in sections:
        results["images"] = bench_images(max(args.seconds, 2.0))
        print_images(results["images"])
    if "link" in sections:
        results["link"] = bench_link(args.link_envs, args.groups, args.rtt_ms / 1e3, max(args.seconds, 3.0))
        print_link(results["link"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))
    return 0


def _run_single(args: argparse.Namespace, sections: list[str]) -> dict[str, Any]:
    server = None
    results: dict[str, Any] = {}
    try:
        if args.target is None:
            from gym_remote.local import LocalServer

            server = LocalServer("gymnasium", args.task or "CartPole-v1")
            host, port = server.local_host, server.local_port
        else:
            host, port = args.target
        if "single" in sections:
            # The pickle peer runs the env here: only for a task this machine can make.
            pickle_task = (args.task or "CartPole-v1") if args.target is None or args.task else None
            results["single"] = bench_single(host, port, args.task, args.steps, args.with_state, pickle_task)
        if "payload" in sections:
            results["payload"] = bench_payload(host, port, max(200, args.steps // 10))
    finally:
        if server is not None:
            server.close()
    if "single" in results:
        print_single(results["single"], f"{host}:{port}")
    if "payload" in results:
        print_payload(results["payload"])
    return results


# ---------------------------------------------------------------------------------- printing

ROW = "{:<40} {:>9} {:>9} {:>10} {:>10}"


def _table(timings: dict[str, Timing], floor: Timing) -> None:
    print(ROW.format("what", "p50 us", "p99 us", "p50/floor", "p99/floor"))
    for t in timings.values():
        ratios = (f"{t.p50 / floor.p50:.2f}x", f"{t.p99 / floor.p99:.2f}x")
        print(ROW.format(t.name, f"{t.p50:.1f}", f"{t.p99:.1f}", *ratios))


def print_single(out: dict[str, Any], where: str) -> None:
    timings: dict[str, Timing] = out.pop("_timings")
    floor, step = timings[out["floor"]], timings["env.step"]
    print(f"single env: {out['task']} at {where} (interleaved blocks, one run)")
    _table(timings, floor)
    print(f"step p50 / raw zmq floor p50: {step.p50 / floor.p50:.2f}x (target <= 1.5x)")
    print(f"step p99 / raw zmq floor p99: {step.p99 / floor.p99:.2f}x (target <= 4x)")
    if "step_over_pickle_p50" in out:
        print(
            f"step / pickle peer step: p50 {out['step_over_pickle_p50']:.2f}x (target < 1), "
            f"p99 {out['step_over_pickle_p99']:.2f}x"
        )
    ping = timings["env.ping"]
    print(f"ping p50 / raw zmq floor p50: {ping.p50 / floor.p50:.2f}x (the framework alone, no env work)")
    if "state_over_plain" in out:
        print(f"step with state / step without state (p50): {out['state_over_plain']:.3f}x")


def print_payload(out: dict[str, Any]) -> None:
    timings: dict[str, Timing] = out.pop("_timings")
    print("1 MiB observation (floor: raw ZeroMQ with a 1 MiB reply)")
    _table(timings, timings["raw zmq bytes (1 MiB reply)"])
    print(f"1 MiB obs step p50 / msgpack-numpy single frame p50: {out['step_over_msgpack_numpy']:.2f}x")


def print_sweep(out: dict[str, Any]) -> None:
    print("batched CartPole-v1 steps, p50 (p99) us per batched step; rate = remote env-steps/s over local's")
    print(f"{'N':>5} {'raw zmq':>17} {'remote':>19} {'local Sync':>19} {'rate':>6}")
    for r in out["rows"]:
        cells = [f"{r[f'{k}_p50_us']:.0f} ({r[f'{k}_p99_us']:.0f})" for k in ("raw", "remote", "local")]
        print(f"{r['n']:>5} {cells[0]:>17} {cells[1]:>19} {cells[2]:>19} {r['remote_over_local']:>5.2f}x")
    fit, rel = out["fit_us"], out.get("fit_rel_us")
    print("  straight lines through the p50s: [OLS] unweighted least squares (the earlier runs' figure);")
    print("  [rel] least relative error, each N weighted by 1/p50 (large-N noise does not set the intercept)")
    for k in ("raw", "remote", "local"):
        line = f"  fit {k:<6}: [OLS] {fit[k]['fixed']:8.1f} us + {fit[k]['per_env']:6.2f} us per env"
        if rel:
            line += f"   [rel] {rel[k]['fixed']:8.1f} us + {rel[k]['per_env']:6.2f} us per env"
        print(line)
    print(
        f"fixed cost remote / raw: [OLS] {out['fixed_over_raw']:.2f}x"
        + (f", [rel] {out['fixed_over_raw_rel']:.2f}x" if rel else "")
        + f" (target <= 2x; OLS fixed over the N=1 raw round trip {out['fixed_over_raw_n1']:.2f}x"
        + (f"; N=1 remote step over N=1 raw {out['n1_over_raw']:.2f}x)" if "n1_over_raw" in out else ")")
    )
    print(
        f"per-env cost remote / local: [OLS] {out['per_env_over_local']:.2f}x"
        + (f", [rel] {out['per_env_over_local_rel']:.2f}x" if rel else "")
        + " (target <= 1.2x)"
    )


def print_images(out: dict[str, Any]) -> None:
    print(
        f"images, {out['n']} x {'x'.join(map(str, out['shape']))} uint8 per step: remote "
        f"{out['remote_GBps_sustained']:.2f} GB/s sustained ({out['remote_GBps_p50']:.2f} at p50, p99 step "
        f"{out['remote_p99_us']:.0f} us); raw ZeroMQ {out['raw_GBps_sustained']:.2f} GB/s "
        f"({out['remote_over_raw']:.2f}x of raw; targets >= 1 GB/s and >= 0.8x of raw)"
    )
    print(
        f"  a remote step at p50, {out['remote_p50_us']:.0f} us: the raw transport {out['raw_p50_us']:.0f} us + the "
        f"sub-envs' own step in SyncVectorEnv {out['envs_p50_us']:.0f} us + gym-remote {out['framework_us']:.0f} us "
        f"(raw + sub-envs = {out['remote_over_raw_and_envs']:.2f}x of the remote step)"
    )


def print_link(out: dict[str, Any]) -> None:
    print(
        f"emulated {out['rtt_ms']:.0f} ms link, {out['num_envs']} CartPole-v1 envs (bound num_envs/RTT "
        f"{out['bound_env_steps_per_s']:,.0f} env-steps/s):"
    )
    rates = out["rates"]
    print(f"  {'local SyncVectorEnv':<22} {rates['local SyncVectorEnv']:>12,.0f} env-steps/s")
    for name, ratio in out["over_local"].items():
        bound = out["over_bound"][name]
        label = f"{name} in flight"
        print(f"  {label:<22} {rates[name]:>12,.0f} env-steps/s  {ratio:.2f}x local, {bound:.2f}x the bound")
    holding = out["holding_bound"]
    best = max(out["over_holding_bound"].values())
    why = (
        "num_envs/RTT is below the local stepping rate"
        if holding == "link"
        else "the local stepping rate is below num_envs/RTT"
    )
    print(f"  the bound that holds: the {holding} ({why}); the best figure reaches {best:.2f}x of it")
