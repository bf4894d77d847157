"""The peers a figure is compared with, each in its own process: floors and the pickle baseline.

- :class:`EchoPeer`: raw ZeroMQ REQ/REP answering fixed-size bytes (or one msgpack-numpy frame):
  the transport floor for given request and reply sizes.
- :class:`PicklePeer`: the approach gym-remote replaces, a pickled dict over ZeroMQ REQ/REP around
  the same Gymnasium env. Pickle travels only between this benchmark's own two processes: the peer
  admits a single client that knows a random PLAIN password handed to it over a pipe (PLAIN costs
  nothing per message, only at connection), and nothing in gym-remote's product unpickles anything.
- :class:`DelayRelay`: a TCP relay on loopback that delays each direction by RTT/2 (no netem here).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import pickle
import secrets
import time
from typing import Any

import numpy as np
import zmq

__all__ = ["DelayRelay", "EchoPeer", "PicklePeer"]


def _echo_server(conn: Any, reply_kind: str, size: int, shape: tuple[int, ...]) -> None:
    """A REP socket that answers every request with a fixed-size payload."""
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

            msgpack.unpackb(frame.buffer, object_hook=msgpack_numpy.decode)  # our own peer's bytes

    def close(self) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self.sock.send(b"stop")
            self.sock.recv()
        self.sock.close()
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()


def _pickle_server(conn: Any, task: str, password: bytes) -> None:
    """The pickle baseline: ``gym.make(task)`` behind a REP socket speaking pickled dicts."""
    import gymnasium as gym
    from zmq.auth.thread import ThreadAuthenticator

    ctx = zmq.Context()
    auth = ThreadAuthenticator(ctx)  # only the bench process, which knows the password, gets in
    auth.start()
    auth.configure_plain(domain="*", passwords={"bench": password.decode()})
    sock = ctx.socket(zmq.REP)
    sock.setsockopt(zmq.LINGER, 0)
    sock.plain_server = True
    sock.bind("tcp://127.0.0.1:*")
    env = gym.make(task)
    env.reset(seed=0)
    conn.send(sock.getsockopt_string(zmq.LAST_ENDPOINT))
    dumps, loads, proto = pickle.dumps, pickle.loads, pickle.HIGHEST_PROTOCOL
    while True:
        cmd, arg = loads(sock.recv())  # from the authenticated bench process only
        if cmd == "step":
            obs, reward, terminated, truncated, info = env.step(arg)
            reply: Any = {"obs": obs, "reward": reward, "terminated": terminated, "truncated": truncated, "info": info}
        elif cmd == "reset":
            obs, info = env.reset(seed=arg)
            reply = {"obs": obs, "info": info}
        elif cmd == "ping":
            reply = {"time": time.time()}
        else:
            sock.send(dumps(None, proto))
            break
        sock.send(dumps(reply, proto))
    env.close()
    sock.close()
    auth.stop()
    ctx.term()


class PicklePeer:
    """A pickle-over-ZeroMQ env peer (the original example's approach) around ``gym.make(task)``."""

    def __init__(self, task: str = "CartPole-v1") -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        password = secrets.token_hex(16).encode()
        self.proc = ctx.Process(target=_pickle_server, args=(child, task, password), daemon=True)
        self.proc.start()
        endpoint = parent.recv()
        self.sock: zmq.Socket = zmq.Context.instance().socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.plain_username = b"bench"
        self.sock.plain_password = password
        self.sock.connect(endpoint)
        self._proto = pickle.HIGHEST_PROTOCOL

    def _call(self, cmd: str, arg: Any = None) -> Any:
        self.sock.send(pickle.dumps((cmd, arg), self._proto))
        return pickle.loads(self.sock.recv())  # our own peer process, authenticated above

    def step(self, action: Any) -> tuple[Any, Any, Any, Any, Any]:
        r = self._call("step", action)
        return r["obs"], r["reward"], r["terminated"], r["truncated"], r["info"]

    def reset(self, seed: int | None = None) -> tuple[Any, Any]:
        r = self._call("reset", seed)
        return r["obs"], r["info"]

    def ping(self) -> Any:
        return self._call("ping")

    def close(self) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self.sock.send(pickle.dumps(("stop", None)))
            self.sock.recv()
        self.sock.close()
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()


def _relay_main(conn: Any, target_port: int, delay: float) -> None:
    """Forward every connection to ``target_port``, each chunk when its due time (read + delay) comes."""
    import asyncio

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, chunk = await queue.get()
                if chunk is None:
                    break
                await asyncio.sleep(max(0.0, due - loop.time()))
                writer.write(chunk)
                await writer.drain()
            writer.close()

        task = asyncio.ensure_future(deliver())
        while chunk := await reader.read(1 << 20):
            queue.put_nowait((loop.time() + delay, chunk))
        queue.put_nowait((0.0, None))
        await task

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", target_port)
        for sock in (client_w, server_w):
            sock.get_extra_info("socket").setsockopt(6, 1, 1)  # TCP_NODELAY
        await asyncio.gather(pump(client_r, server_w), pump(server_r, client_w), return_exceptions=True)

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        conn.send(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class DelayRelay:
    """A TCP relay on loopback that delays each direction by ``rtt / 2``: a slow link, emulated.

    The kernel here has no netem qdisc, so the delay is added in user space, in a process of its own
    (not a thread sharing the client's interpreter): every chunk read is forwarded when its due time
    comes, in order, so bandwidth is not limited, only latency.
    """

    def __init__(self, target_port: int, rtt: float) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self.rtt = rtt
        self.proc = ctx.Process(target=_relay_main, args=(child, target_port, rtt / 2), daemon=True)
        self.proc.start()
        if not parent.poll(30):
            self.close()
            raise RuntimeError("the delay relay did not start within 30 s")
        self.port: int = parent.recv()

    def close(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
            if self.proc.is_alive():
                self.proc.kill()
