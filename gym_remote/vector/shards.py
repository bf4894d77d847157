"""The shards of a vector env and the requests in flight on them.

A shard is one session: sub-envs ``start:start + count`` of the batch on one server (one per server,
or one per group of ``batch_size`` for EnvPool's async API). :class:`Shards` owns them all and what
is in flight, and is the one place requests go out:

- :meth:`Shards.gather` sends one request to every shard before awaiting any reply, so the servers
  work concurrently, and returns each shard's reply or error in order (:meth:`Shards.request`
  raises the first error instead, naming its server).
- :meth:`Shards.send` and :meth:`Shards.recv` are EnvPool's split step: a request goes out to some
  groups, and the first reply to arrive comes back with its group (an :class:`InFlight`), the oldest
  first when several have arrived (:func:`gym_remote.client.wait_any` polls the sockets).

It holds no reference to the env, so the env's finalizer closes it (:meth:`Shards.close`) without
keeping the env alive.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import batch_space, iterate

from gym_remote.client import Connection, wait_any
from gym_remote.client_session import ClientSession
from gym_remote.env import close_links
from gym_remote.errors import RemoteEnvError, restated
from gym_remote.protocol import Kind

__all__ = ["InFlight", "Shards"]

log = logging.getLogger("gym_remote.vector")


class _Shard:
    """One server's slice of the batch: sub-envs ``start:start + count`` in one :class:`ClientSession`."""

    def __init__(self, link: ClientSession, start: int, count: int) -> None:
        self.link, self.start, self.count = link, start, count
        #: The sub-env indices (``int32``, ascending): the ``env_ids`` that ``recv()`` returns for this shard.
        self.env_ids = np.arange(start, start + count, dtype=np.int32)
        #: The latest obs (and state) of this shard's sub-envs.
        self.last: dict[str, Any] = {}

    @property
    def conn(self) -> Connection:
        return self.link.conn

    @property
    def server(self) -> Any:
        """The handle of the server this env started for the shard (``None``: an existing server)."""
        return self.link.server

    @property
    def name(self) -> str:
        return self.link.name


@dataclass(frozen=True)
class InFlight:
    """A request out on one shard whose reply :meth:`Shards.recv` has not returned yet."""

    #: The shard (one group of sub-envs) the request went to.
    shard: _Shard
    #: ``Kind.RESET`` (from ``async_reset``) or ``Kind.STEP`` (from ``send``).
    kind: Kind


class Shards(Sequence[_Shard]):
    """The shards of one :class:`~gym_remote.vector.RemoteVectorEnv`, in sub-env order, and what is in flight.

    A sequence of ``_Shard`` (``len``, iteration, indexing). Every request goes out here: to all shards
    at once (:meth:`gather`, :meth:`request`, :meth:`open`) or to some groups without waiting
    (:meth:`send`, then :meth:`recv`).
    """

    def __init__(self) -> None:
        self._items: list[_Shard] = []
        self._by_start: dict[int, _Shard] = {}
        #: The requests out on groups, oldest first (a dict keeps insertion order).
        self._flight: dict[_Shard, InFlight] = {}
        self._spaces: dict[tuple[int, int], tuple[spaces.Space, spaces.Space]] = {}
        #: The only shard when there is one (the fast path of ``step``), else ``None``.
        self.only: _Shard | None = None
        #: The ``env_ids`` the latest :meth:`recv` returned (``None`` before the first).
        self.last_ids: np.ndarray | None = None
        #: Whether :meth:`close` ran: every session is closed.
        self.closed = False

    # ------------------------------------------------------------------------------ the shards

    def add(self, link: ClientSession, count: int) -> _Shard:
        """Append a shard of ``count`` sub-envs on ``link``, after the others in sub-env order."""
        start = self._items[-1].start + self._items[-1].count if self._items else 0
        shard = _Shard(link, start, count)
        self._items.append(shard)
        self._by_start[start] = shard
        self.only = shard if len(self._items) == 1 else None
        return shard

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[_Shard]:
        return iter(self._items)

    def __getitem__(self, index: Any) -> Any:
        return self._items[index]

    def batched(self, single: spaces.Space, n: int) -> spaces.Space:
        """``batch_space(single, n)``, built once per space and size (the spaces of one group)."""
        key = (id(single), n)
        cached = self._spaces.get(key)
        if cached is None:  # the single space is kept with its batch, so its id is not reused
            cached = self._spaces[key] = (single, batch_space(single, n))
        return cached[1]

    def check_open(self) -> None:
        """Raises:
        RemoteEnvError: :meth:`close` ran.
        """
        if self.closed:
            raise RemoteEnvError("this vector env is closed: close() ended its sessions; make a new one to go on")

    def close(self) -> None:
        """Forget the requests in flight (their replies are never read) and close every session and
        the servers this env started; idempotent."""
        self.closed = True
        self._flight.clear()
        close_links(self._items)  # a pending request is abandoned first

    # --------------------------------------------------------------------- every shard at once

    def gather(
        self,
        kind: Kind,
        bodies: Sequence[Any] | None = None,
        shards: Sequence[_Shard] | None = None,
        timeout: float | None = None,
    ) -> list[Any]:
        """Send ``kind`` to every one of ``shards``, then receive from each: a reply or the error, per shard.

        Every request is out before any reply is awaited, so the servers work concurrently. After a
        failed send (a dead server makes a send wait its whole timeout) the rest are not sent, so
        the call fails within one timeout; the replies already due are still collected.

        Args:
            kind: the request; ``Kind.HELLO`` opens a new session on each shard (``bodies`` unused).
            bodies: one body per shard, in order.
            shards: some of the shards (default: all).
            timeout: seconds per reply (default: the connection's).

        Returns:
            Per shard, in order: its reply body, or the :class:`RemoteEnvError` it failed with.

        Raises:
            RemoteEnvError: the env is closed.
        """
        self.check_open()
        shards = self._items if shards is None else shards
        hello = kind is Kind.HELLO
        results: list[Any] = [None] * len(shards)
        for i, shard in enumerate(shards):
            try:
                if hello:
                    shard.link.send_open()
                else:
                    shard.link.send(kind, bodies[i] if bodies is not None else None, timeout)
            except RemoteEnvError as exc:
                results[i] = exc
                for j in range(i + 1, len(shards)):
                    results[j] = RemoteEnvError(f"not sent: server {shard.name} failed first")
                break
        for i, shard in enumerate(shards):
            if results[i] is None:
                try:
                    results[i] = shard.link.recv_open() if hello else shard.link.recv(timeout)
                except RemoteEnvError as exc:
                    results[i] = exc
        return results

    def raise_first(self, results: list[Any]) -> list[Any]:
        """``results`` (of :meth:`gather`) if none is an error.

        Raises:
            RemoteEnvError: the first error; with several shards, a new one of its class naming its
                server, raised from it.
        """
        for result in results:
            if isinstance(result, RemoteEnvError):
                if len(self._items) > 1 and result.host is not None:
                    raise restated(result, f"server {result.host}:{result.port} failed: {result.message}") from result
                raise result
        return results

    def request(
        self,
        kind: Kind,
        bodies: Sequence[Any] | None = None,
        shards: Sequence[_Shard] | None = None,
        timeout: float | None = None,
    ) -> list[Any]:
        """:meth:`gather`, then :meth:`raise_first`: the replies in order, or the first error raised."""
        return self.raise_first(self.gather(kind, bodies, shards, timeout))

    def open(self, shards: Sequence[_Shard] | None = None) -> list[dict[str, Any]]:
        """HELLO on ``shards`` (default: all) concurrently, opening new sessions; their replies, in order."""
        return self.request(Kind.HELLO, None, shards)

    def restart(self, shard: _Shard, with_state: bool, single_obs: spaces.Space) -> dict[str, Any]:
        """A new session for ``shard``, whose server forgot its session during a step, reset at once.

        Returns:
            What a SAME_STEP step reply holds for the shard's sub-envs: each reported truncated, its
            ``final_obs`` the last observation seen, ``obs`` the new session's first.
        """
        log.warning("session on %s lost during a step: its %d sub-envs restart as truncated", shard.name, shard.count)
        self.open([shard])
        reply = shard.link.request(Kind.RESET, {"seed": None, "options": None, "with_state": with_state})
        n = shard.count
        final_obs = np.empty(n, dtype=object)
        if shard.last.get("obs") is not None:
            for j, obs in enumerate(iterate(self.batched(single_obs, n), shard.last["obs"])):
                final_obs[j] = obs
        info = {
            **(reply.get("info") or {}),
            "final_obs": final_obs,
            "_final_obs": np.ones(n, bool),
            "final_info": {},
            "_final_info": np.ones(n, bool),
        }
        return {
            "obs": reply["obs"],
            "reward": np.zeros(n),
            "terminated": np.zeros(n, bool),
            "truncated": np.ones(n, bool),
            "info": info,
            "state": reply.get("state"),
        }

    # -------------------------------------------------------------- groups in flight (EnvPool)

    @property
    def in_flight(self) -> int:
        """How many groups have a request out whose reply :meth:`recv` has not returned."""
        return len(self._flight)

    def check_idle(self, call: str) -> None:
        """Synchronous calls refuse to run while groups are in flight (their replies would be lost).

        Raises:
            RemoteEnvError: some group is in flight, naming ``call``.
        """
        if self._flight:
            raise RemoteEnvError(
                f"{call}() while {len(self._flight)} group(s) are in flight: recv() their results first "
                "(or close the env)"
            )

    def groups_of(self, ids: np.ndarray) -> list[tuple[_Shard, int]]:
        """The groups ``ids`` consist of, each with its offset in ``ids``.

        Raises:
            ValueError: ``ids`` are not whole groups, each in ascending order.
        """
        if ids.ndim != 1 or ids.dtype.kind not in "iu" or not len(ids):
            raise ValueError(f"env_ids must be a non-empty 1-D integer array, got {ids!r}")
        groups, offset = [], 0
        while offset < len(ids):
            shard = self._by_start.get(int(ids[offset]))
            if shard is not None and ids is shard.env_ids:  # what recv() returned for this group: whole
                return [(shard, 0)]
            if shard is None or not np.array_equal(ids[offset : offset + shard.count], shard.env_ids):
                sizes = sorted({s.count for s in self._items})
                raise ValueError(
                    f"env_ids must be whole groups (sizes {sizes}, each in ascending order, as recv() returns "
                    f"them); got {ids[offset : offset + 8]}... at position {offset}"
                )
            groups.append((shard, offset))
            offset += shard.count
        return groups

    def send(self, kind: Kind, requests: Sequence[tuple[_Shard, Any]]) -> None:
        """Send ``kind`` with a body to each group of ``requests`` (``(shard, body)`` pairs) without waiting;
        :meth:`recv` returns the replies.

        Raises:
            RemoteEnvError: one of the groups is already in flight (nothing is sent then), or the env is closed.
        """
        self.check_open()
        for shard, _ in requests:
            if shard in self._flight:
                raise RemoteEnvError(
                    f"sub-envs {shard.start}..{shard.start + shard.count - 1} are already in flight: recv() first"
                )
        for shard, body in requests:
            shard.link.send(kind, body)
            self._flight[shard] = InFlight(shard, kind)

    def wait_any(self, timeout: float | None = None) -> InFlight:
        """The first request in flight whose reply has arrived (the oldest of several), waiting up to
        ``timeout`` seconds (default: the connection's); the oldest when none arrived in time."""
        waiting = list(self._flight.values())
        budget = waiting[0].shard.conn.timeout if timeout is None else timeout
        return waiting[wait_any([f.shard.conn for f in waiting], budget)]

    def recv(self, timeout: float | None = None) -> tuple[InFlight, Any]:
        """The first reply in flight to arrive, with its request: :meth:`wait_any`, then that shard's reply.

        Raises:
            RemoteEnvError: nothing is in flight, or the env is closed.
            RemoteTimeoutError: no group answered within ``timeout``.
            SessionLostError, ServerError: the group's request failed (it is no longer in flight).
        """
        self.check_open()
        if not self._flight:
            raise RemoteEnvError("recv() with nothing in flight: send() actions or async_reset() first")
        item = self.wait_any(timeout)
        del self._flight[item.shard]
        reply = item.shard.link.recv(timeout)  # ready (or the oldest, whose timeout error this raises)
        self.last_ids = item.shard.env_ids
        return item, reply
