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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import zmq
from gymnasium.vector.utils import batch_space

from gym_remote.errors import RemoteEnvError
from gym_remote.protocol import Kind
from gym_remote.spaces import validate_action

if TYPE_CHECKING:
    from gym_remote.vector import _Shard

__all__ = ["AsyncBatches", "group_layout"]

_POLLIN = int(zmq.POLLIN)


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


class AsyncBatches:
    """``async_reset`` / ``send`` / ``recv`` over the groups (shards) of a ``RemoteVectorEnv``.

    A mixin: it uses the vector env's ``_shards`` (each one session: ``link``, ``start``, ``count``,
    ``last``), its spaces and ``with_state``. The groups with a request out are kept in send order, so
    :meth:`recv` returns the oldest of those ready first.
    """

    _shards: list[_Shard]
    num_envs: int
    with_state: bool
    #: Sub-envs per group (``None``: one group per server).
    batch_size: int | None = None

    # ------------------------------------------------------------------------------- state

    def _async_state(self) -> dict[str, Any]:
        state = self.__dict__.get("_async")
        if state is None:
            starts = {s.start: s for s in self._shards}
            ids = {id(s): np.arange(s.start, s.start + s.count, dtype=np.int32) for s in self._shards}
            state = self.__dict__["_async"] = {"flight": {}, "starts": starts, "ids": ids, "spaces": {}, "last": None}
        return state

    @property
    def in_flight(self) -> int:
        """How many groups have a request out whose results :meth:`recv` has not returned yet."""
        state = self.__dict__.get("_async")
        return len(state["flight"]) if state else 0

    def _check_idle(self, call: str) -> None:
        """Synchronous calls refuse to run while groups are in flight (their replies would be lost)."""
        if self.in_flight:
            raise RemoteEnvError(
                f"{call}() while {self.in_flight} group(s) are in flight: recv() their results first (or close the env)"
            )

    def _batched(self, which: str, n: int) -> Any:
        spaces = self._async_state()["spaces"]
        key = (which, n)
        if key not in spaces:
            single = getattr(self, "single_action_space" if which == "action" else "single_observation_space")
            spaces[key] = batch_space(single, n)
        return spaces[key]

    def _abandon_in_flight(self) -> None:
        """Drop the requests in flight (on close): their sockets are replaced, their replies ignored."""
        state = self.__dict__.get("_async")
        if not state:
            return
        for shard, _ in state["flight"].values():
            shard.link.conn.abandon()
        state["flight"].clear()

    # ----------------------------------------------------------------------------- the API

    def async_reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> None:
        """Reset every group without waiting; :meth:`recv` returns each group's observations.

        Seeds are those of ``reset``: sub-env *i* gets ``seed + i``. ``recv`` then reports rewards of
        0 and no terminations for these groups, and the reset ``info``.

        Raises:
            RemoteEnvError: a group is already in flight, or the env is closed.
        """
        self._check_open()  # type: ignore[attr-defined]
        self._check_idle("async_reset")
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} sub-envs")
        lost = [s for s in self._shards if s.link.lost]
        if lost:
            self._open(lost)  # type: ignore[attr-defined]
        flight = self._async_state()["flight"]
        for shard in self._shards:
            group_seeds = seeds[shard.start : shard.start + shard.count]
            body = {
                "seed": None if all(s is None for s in group_seeds) else group_seeds,
                "options": options,
                "with_state": self.with_state,
            }
            shard.link.send(Kind.RESET, body)
            flight[id(shard)] = (shard, Kind.RESET)

    def send(self, actions: Any, env_ids: Any = None) -> None:
        """Send the actions of one or more whole groups; do not wait.

        Args:
            actions: a batch of actions for ``env_ids``, in their order (``len(env_ids)`` rows).
            env_ids: sub-env indices, whole groups each in ascending order (as :meth:`recv` returns
                them); ``None``: those of the latest :meth:`recv`.

        Raises:
            ValueError: ``env_ids`` are not whole groups, or the actions do not fit.
            RemoteEnvError: a group is already in flight, or the env is closed.
        """
        self._check_open()  # type: ignore[attr-defined]
        state = self._async_state()
        ids = state["last"] if env_ids is None else np.asarray(env_ids)
        if ids is None:
            raise ValueError("send() without env_ids needs a recv() first: pass the env_ids of the groups")
        groups = self._groups_of(ids, state)
        actions = validate_action(self._batched("action", len(ids)), actions)
        flight = state["flight"]
        for shard, _ in groups:
            if id(shard) in flight:
                raise RemoteEnvError(
                    f"sub-envs {shard.start}..{shard.start + shard.count - 1} are already in flight: recv() first"
                )
        from gym_remote.vector import slice_batch

        single = self.single_action_space  # type: ignore[attr-defined]
        for shard, offset in groups:
            part = actions if len(groups) == 1 else slice_batch(single, actions, offset, offset + shard.count)
            shard.link.send(Kind.STEP, {"action": part, "with_state": self.with_state})
            flight[id(shard)] = (shard, Kind.STEP)

    def _groups_of(self, ids: np.ndarray, state: dict[str, Any]) -> list[tuple[_Shard, int]]:
        """The groups ``ids`` consist of, with the offset of each in ``ids``; a ValueError otherwise."""
        if ids.ndim != 1 or ids.dtype.kind not in "iu" or not len(ids):
            raise ValueError(f"env_ids must be a non-empty 1-D integer array, got {ids!r}")
        groups, offset = [], 0
        while offset < len(ids):
            shard = state["starts"].get(int(ids[offset]))
            own = None if shard is None else state["ids"][id(shard)]
            if ids is own:  # the env_ids recv() returned for this group: whole by construction
                return [(shard, 0)]
            if shard is None or not np.array_equal(ids[offset : offset + shard.count], own):
                sizes = sorted({s.count for s in self._shards})
                raise ValueError(
                    f"env_ids must be whole groups (sizes {sizes}, each in ascending order, as recv() returns "
                    f"them); got {ids[offset : offset + 8]}... at position {offset}"
                )
            groups.append((shard, offset))
            offset += shard.count
        return groups

    def recv(
        self, timeout: float | None = None
    ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any], np.ndarray]:
        """The results of the first group in flight to arrive (the oldest first when several have).

        Returns:
            ``(obs, reward, terminated, truncated, info, env_ids)`` for the group's sub-envs: batched
            as ``step`` returns them (reward ``float64``, flags ``bool``), ``env_ids`` ``int32``.

        Raises:
            RemoteEnvError: nothing is in flight, or the env is closed.
            RemoteTimeoutError: no group answered within ``timeout`` (default: the env's ``timeout``).
            SessionLostError, ServerError: as for ``step``, for the group that failed.
        """
        self._check_open()  # type: ignore[attr-defined]
        state = self._async_state()
        flight: dict[int, tuple[_Shard, Kind]] = state["flight"]
        if not flight:
            raise RemoteEnvError("recv() with nothing in flight: send() actions or async_reset() first")
        budget = self.options.timeout if timeout is None else timeout  # type: ignore[attr-defined]
        shard = self._first_ready([s for s, _ in flight.values()], budget)
        _, kind = flight.pop(id(shard))
        reply = shard.link.recv(timeout)  # ready (or the oldest, whose timeout error this raises)
        n, space = shard.count, self._batched("obs", shard.count)  # type: ignore[attr-defined]
        env_ids = state["ids"][id(shard)]
        state["last"] = env_ids
        if kind is Kind.RESET:
            obs = self._take_obs(shard, reply, space)  # type: ignore[attr-defined]
            return obs, np.zeros(n), np.zeros(n, bool), np.zeros(n, bool), reply["info"], env_ids
        return (*self._step_result(shard, reply, space), env_ids)  # type: ignore[attr-defined]

    @staticmethod
    def _first_ready(shards: list[_Shard], timeout: float) -> _Shard:
        """The oldest of ``shards`` whose reply has arrived, waiting up to ``timeout`` for one."""
        if len(shards) == 1:
            return shards[0]  # its own recv waits (and times out) as any request does
        items = []
        for shard in shards:
            sock = shard.link.conn.socket
            if sock is None:  # its socket was replaced: let its recv report the error
                return shard
            items.append((sock, _POLLIN))
        # zmq_poll on the sockets directly: no Poller and no dict of registrations per call.
        ready = {sock for sock, events in zmq.zmq_poll(items, max(1, int(timeout * 1000))) if events}
        for shard in shards:
            if shard.link.conn.socket in ready:
                return shard
        return shards[0]  # nothing within the timeout: the oldest one's recv raises it
