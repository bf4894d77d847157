"""EnvPool's async batch API for :class:`~gym_remote.vector.RemoteVectorEnv`: groups of envs in flight.

An env needs its reply before its next action, so over a link of RTT seconds a vector env that
waits for every sub-env cannot exceed ``num_envs / RTT`` env-steps per second, and the server, the
link and the client take turns instead of working together. EnvPool's async mode splits the sub-envs
into groups of ``batch_size`` and keeps several groups in flight: the policy acts on the group that
just arrived while the others are stepped or travel.

``gym.make_vec("Remote-IsaacSim-v0", num_envs=2048, batch_size=256)`` makes 8 groups of 256; each
group is a session of its own (several on one server, or spread over ``hosts``), so every group has
its own socket and its own place in the server's queue. Then::

    envs.async_reset(seed=0)                       # every group resets, nothing is awaited
    while training:
        obs, rew, term, trunc, info, env_ids = envs.recv()     # the first group to arrive
        envs.send(policy(obs), env_ids)                         # its next actions go out at once

``env_ids`` are the sub-env indices of the group (``int32``, ascending); ``send`` takes the actions
of one or more whole groups with their ids. ``step`` and ``reset`` stay the synchronous composition
(every group sent, every reply merged in order), so nothing changes for code that does not use this
API; they refuse to run while groups are in flight. Autoreset happens on the server in the mode the
env was made with, per group, exactly as in ``step``.

The groups and the requests in flight are kept by :class:`gym_remote.vector.shards.Shards`; this
module lays the groups out (:func:`group_layout`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["group_layout"]


def group_layout(num_envs: int, endpoints: int, batch_size: int | None) -> list[tuple[int, int]]:
    """``(endpoint index, sub-envs)`` per group, in sub-env order.

    Without ``batch_size``: one group per endpoint, the sub-envs split as evenly as possible. With it:
    ``num_envs / batch_size`` groups, dealt round-robin over the endpoints.

    Raises:
        ValueError: ``batch_size`` does not divide ``num_envs``, or some endpoint would serve nothing.
    """
    if batch_size is None:
        if endpoints > num_envs:
            raise ValueError(f"{endpoints} hosts for {num_envs} sub-envs: some would serve none")
        base, extra = divmod(num_envs, endpoints)
        return [(i, base + (i < extra)) for i in range(endpoints)]
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if num_envs % batch_size:
        raise ValueError(
            f"batch_size={batch_size} does not divide num_envs={num_envs}: groups are equal, so pick a divisor "
            f"(e.g. {_divisor_near(num_envs, int(batch_size))})"
        )
    groups = num_envs // int(batch_size)
    if endpoints > groups:
        raise ValueError(f"{endpoints} hosts for {groups} groups of batch_size={batch_size}: some would serve none")
    return [(g % endpoints, int(batch_size)) for g in range(groups)]


def _divisor_near(n: int, size: int) -> int:
    return min((d for d in range(1, n + 1) if n % d == 0), key=lambda d: abs(d - size))
