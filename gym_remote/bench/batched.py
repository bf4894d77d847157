"""Batched figures: remote vector envs against a local ``SyncVectorEnv``, images, and a slow link.

- The sweep steps ``RemoteVectorEnv(N)`` and a local ``SyncVectorEnv`` of the same CartPole-v1 envs,
  and a raw ZeroMQ echo of the same byte sizes, for N in 1..1024, interleaved per N; a straight
  line through the p50 step times gives each a fixed cost and a cost per sub-env, fitted twice:
  unweighted least squares (``fit_us``, the figure of earlier runs) and least relative error
  (``fit_rel_us``, see :func:`~gym_remote.bench.timing.fit_line_relative`), same points, same rows.
- Images: 64 x 84x84x3 uint8 observations per step against a raw ZeroMQ reply of the same bytes.
- The link: a TCP relay on loopback delays each direction by RTT/2; ``num_envs`` sub-envs are
  stepped in 1, 2, 4 or 8 groups in flight (``batch_size = num_envs / groups``, EnvPool's async
  mode), against a local ``SyncVectorEnv`` of as many envs and the bound ``num_envs / RTT``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gym_remote.bench.peers import DelayRelay, EchoPeer
from gym_remote.bench.timing import fit_line, fit_line_relative, interleave_for
from gym_remote.protocol import Codec, Kind, Reply, message_nbytes

__all__ = ["bench_images", "bench_link", "bench_sweep"]

SIZES = (1, 4, 16, 64, 256, 1024)
TASK = "CartPole-v1"


def _server(*, max_envs: int, sessions: int = 64, task: str = TASK, task_kwargs: dict[str, Any] | None = None) -> Any:
    from gym_remote.local import LocalServer

    extra = ["--max-sessions", str(sessions), "--max-sessions-per-peer", str(sessions), "--max-envs", str(max_envs)]
    return LocalServer("gymnasium", task, task_kwargs, extra_args=extra)


def _local_sync(n: int) -> Any:
    import gymnasium as gym

    return gym.vector.SyncVectorEnv([lambda: gym.make(TASK)] * n)


def _batched_sizes(n: int) -> tuple[int, int]:
    """Bytes of a batched CartPole step request and reply of ``n`` sub-envs."""
    codec = Codec()
    request = codec.pack_request(
        Kind.STEP, {"action": np.zeros(n, np.int64), "with_state": False}, "0123456789abcdef", 1
    )
    body = {
        "obs": np.zeros((n, 4), np.float32),
        "reward": np.zeros(n),
        "terminated": np.zeros(n, bool),
        "truncated": np.zeros(n, bool),
        "info": {},
    }
    return message_nbytes(request), message_nbytes(codec.pack_reply(Reply(1, body)))


def _stepping(venv: Any, n: int) -> Callable[[], Any]:
    venv.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 2, (16, n))
    k = iter(range(1 << 62))
    return lambda: venv.step(actions[next(k) % 16])


def bench_sweep(sizes: Sequence[int] = SIZES, seconds: float = 2.0) -> dict[str, Any]:
    """Per N: remote batched vs local ``SyncVectorEnv`` vs raw transport; fitted fixed and per-env costs."""
    from gym_remote.vector import RemoteVectorEnv

    server = _server(max_envs=max(sizes))
    rows = []
    try:
        for n in sizes:
            req, rep = _batched_sizes(n)
            floor = EchoPeer(req, rep)
            remote = RemoteVectorEnv(n, server.local_host, server.local_port, task=TASK)
            local = _local_sync(n)
            try:
                t = interleave_for(
                    {"raw": floor.round_trip, "remote": _stepping(remote, n), "local": _stepping(local, n)},
                    seconds,
                    desc=f"batched N={n}",
                )
            finally:
                remote.close()
                local.close()
                floor.close()
            rows.append(
                {
                    "n": n,
                    **{f"{k}_p50_us": v.p50 for k, v in t.items()},
                    **{f"{k}_p99_us": v.p99 for k, v in t.items()},
                    "remote_over_local": t["local"].p50 / t["remote"].p50,  # as a rate: > 1 is faster
                    "remote_p99_over_raw_p99": t["remote"].p99 / t["raw"].p99,
                }
            )
    finally:
        server.close()
    ns = [r["n"] for r in rows]
    fits = {k: fit_line(ns, [r[f"{k}_p50_us"] for r in rows]) for k in ("raw", "remote", "local")}
    rel = {k: fit_line_relative(ns, [r[f"{k}_p50_us"] for r in rows]) for k in ("raw", "remote", "local")}
    return {
        "rows": rows,
        "fit_us": {k: {"fixed": f, "per_env": p} for k, (f, p) in fits.items()},
        "fixed_over_raw": fits["remote"][0] / fits["raw"][0],
        "fixed_over_raw_n1": fits["remote"][0] / rows[0]["raw_p50_us"],
        "per_env_over_local": fits["remote"][1] / fits["local"][1],
        "fit_rel_us": {k: {"fixed": f, "per_env": p} for k, (f, p) in rel.items()},
        "fixed_over_raw_rel": rel["remote"][0] / rel["raw"][0],
        "per_env_over_local_rel": rel["remote"][1] / rel["local"][1],
        "n1_over_raw": rows[0]["remote_p50_us"] / rows[0]["raw_p50_us"],
    }


def bench_images(seconds: float = 3.0, n: int = 64, shape: tuple[int, ...] = (84, 84, 3)) -> dict[str, Any]:
    """``n`` uint8 images per step: GB/s of observation payload, remote against a raw ZeroMQ reply.

    A third figure, interleaved with the two, is the sub-envs' own step: a local ``SyncVectorEnv`` of
    the same ``n`` envs made as the server makes them (``copy=False``), which the raw reply does not
    pay; ``framework_us`` is what is left of a remote step after the raw transport and that.
    """
    import gymnasium as gym

    from gym_remote.vector import RemoteVectorEnv

    kwargs = {"shape": list(shape)}
    server = _server(max_envs=n, task="gym_remote/Payload-v0", task_kwargs=kwargs)
    batch_bytes = n * int(np.prod(shape))
    try:
        images = RemoteVectorEnv(n, server.local_host, server.local_port, task_kwargs=kwargs)
        raw = EchoPeer(64 + 16 * n, batch_bytes)
        local = gym.vector.SyncVectorEnv([lambda: gym.make("gym_remote/Payload-v0", **kwargs)] * n, copy=False)
        try:
            images.reset(seed=0)
            local.reset(seed=0)
            zero = np.zeros((n, 4), np.float32)
            steps = {"raw": raw.round_trip, "remote": lambda: images.step(zero), "envs": lambda: local.step(zero)}
            t = interleave_for(steps, seconds, desc="images")
        finally:
            images.close()
            raw.close()
            local.close()
    finally:
        server.close()
    out: dict[str, Any] = {"batch_bytes": batch_bytes, "n": n, "shape": list(shape)}
    for k, v in t.items():
        out[f"{k}_p50_us"] = v.p50
        if k == "envs":
            continue
        out[f"{k}_GBps_p50"] = batch_bytes / (v.p50 / 1e6) / 1e9
        out[f"{k}_GBps_sustained"] = batch_bytes * len(v.samples) / sum(v.samples) / 1e9
        out[f"{k}_p99_us"] = v.p99
    out["remote_over_raw"] = out["remote_GBps_sustained"] / out["raw_GBps_sustained"]
    out["framework_us"] = out["remote_p50_us"] - out["raw_p50_us"] - out["envs_p50_us"]
    out["remote_over_raw_and_envs"] = (out["raw_p50_us"] + out["envs_p50_us"]) / out["remote_p50_us"]
    return out


def _in_flight(venv: Any, groups: int) -> Callable[[], int]:
    """One call: receive one group's results and send its next actions (EnvPool's async loop)."""
    n = venv.num_envs
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 2, (16, n))
    if groups == 1:
        venv.reset(seed=0)
        k = iter(range(1 << 62))

        def step() -> int:
            venv.step(actions[next(k) % 16])
            return n

        return step
    venv.async_reset(seed=0)
    k = iter(range(1 << 62))

    def turn() -> int:
        _, _, _, _, _, env_ids = venv.recv()
        venv.send(actions[next(k) % 16][env_ids], env_ids)
        return len(env_ids)

    return turn


def bench_link(
    num_envs: int = 2048, groups: Sequence[int] = (1, 2, 4, 8), rtt: float = 0.05, seconds: float = 4.0
) -> dict[str, Any]:
    """Env-steps/s over an emulated ``rtt`` link with ``groups`` in flight, against local ``SyncVectorEnv``."""
    import time

    from gym_remote.bench.timing import progress
    from gym_remote.client_session import ConnectOptions
    from gym_remote.vector import RemoteVectorEnv

    server = _server(max_envs=num_envs)
    relay = DelayRelay(server.local_port, rtt)
    local = _local_sync(num_envs)
    rates: dict[str, float] = {}
    try:
        local_step = _stepping(local, num_envs)
        local_step()
        with progress(len(groups) * 2, "link", unit="figure") as bar:
            for g in groups:
                batching = {"batch_size": num_envs // g} if g > 1 else {}
                venv = RemoteVectorEnv(
                    num_envs, "127.0.0.1", relay.port, task=TASK, options=ConnectOptions(timeout=60), **batching
                )
                try:
                    turn = _in_flight(venv, g)
                    for _ in range(2 * g):  # fill the pipeline
                        turn()
                    done, t0 = 0, time.perf_counter()
                    while (elapsed := time.perf_counter() - t0) < seconds:
                        done += turn()
                    rates[f"{g} group" + "s" * (g > 1)] = done / elapsed
                finally:
                    venv.close()
                bar.update(1)
                done, t0 = 0, time.perf_counter()  # the local figure, right after: same machine state
                while (elapsed := time.perf_counter() - t0) < seconds / 2:
                    local_step()
                    done += num_envs
                rates.setdefault("local SyncVectorEnv", 0.0)
                rates["local SyncVectorEnv"] += done / elapsed / len(groups)
                bar.update(1)
    finally:
        local.close()
        relay.close()
        server.close()
    local_rate = rates["local SyncVectorEnv"]
    # Two ceilings: the link (every env waits a round trip per step) and the server (it steps no faster
    # than this machine steps the same envs locally). The lower one holds.
    link_bound, server_bound = num_envs / rtt, local_rate
    return {
        "num_envs": num_envs,
        "rtt_ms": rtt * 1e3,
        "rates": rates,
        "bound_env_steps_per_s": link_bound,
        "holding_bound": "link" if link_bound <= server_bound else "server",
        "over_holding_bound": {k: v / min(link_bound, server_bound) for k, v in rates.items() if "group" in k},
        "over_local": {k: v / local_rate for k, v in rates.items() if "group" in k},
        "over_bound": {k: v / (num_envs / rtt) for k, v in rates.items() if "group" in k},
    }
