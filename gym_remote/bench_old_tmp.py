"""Benchmarks behind ``gym-remote bench``: latency of the env API against the raw ZeroMQ floor.

This machine class is noisy (2 cores, process switching dominates a loopback round trip), so every
comparison is a ratio of two things measured in the same run, in interleaved blocks, never an
absolute number against a fixed threshold.
"""

from __future__ import annotations

import argparse
import contextlib
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

    def __init__(
        self, request_size: int, reply_size: int, reply_kind: str = "bytes", shape: tuple[int, ...] = ()
    ) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_echo_server, args=(child, reply_kind, reply_size, shape), daemon=True)
        self.proc.start()
        endpoint = parent.recv()
        self.reply_kind = reply_kind
        self.sock: zmq.Socket = zmq.Context.instance().socket(zmq.REQ)
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


def interleave(
    funcs: dict[str, Callable[[], Any]], total: int, block: int = 250, desc: str = "bench"
) -> dict[str, Timing]:
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
    reply = pack_reply(
        Reply(1, {"obs": obs, "reward": reward, "terminated": terminated, "truncated": truncated, "info": info})
    )
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
        "env.ping (framework only)": env.ping,
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
        "ping_over_floor": timings["env.ping (framework only)"].pct(50) / floor_t.pct(50),
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
        "step_over_msgpack_numpy": timings["env.step (1 MiB obs)"].pct(50)
        / timings["msgpack-numpy single frame"].pct(50),
        "_timings": timings,
    }


def run_bench(args: argparse.Namespace) -> int:
    """Entry point of ``gym-remote bench``; prints a table and the ratios."""
    if args.render:
        from gym_remote.replay import render_benchmark

        for width, height in ((320, 240), (640, 480)):
            print(f"local replay rendering {width}x{height}: {render_benchmark(width, height, 100):.1f} frames/s")
        return 0
    if args.tunnel:
        from gym_remote.bench_tunnel import format_results, tunnel_benchmark

        print(format_results(tunnel_benchmark(args.tunnel, args.config, steps=max(100, args.steps // 10))))
        return 0
    if args.vector:
        out = bench_vector(args.num_envs, args.seconds)
        print_vector(out)
        if args.json:
            args.json.write_text(json.dumps(out, indent=2))
        return 0
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
    print(f"ping p50 / raw zmq floor p50: {env_r['ping_over_floor']:.2f}x (the framework alone, no env work)")
    if "state_over_plain" in env_r:
        print(f"step with state / step without state (p50): {env_r['state_over_plain']:.3f}x")
    if "payload" in results:
        ratio = results["payload"]["step_over_msgpack_numpy"]
        print(f"1 MiB obs step p50 / msgpack-numpy single frame p50: {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


# ---------------------------------------------------------------------------- vector figures


class DelayRelay:
    """A TCP relay on loopback that delays each direction by ``rtt / 2``: a slow link, emulated.

    The kernel here has no netem qdisc, so the delay is added in user space: every chunk read is
    forwarded when its due time comes, in order, so bandwidth is not limited, only latency.
    """

    def __init__(self, target_port: int, rtt: float) -> None:
        import asyncio
        import threading

        self.delay = rtt / 2
        self.target_port = target_port
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        import asyncio

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            queue: asyncio.Queue = asyncio.Queue()

            async def deliver() -> None:
                while True:
                    due, chunk = await queue.get()
                    if chunk is None:
                        break
                    await asyncio.sleep(max(0.0, due - self._loop.time()))
                    writer.write(chunk)
                    await writer.drain()
                writer.close()

            task = asyncio.ensure_future(deliver())
            while chunk := await reader.read(1 << 20):
                queue.put_nowait((self._loop.time() + self.delay, chunk))
            queue.put_nowait((0.0, None))
            await task

        async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
            for sock in (client_w, server_w):
                sock.get_extra_info("socket").setsockopt(6, 1, 1)  # TCP_NODELAY
            await asyncio.gather(pump(client_r, server_w), pump(server_r, client_w), return_exceptions=True)

        async def main() -> None:
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            async with server:
                await server.serve_forever()

        asyncio.set_event_loop(self._loop)
        with contextlib.suppress(RuntimeError):  # the loop is stopped by close()
            self._loop.run_until_complete(main())
        for task in asyncio.all_tasks(self._loop):
            task.cancel()
        with contextlib.suppress(RuntimeError, asyncio.CancelledError):
            self._loop.run_until_complete(asyncio.gather(*asyncio.all_tasks(self._loop), return_exceptions=True))
        self._loop.close()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def _rate(fn: Callable[[], Any], n_envs: int, seconds: float) -> float:
    """Env-steps per second of ``fn`` (one batched step of ``n_envs``) over about ``seconds``."""
    fn()
    count, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        fn()
        count += 1
    return count * n_envs / elapsed


def bench_vector(num_envs: int = 64, seconds: float = 3.0, rtt: float = 0.05, link_envs: int = 256) -> dict[str, Any]:
    """Batched remote stepping against local vector envs and one-session-per-env, same run."""
    import gymnasium as gym

    from gym_remote.env import RemoteEnv
    from gym_remote.local import LocalServer
    from gym_remote.vector import RemoteVectorEnv

    out: dict[str, Any] = {"num_envs": num_envs}
    sessions = str(num_envs + 8)  # the AsyncVectorEnv figure opens one session per sub-env, all from here
    server = LocalServer(
        "gymnasium", "CartPole-v1", extra_args=["--max-sessions", sessions, "--max-sessions-per-peer", sessions]
    )
    img_server = LocalServer("gymnasium", "gym_remote/Payload-v0", {"shape": [84, 84, 3]})
    envs: list[Any] = []
    try:
        host, port = server.local_host, server.local_port
        rng = np.random.default_rng(0)
        actions = rng.integers(0, 2, (16, num_envs))
        k = iter(range(1 << 62))

        def stepper(venv: Any) -> Callable[[], Any]:
            venv.reset(seed=0)
            return lambda: venv.step(actions[next(k) % 16])

        remote = RemoteVectorEnv(num_envs, host, port)
        sync = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * num_envs)
        per_session = gym.vector.AsyncVectorEnv(
            [lambda: RemoteEnv(host, port)] * num_envs, shared_memory=False, context="fork"
        )
        envs += [remote, sync, per_session]
        funcs = {
            "remote batched": stepper(remote),
            "local SyncVectorEnv": stepper(sync),
            f"AsyncVectorEnv of {num_envs} RemoteEnv": stepper(per_session),
        }
        rates = {name: 0.0 for name in funcs}
        for _ in tqdm(range(3), desc="vector", leave=False):  # interleave rounds against drift
            for name, fn in funcs.items():
                rates[name] += _rate(fn, num_envs, seconds / 3) / 3
        out["rates"] = rates
        out["remote_over_sync"] = rates["remote batched"] / rates["local SyncVectorEnv"]
        out["remote_over_per_session"] = rates["remote batched"] / rates[f"AsyncVectorEnv of {num_envs} RemoteEnv"]
        for env in envs:  # the 64 idle worker processes must not share the cores with what follows
            env.close()
        envs.clear()

        images = RemoteVectorEnv(64, img_server.local_host, img_server.local_port, task_kwargs={"shape": [84, 84, 3]})
        envs.append(images)
        images.reset(seed=0)
        zero = np.zeros((64, 4), np.float32)
        batch_bytes = 64 * 84 * 84 * 3
        times = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            images.step(zero)
            times.append(time.perf_counter() - t0)
        out["image_batch_GBps"] = batch_bytes * len(times) / sum(times) / 1e9  # sustained: mean step time
        out["image_batch_GBps_p50"] = batch_bytes / float(np.median(times)) / 1e9  # typical step

        relay = DelayRelay(port, rtt)
        try:
            far = RemoteVectorEnv(link_envs, "127.0.0.1", relay.port, timeout=30)
            envs.append(far)
            far_actions = rng.integers(0, 2, link_envs)
            far.reset(seed=0)
            out["link_batched_env_steps_per_s"] = _rate(lambda: far.step(far_actions), link_envs, seconds)
            one = RemoteEnv("127.0.0.1", relay.port)
            envs.append(one)
            one.reset(seed=0)
            out["link_single_env_steps_per_s"] = _rate(_stepper(one, [1]), 1, seconds)
            out["link_rtt_ms"] = rtt * 1e3
        finally:
            for env in envs[len(envs) - 2 :]:
                env.close()
            del envs[len(envs) - 2 :]
            relay.close()
    finally:
        for env in envs:
            env.close()
        server.close()
        img_server.close()
    return out


def print_vector(out: dict[str, Any]) -> None:
    n = out["num_envs"]
    print(f"CartPole-v1, N={n}, loopback (env-steps/s):")
    for name, rate in out["rates"].items():
        print(f"  {name:<36} {rate:>12,.0f}")
    print(f"  remote batched / local SyncVectorEnv: {out['remote_over_sync']:.2f}x")
    print(f"  remote batched / AsyncVectorEnv of RemoteEnv sessions: {out['remote_over_per_session']:.1f}x")
    print(
        f"64 x 84x84x3 uint8 observations per step: {out['image_batch_GBps']:.2f} GB/s of observation payload "
        f"sustained ({out['image_batch_GBps_p50']:.2f} GB/s at the median step time)"
    )
    print(
        f"emulated {out['link_rtt_ms']:.0f} ms round-trip link: N=256 batched "
        f"{out['link_batched_env_steps_per_s']:,.0f} env-steps/s; one env per round trip "
        f"{out['link_single_env_steps_per_s']:,.1f} steps/s"
    )
