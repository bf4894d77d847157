"""Benchmarks behind ``gym-remote bench``: latency of the env API against the raw ZeroMQ floor.

This machine class is noisy (2 cores, process switching dominates a loopback round trip), so every
comparison is a ratio of two things measured in the same run, in interleaved blocks, never an
absolute number against a fixed threshold.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq
from tqdm import tqdm

from gym_remote.protocol import Kind, Reply, Request, message_nbytes, pack_reply, pack_request


@dataclass
class Timing:
    name: str
    samples: list[float]

    def pct(self, q: float) -> float:
        return float(np.percentile(self.samples, q)) * 1e6 if self.samples else float("nan")

    def row(self) -> str:
        rate = 1e6 / self.pct(50) if self.samples else float("nan")
        return f"{self.name:<34} {self.pct(50):>9.1f} {self.pct(90):>9.1f} {self.pct(99):>9.1f} {rate:>10.0f}"


HEADER = f"{'what':<34} {'p50 us':>9} {'p90 us':>9} {'p99 us':>9} {'per s':>10}"


# -------------------------------------------------------------------------------- raw floor


def _echo_server(conn: Any, reply_kind: str, size: int, shape: tuple[int, ...]) -> None:
    """A REP socket in its own process that answers every request with a fixed-size payload."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    conn.send(sock.getsockopt_string(zmq.LAST_ENDPOINT))
    if reply_kind == "msgpack-numpy":
        import msgpack
        import msgpack_numpy

        obs = np.zeros(shape, np.uint8)
    payload = b"\0" * size
    while True:
        msg = sock.recv_multipart(copy=False)
        if msg[0].bytes == b"stop":
            sock.send(b"")
            break
        if reply_kind == "msgpack-numpy":
            obs.flat[0] += 1
            sock.send(msgpack.packb({"obs": obs, "reward": 1.0}, default=msgpack_numpy.encode), copy=False)
        else:
            sock.send(payload, copy=False)
    sock.close()
    ctx.term()


class EchoPeer:
    """The raw ZeroMQ REQ/REP round trip for given request/reply sizes, in a separate process."""

    def __init__(self, request_size: int, reply_size: int, reply_kind: str = "bytes", shape: tuple[int, ...] = ()) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_echo_server, args=(child, reply_kind, reply_size, shape), daemon=True)
        self.proc.start()
        endpoint = parent.recv()
        self.reply_kind = reply_kind
        self.sock = zmq.Context.instance().socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.request = b"\0" * request_size

    def round_trip(self) -> None:
        self.sock.send(self.request, copy=False)
        frame = self.sock.recv(copy=False)
        if self.reply_kind == "msgpack-numpy":
            import msgpack
            import msgpack_numpy

            msgpack.unpackb(frame.buffer, object_hook=msgpack_numpy.decode)  # our own data, never the network's

    def close(self) -> None:
        self.sock.send(b"stop")
        self.sock.recv()
        self.sock.close()
        self.proc.join(5)


def interleave(funcs: dict[str, Callable[[], Any]], total: int, block: int = 250, desc: str = "bench") -> dict[str, Timing]:
    """Run each function ``total`` times in alternating blocks, so drift hits all of them alike."""
    timings = {name: Timing(name, []) for name in funcs}
    perf = time.perf_counter
    with tqdm(total=total * len(funcs), desc=desc, unit="call", leave=False) as bar:
        done = 0
        while done < total:
            n = min(block, total - done)
            for name, fn in funcs.items():
                samples = timings[name].samples
                for _ in range(n):
                    t0 = perf()
                    fn()
                    samples.append(perf() - t0)
                bar.update(n)
            done += n
    return timings


# ------------------------------------------------------------------------------ env figures


def _stepper(env: Any, actions: list[Any]) -> Callable[[], None]:
    """A step function that resets (untimed would be nicer, but episodes are long) when done."""
    i = 0

    def step() -> None:
        nonlocal i
        _, _, terminated, truncated, _ = env.step(actions[i % len(actions)])
        i += 1
        if terminated or truncated:
            env.reset()

    return step


def _sizes(env: Any, action: Any) -> tuple[int, int]:
    """Bytes of a step request and reply on the wire, for a floor of the same payload."""
    request = pack_request(Request(Kind.STEP, {"action": action, "with_state": False}, env.session, 1))
    obs, reward, terminated, truncated, info = env.step(action)
    reply = pack_reply(Reply(1, {"obs": obs, "reward": reward, "terminated": terminated, "truncated": truncated, "info": info}))
    env.reset()
    return message_nbytes(request), message_nbytes(reply)


def bench_env(host: str, port: int, task: str | None, steps: int, with_state: bool = False) -> dict[str, Any]:
    from gym_remote.env import RemoteEnv

    env = RemoteEnv(host, port, task=task)
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(64)]
    req_size, rep_size = _sizes(env, actions[0])
    floor = EchoPeer(req_size, rep_size)
    funcs: dict[str, Callable[[], Any]] = {
        f"raw zmq REQ/REP ({req_size}B/{rep_size}B)": floor.round_trip,
        "env.step": _stepper(env, actions),
    }
    stateful = None
    if with_state:
        stateful = RemoteEnv(host, port, task=task, with_state=True)
        stateful.reset(seed=0)
        funcs["env.step + state attached"] = _stepper(stateful, actions)
    try:
        for fn in funcs.values():  # warm up caches, lazy imports and connections
            for _ in range(50):
                fn()
        timings = interleave(funcs, steps, desc=f"step {env.task}")
        resets = interleave({"env.reset": env.reset}, max(20, steps // 30), block=50, desc="reset")
        timings.update(resets)
        if env.state_schema is not None:
            timings.update(interleave({"env.get_state": env.get_state}, max(20, steps // 10), desc="get_state"))
    finally:
        floor.close()
        env.close()
        if stateful is not None:
            stateful.close()
    names = list(timings)
    floor_t, step_t = timings[names[0]], timings["env.step"]
    result = {
        "task": env.task,
        "timings": {t.name: {"p50_us": t.pct(50), "p90_us": t.pct(90), "p99_us": t.pct(99)} for t in timings.values()},
        "step_over_floor": step_t.pct(50) / floor_t.pct(50),
        "_timings": timings,
    }
    if stateful is not None:
        result["state_over_plain"] = timings["env.step + state attached"].pct(50) / step_t.pct(50)
    return result


def bench_payload(host: str, port: int, steps: int, shape: tuple[int, ...] = (1024, 1024)) -> dict[str, Any]:
    """A 1 MiB observation: gym-remote's framing against one msgpack-numpy frame, same run."""
    from gym_remote.env import RemoteEnv

    env = RemoteEnv(host, port, task="gym_remote/Payload-v0", task_kwargs={"shape": list(shape)})
    env.reset(seed=0)
    action = np.zeros(4, np.float32)
    req_size, rep_size = _sizes(env, action)
    mnp = EchoPeer(req_size, 0, reply_kind="msgpack-numpy", shape=shape)
    raw = EchoPeer(req_size, rep_size)
    try:
        funcs = {
            "raw zmq bytes (1 MiB reply)": raw.round_trip,
            "msgpack-numpy single frame": mnp.round_trip,
            "env.step (1 MiB obs)": lambda: env.step(action),
        }
        for fn in funcs.values():
            for _ in range(20):
                fn()
        timings = interleave(funcs, steps, block=50, desc="1 MiB payload")
    finally:
        mnp.close()
        raw.close()
        env.close()
    return {
        "timings": {t.name: {"p50_us": t.pct(50), "p90_us": t.pct(90), "p99_us": t.pct(99)} for t in timings.values()},
        "step_over_msgpack_numpy": timings["env.step (1 MiB obs)"].pct(50) / timings["msgpack-numpy single frame"].pct(50),
        "_timings": timings,
    }


def run_bench(args: argparse.Namespace) -> int:
    """Entry point of ``gym-remote bench``; prints a table and the ratios."""
    server = None
    try:
        if args.target is None:
            from gym_remote.local import LocalServer

            server = LocalServer("gymnasium", args.task or "CartPole-v1")
            host, port = server.local_host, server.local_port
        else:
            host, port = args.target
        results: dict[str, Any] = {"env": bench_env(host, port, args.task, args.steps, args.with_state)}
        if args.payload:
            results["payload"] = bench_payload(host, port, max(200, args.steps // 10))
    finally:
        if server is not None:
            server.close()
    print(f"gym-remote bench against {host}:{port}, task {results['env']['task']}")
    print(HEADER)
    for part in results.values():
        for t in part.pop("_timings").values():
            print(t.row())
    env_r = results["env"]
    print(f"step p50 / raw zmq floor p50: {env_r['step_over_floor']:.2f}x")
    if "state_over_plain" in env_r:
        print(f"step with state / step without state (p50): {env_r['state_over_plain']:.3f}x")
    if "payload" in results:
        print(f"1 MiB obs step p50 / msgpack-numpy single frame p50: {results['payload']['step_over_msgpack_numpy']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0
