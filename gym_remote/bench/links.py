"""Slow links: a 1 MiB step over plaintext ZeroMQ, CURVE, OpenSSH and Fabric tunnels, with and without
compression, on loopback and on a link capped by the kernel.

The capped link is :class:`CappedLink`: two network namespaces of this process's own, joined by a veth
pair whose ends each carry a ``tbf`` qdisc (a rate cap; this kernel has no ``netem``). The kernel
shapes the traffic, so the emulation runs outside every Python process. The server side's namespace
runs sshd (the launcher starts every server through it); the client side's runs
:func:`compare_links` in a process of its own (``python -m gym_remote.bench.links``, a JSON spec on
stdin, the figures as JSON on stdout).

:func:`compare_links` launches one server per transport (``direct``, ``curve``, ``openssh``,
``fabric``) serving ``gym_remote/Payload-v0``, opens one session per mode (a transport, plus
``+zstd`` or ``+lz4`` for compression), checks that every mode's observation is the same bytes, and
times steps in interleaved blocks, ``repeats`` times: each figure is the median [min-max] of the
repeats' p50s, and each ratio to ``direct`` is taken within a repeat. With a byte counter (a capped
link), each mode's bytes on the wire per step are counted too. Root only (``ip netns``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gym_remote.bench.timing import interleave

__all__ = ["MODES", "CappedLink", "compare_links", "format_links", "run_in_namespace", "tx_bytes"]

#: Transports, each with optional compression: ``direct+zstd`` is plaintext ZeroMQ compressing with zstd.
MODES = (
    "direct",
    "direct+zstd",
    "direct+lz4",
    "curve",
    "curve+zstd",
    "openssh",
    "openssh+zstd",
    "fabric",
    "fabric+zstd",
)
BENCH_TASK = "gym_remote/Payload-v0"


class CappedLink:
    """Two network namespaces (``server``, ``client``) joined by a veth pair capped at ``rate`` each way.

    Made and removed by this object (``with CappedLink() as link:``); nothing outside the two
    namespaces changes. Addresses: the server side ``10.231.0.1``, the client side ``10.231.0.2``.

    Args:
        rate, burst, latency: the ``tbf`` qdisc on each end (``tc`` units: ``100mbit``, ``32kbit``, ``50ms``).

    Raises:
        RuntimeError: the namespaces cannot be made (not root, no ``ip``): the message says which command failed.
    """

    server_addr = "10.231.0.1"
    client_addr = "10.231.0.2"

    def __init__(self, rate: str = "100mbit", burst: str = "32kbit", latency: str = "50ms") -> None:
        self.rate = rate
        tag = f"grl{os.getpid()}"
        self.namespaces = {"server": f"{tag}s", "client": f"{tag}c"}
        self.devices = {"server": f"{tag}s0", "client": f"{tag}c0"}
        self._made: list[str] = []
        try:
            for ns in self.namespaces.values():
                self._ip("netns", "add", ns)
                self._made.append(ns)
            s, c = self.namespaces["server"], self.namespaces["client"]
            sd, cd = self.devices["server"], self.devices["client"]
            self._ip("link", "add", sd, "netns", s, "type", "veth", "peer", "name", cd, "netns", c)
            for side, addr in (("server", self.server_addr), ("client", self.client_addr)):
                ns, dev = self.namespaces[side], self.devices[side]
                self._ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
                self._ip("-n", ns, "link", "set", dev, "up")
                self._ip("-n", ns, "link", "set", "lo", "up")
                tbf = ["tbf", "rate", rate, "burst", burst, "latency", latency]
                self._run("tc", "-n", ns, "qdisc", "add", "dev", dev, "root", *tbf)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _run(*argv: str) -> None:
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"`{' '.join(argv)}` failed ({done.stderr.strip()}): a capped link needs root (network namespaces, "
                "veth, tc tbf)"
            )

    def _ip(self, *args: str) -> None:
        self._run("ip", *args)

    def prefix(self, side: str) -> list[str]:
        """The command prefix that runs a program in ``side``'s namespace (``server`` or ``client``)."""
        return ["ip", "netns", "exec", self.namespaces[side]]

    def counter(self, side: str) -> tuple[str, str]:
        """``(namespace, device)`` of ``side``'s end, for :func:`tx_bytes`."""
        return self.namespaces[side], self.devices[side]

    def close(self) -> None:
        """Delete the namespaces (and with them the veth pair and its qdiscs). Idempotent."""
        while self._made:
            subprocess.run(["ip", "netns", "del", self._made.pop()], capture_output=True)

    def __enter__(self) -> CappedLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tx_bytes(counter: tuple[str, str]) -> int:
    """Bytes sent so far by the device ``counter = (namespace, device)`` (its kernel statistics)."""
    ns, dev = counter
    out = subprocess.run(["ip", "-n", ns, "-j", "-s", "link", "show", "dev", dev], capture_output=True, text=True)
    return int(json.loads(out.stdout)[0]["stats64"]["tx"]["bytes"])


def run_in_namespace(prefix: Sequence[str], spec: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    """Run :func:`compare_links` (``spec`` its keywords) in a process under ``prefix``; its figures.

    Raises:
        RuntimeError: the process failed (its stderr's tail is in the message).
    """
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "gym_remote.bench.links"],
        input=json.dumps(spec),
        stdout=subprocess.PIPE,
        stderr=None,  # progress bars and logs pass through
        text=True,
        env=env,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the link benchmark's client failed with exit code {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _transport(mode: str) -> tuple[str, str | None]:
    transport, _, codec = mode.partition("+")
    return transport, codec or None


def compare_links(
    host_config: dict[str, Any],
    *,
    bind_host: str = "127.0.0.1",
    modes: Sequence[str] = MODES,
    content: str = "camera",
    obs_bytes: int = 2**20,
    block: int = 20,
    blocks: int = 3,
    repeats: int = 3,
    curve_dir: str | None = None,
    counters: dict[str, tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """Time a step with an ``obs_bytes`` observation of ``content`` in every mode, interleaved.

    Args:
        host_config: ``HostConfig`` keywords reaching an sshd (which starts the servers).
        bind_host: the address a tunnel-less server binds (loopback, or the capped link's server side).
        modes: names from :data:`MODES`.
        block, blocks, repeats: steps per block, blocks per repeat (modes alternate block by block).
        curve_dir: a folder for the CURVE server's certificate (made when ``None``).
        counters: ``{"server": (ns, dev), "client": (ns, dev)}`` byte counters of a capped link.

    Returns:
        Per mode: ``p50_ms`` and ``over_direct`` (one per repeat), ``reply_bytes``/``request_bytes``
        per step (with counters), and the settings.
    """
    import zmq.auth

    from gym_remote.client_session import ClientSession, ConnectOptions, hello_body
    from gym_remote.launch import launch_server
    from gym_remote.protocol import Kind

    curve_dir = curve_dir or tempfile.mkdtemp(prefix="gym-remote-curve-")
    os.makedirs(curve_dir, exist_ok=True)
    public_file, secret_file = zmq.auth.create_certificates(curve_dir, "server")
    os.chmod(secret_file, 0o600)
    server_key = zmq.auth.load_certificate(public_file)[0]
    servers: dict[str, Any] = {}
    sessions: dict[str, ClientSession] = {}
    kwargs = {"shape": [obs_bytes], "episode_length": 2**62, "content": content}
    try:
        for mode in modes:
            transport, codec = _transport(mode)
            if transport not in servers:
                serve_args = ["--curve-secret", secret_file] if transport == "curve" else []
                tunnel = transport if transport in ("openssh", "fabric") else "none"
                servers[transport] = launch_server(
                    config={**host_config, "task": BENCH_TASK, "task_kwargs": {"shape": [16]}},
                    tunnel=tunnel,
                    bind_host=bind_host if tunnel == "none" else None,
                    serve_args=[*serve_args, *(["--insecure"] if tunnel == "none" and transport == "direct" else [])],
                )
            handle = servers[transport]
            options = ConnectOptions(
                timeout=120, compression=codec, curve_server_key=server_key if transport == "curve" else None
            )
            conn = options.connect(handle.local_host, handle.local_port, server=handle)
            link = sessions[mode] = ClientSession(
                conn, hello_body("bench-links", task=BENCH_TASK, task_kwargs=kwargs), 120
            )
            reply = link.open()
            if reply.get("compression") != codec:
                raise RuntimeError(f"{mode}: the server agreed to {reply.get('compression')!r}, not {codec!r}")
            link.request(Kind.RESET, {})
        action = {"action": np.zeros(4, np.float32)}
        first = {mode: link.request(Kind.STEP, action)["obs"] for mode, link in sessions.items()}
        reference = next(iter(first.values()))
        for mode, obs in first.items():  # compression is lossless: every mode sees the same bytes
            if obs.shape != reference.shape or obs[1:].tobytes() != reference[1:].tobytes():
                raise RuntimeError(f"{mode}: the observation differs from {next(iter(first))}'s")
        out: dict[str, Any] = {"modes": {m: {"p50_ms": [], "over_direct": []} for m in modes}}
        if counters:
            for mode, link in sessions.items():
                before = {side: tx_bytes(c) for side, c in counters.items()}
                for _ in range(5):
                    link.request(Kind.STEP, action)
                after = {side: tx_bytes(c) for side, c in counters.items()}
                out["modes"][mode]["reply_bytes"] = (after["server"] - before["server"]) / 5
                out["modes"][mode]["request_bytes"] = (after["client"] - before["client"]) / 5
        steps: dict[str, Callable[[], Any]] = {
            mode: (lambda link=link: link.request(Kind.STEP, action)) for mode, link in sessions.items()
        }
        for r in range(repeats):
            timings = interleave(steps, block * blocks, block=block, desc=f"repeat {r + 1}/{repeats}", warmup=3)
            base = timings["direct"].p50 if "direct" in timings else float("nan")
            for mode, t in timings.items():
                out["modes"][mode]["p50_ms"].append(t.p50 / 1e3)
                out["modes"][mode]["over_direct"].append(t.p50 / base)
    finally:
        for link in sessions.values():
            link.conn.close()
        for handle in servers.values():
            handle.close()
    out.update(content=content, obs_bytes=obs_bytes, steps_per_mode=block * blocks * repeats, repeats=repeats)
    return out


def _spread(values: Sequence[float], fmt: str) -> str:
    return f"{format(statistics.median(values), fmt)} [{format(min(values), fmt)}-{format(max(values), fmt)}]"


def format_links(results: dict[str, Any], title: str) -> str:
    """A table: per mode the step p50 (ms) and its ratio to direct, median [min-max] over repeats, and bytes."""
    lines = [
        f"{title}: {results['obs_bytes'] / 2**20:g} MiB {results['content']} observation, "
        f"{results['steps_per_mode']} steps per mode in interleaved blocks, {results['repeats']} repeats",
        f"{'mode':<14} {'step p50 ms':>24} {'x direct':>20} {'reply KiB/step':>15} {'MiB/s (obs)':>11}",
    ]
    for mode, r in results["modes"].items():
        wire = f"{r['reply_bytes'] / 1024:,.0f}" if "reply_bytes" in r else "-"
        rate = results["obs_bytes"] / 2**20 / (statistics.median(r["p50_ms"]) / 1e3)
        p50, ratio = _spread(r["p50_ms"], ".2f"), _spread(r["over_direct"], ".2f")
        lines.append(f"{mode:<14} {p50:>24} {ratio:>20} {wire:>15} {rate:>11.0f}")
    return "\n".join(lines)


def _main() -> int:
    spec = json.loads(sys.stdin.read())
    counters = spec.pop("counters", None)
    results = compare_links(**spec, counters={k: tuple(v) for k, v in counters.items()} if counters else None)
    sys.stdout.write(json.dumps(results, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
