"""How much each way of reaching a launched server costs: direct vs OpenSSH tunnel vs Fabric tunnel.

The server serves ``gym_remote/Payload-v0`` (:mod:`gym_remote.tasks.payload`), whose observation
has a chosen size: 16 bytes measures the per-step latency a tunnel adds, 1 MiB its throughput (a
camera frame). All modes run in the same call against the same host, so the figures compare with
each other even on a noisy machine; absolute numbers only mean something for that host.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gym_remote.launch import HostConfig, launch_server, resolve_config

log = logging.getLogger(__name__)

BENCH_TASK = "gym_remote/Payload-v0"
_NEVER = 2**62  # episode length: the timed steps never truncate


@dataclass
class TunnelResult:
    mode: str  # "direct", "openssh" or "fabric"
    launch_s: float  # launch_server() wall time: SSH login, server start, tunnel
    small_ms: float  # median step round trip with a 16-byte observation
    small_p99_ms: float
    big_ms: float  # median step round trip with an obs_bytes observation
    big_p99_ms: float
    obs_bytes: int

    @property
    def mib_per_s(self) -> float:
        return self.obs_bytes / 2**20 / (self.big_ms / 1e3)


class _Mode:
    """One mode's server, launched and connected, with a 16-byte and an ``obs_bytes`` session."""

    def __init__(self, cfg: HostConfig, mode: str, obs_bytes: int) -> None:
        from gym_remote.client import Connection
        from gym_remote.protocol import Kind

        self.mode = mode
        t0 = time.perf_counter()
        self.handle = launch_server(config=cfg, tunnel=mode if mode != "direct" else "none")
        self.launch_s = time.perf_counter() - t0
        self.conn: Connection | None = None
        try:
            self.conn = conn = Connection(
                self.handle.local_host, self.handle.local_port, timeout=60, diagnostics=self.handle.log_tail
            )
            self.sessions: dict[str, str] = {}
            self.samples: dict[str, list[float]] = {"small": [], "big": []}
            for name, size in (("small", 16), ("big", obs_bytes)):
                hello = {
                    "protocol": 1,
                    "client": "bench_tunnel",
                    "hello_id": f"{name}-{time.time_ns()}",
                    "task": BENCH_TASK,
                    "task_kwargs": {"shape": [size], "episode_length": _NEVER},
                }
                self.sessions[name] = conn.request(Kind.HELLO, hello)["session"]
                conn.request(Kind.RESET, {}, session=self.sessions[name])
        except BaseException:
            self.close()  # a failed HELLO must not leave the server running
            raise

    def time_steps(self, which: str, n: int) -> None:
        """``n`` timed step round trips on session ``which`` (ms, appended to its samples)."""
        from gym_remote.protocol import Kind

        action = {"action": np.zeros(4, np.float32)}
        conn, session, samples = self.conn, self.sessions[which], self.samples[which]
        assert conn is not None
        for _ in range(n):
            t0 = time.perf_counter()
            conn.request(Kind.STEP, action, session=session)
            samples.append((time.perf_counter() - t0) * 1e3)

    def result(self, obs_bytes: int) -> TunnelResult:
        small, big = np.asarray(self.samples["small"]), np.asarray(self.samples["big"])
        return TunnelResult(
            self.mode,
            self.launch_s,
            float(np.median(small)),
            float(np.percentile(small, 99)),
            float(np.median(big)),
            float(np.percentile(big, 99)),
            obs_bytes,
        )

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.handle.close()


def tunnel_benchmark(
    host: str | None = None,
    config: HostConfig | str | Path | Mapping[str, Any] | None = None,
    *,
    modes: Sequence[str] = ("direct", "openssh", "fabric"),
    steps: int = 300,
    big_steps: int = 100,
    obs_bytes: int = 2**20,
    blocks: int = 5,
    **overrides: Any,
) -> list[TunnelResult]:
    """Launch a ``gym_remote/Payload-v0`` server on ``host`` per mode; time step round trips, interleaved.

    Every mode's server is up before any is timed; then ``blocks`` rounds each time ``steps / blocks``
    small and ``big_steps / blocks`` large steps of every mode in turn, so a load that comes and goes
    hits all modes alike. ``direct`` is skipped for a non-loopback host unless ``serve_args`` carry
    ``--curve-secret`` or ``--insecure`` (the server refuses to expose itself otherwise). For
    ``gym-remote bench --tunnel`` and ``examples/bench_tunnels_loopback.py``.
    """
    cfg = resolve_config(host, config, **overrides)
    cfg = dataclasses.replace(cfg, backend="gymnasium", task=BENCH_TASK, task_kwargs={"shape": [16]})
    if (
        "direct" in modes
        and dataclasses.replace(cfg, tunnel=None).effective_bind_host() != "127.0.0.1"
        and not ({"--insecure", "--curve-secret"} & set(cfg.serve_args))
    ):
        log.warning("skipping 'direct' on %s: it would expose the server (add --curve-secret to serve_args)", cfg.host)
        modes = [m for m in modes if m != "direct"]
    launched: list[_Mode] = []
    try:
        for mode in modes:
            launched.append(_Mode(cfg, mode, obs_bytes))
        for m in launched:  # warm-up: first-step checks, TCP windows
            m.time_steps("small", max(3, steps // 10))
            m.time_steps("big", max(3, big_steps // 10))
            m.samples = {"small": [], "big": []}
        blocks = max(1, blocks)
        for _ in range(blocks):
            for m in launched:
                m.time_steps("small", max(1, steps // blocks))
            for m in launched:
                m.time_steps("big", max(1, big_steps // blocks))
        return [m.result(obs_bytes) for m in launched]
    finally:
        for m in launched:
            m.close()


def format_results(results: Sequence[TunnelResult]) -> str:
    """A table of the figures (milliseconds, MiB/s), one row per mode, with each p50 as a ratio to direct's."""
    if not results:
        return "no results"
    size = results[0].obs_bytes / 2**20
    direct = next((r for r in results if r.mode == "direct"), None)
    head = (
        f"{'mode':<8} {'launch s':>8} {'16 B p50 ms':>11} {'p99 ms':>7} {'x direct':>8} "
        f"{f'{size:g} MiB p50 ms':>15} {'p99 ms':>7} {'x direct':>8} {'MiB/s':>7}"
    )
    rows = []
    for r in results:
        small_x = f"{r.small_ms / direct.small_ms:.2f}x" if direct else "-"
        big_x = f"{r.big_ms / direct.big_ms:.2f}x" if direct else "-"
        rows.append(
            f"{r.mode:<8} {r.launch_s:>8.2f} {r.small_ms:>11.3f} {r.small_p99_ms:>7.3f} {small_x:>8} {r.big_ms:>15.2f} "
            f"{r.big_p99_ms:>7.2f} {big_x:>8} {r.mib_per_s:>7.0f}"
        )
    notes = []
    if direct:
        targets = {"openssh": 2.0, "fabric": 3.0}
        for r in results:
            if r.mode in targets:
                ratio = r.big_ms / direct.big_ms
                verdict = "met" if ratio <= targets[r.mode] else "not met"
                target = targets[r.mode]
                notes.append(f"{r.mode}: {size:g} MiB step {ratio:.2f}x direct (target <= {target:g}x: {verdict})")
    return "\n".join([head, *rows, *notes])
