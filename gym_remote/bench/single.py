"""Single-env figures: a step, a ping and a reset against the raw ZeroMQ floor and a pickle peer.

All calls run in interleaved blocks in one run. The floor is a REQ/REP echo of the same byte sizes as
a step's request and reply; the pickle peer steps the same Gymnasium env behind pickled dicts (the
approach gym-remote replaces). A step that ends an episode is followed by a reset, timed with it, in
every stepper alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gym_remote.bench.peers import EchoPeer, PicklePeer
from gym_remote.bench.timing import Timing, interleave
from gym_remote.protocol import Codec, Kind, Reply, message_nbytes

__all__ = ["bench_payload", "bench_single"]

FLOOR = "raw zmq REQ/REP"


def stepper(step: Callable[[Any], Any], reset: Callable[[], Any], actions: list[Any]) -> Callable[[], None]:
    """A call that steps with the next action, and resets when the episode ends."""
    i = 0

    def call() -> None:
        nonlocal i
        _, _, terminated, truncated, _ = step(actions[i % len(actions)])
        i += 1
        if terminated or truncated:
            reset()

    return call


def step_sizes(env: Any, action: Any) -> tuple[int, int]:
    """Bytes of a step request and reply on the wire, for a floor of the same payload."""
    codec = Codec()
    request = codec.pack_request(Kind.STEP, {"action": action, "with_state": False}, env.session, 1)
    obs, reward, terminated, truncated, info = env.step(action)
    body = {"obs": obs, "reward": reward, "terminated": terminated, "truncated": truncated, "info": info}
    env.reset()
    return message_nbytes(request), message_nbytes(codec.pack_reply(Reply(1, body)))


def bench_single(
    host: str, port: int, task: str | None, steps: int, with_state: bool = False, pickle_task: str | None = None
) -> dict[str, Any]:
    """Step, ping and reset of a :class:`RemoteEnv` against the floor and (``pickle_task``) the pickle peer."""
    from gym_remote.env import RemoteEnv

    env = RemoteEnv(host, port, task=task)
    closers: list[Any] = [env]
    try:
        env.reset(seed=0)
        env.action_space.seed(0)
        actions = [env.action_space.sample() for _ in range(64)]
        req_size, rep_size = step_sizes(env, actions[0])
        floor = EchoPeer(req_size, rep_size)
        closers.append(floor)
        floor_name = f"{FLOOR} ({req_size}B/{rep_size}B)"
        funcs: dict[str, Callable[[], Any]] = {floor_name: floor.round_trip}
        if pickle_task:
            peer = PicklePeer(pickle_task)
            closers.append(peer)
            funcs["pickle peer step"] = stepper(peer.step, peer.reset, actions)
            funcs["pickle peer ping"] = peer.ping
        funcs["env.ping"] = env.ping
        funcs["env.step"] = stepper(env.step, env.reset, actions)
        if with_state:
            stateful = RemoteEnv(host, port, task=task, with_state=True)
            closers.append(stateful)
            stateful.reset(seed=0)
            funcs["env.step + state attached"] = stepper(stateful.step, stateful.reset, actions)
        timings = interleave(funcs, steps, desc=f"single step {env.task}")
        resets = interleave({floor_name: floor.round_trip, "env.reset": env.reset}, max(50, steps // 10), 50, "reset")
        timings["env.reset"] = resets["env.reset"]
        if env.state_schema is not None:
            timings.update(interleave({"env.get_state": env.get_state}, max(20, steps // 10), desc="get_state"))
        task_name = env.task
    finally:
        for c in reversed(closers):
            c.close()
    floor_t = timings[floor_name]
    out: dict[str, Any] = {
        "task": task_name,
        "floor": floor_name,
        "timings": {name: t.summary(floor_t) for name, t in timings.items()},
        "_timings": timings,
    }
    if pickle_task:
        out["step_over_pickle_p50"] = timings["env.step"].p50 / timings["pickle peer step"].p50
        out["step_over_pickle_p99"] = timings["env.step"].p99 / timings["pickle peer step"].p99
    if with_state:
        out["state_over_plain"] = timings["env.step + state attached"].p50 / timings["env.step"].p50
    return out


def bench_payload(host: str, port: int, steps: int, shape: tuple[int, ...] = (1024, 1024)) -> dict[str, Any]:
    """A 1 MiB observation: gym-remote's framing against one msgpack-numpy frame and raw bytes, same run."""
    from gym_remote.env import RemoteEnv

    env = RemoteEnv(host, port, task="gym_remote/Payload-v0", task_kwargs={"shape": list(shape)})
    closers: list[Any] = [env]
    try:
        env.reset(seed=0)
        action = np.zeros(4, np.float32)
        req_size, rep_size = step_sizes(env, action)
        mnp = EchoPeer(req_size, 0, reply_kind="msgpack-numpy", shape=shape)
        raw = EchoPeer(req_size, rep_size)
        closers += [mnp, raw]
        funcs = {
            "raw zmq bytes (1 MiB reply)": raw.round_trip,
            "msgpack-numpy single frame": mnp.round_trip,
            "env.step (1 MiB obs)": lambda: env.step(action),
        }
        timings = interleave(funcs, steps, block=50, desc="1 MiB payload", warmup=20)
    finally:
        for c in reversed(closers):
            c.close()
    raw_t: Timing = timings["raw zmq bytes (1 MiB reply)"]
    return {
        "timings": {name: t.summary(raw_t) for name, t in timings.items()},
        "step_over_msgpack_numpy": timings["env.step (1 MiB obs)"].p50 / timings["msgpack-numpy single frame"].p50,
        "_timings": timings,
    }
