"""Shards and the fan-out: one session per server, every request sent before any reply is awaited."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from gymnasium.vector.utils import batch_space, iterate

from gym_remote.client import Connection
from gym_remote.client_session import ClientSession
from gym_remote.errors import RemoteEnvError
from gym_remote.protocol import Kind

log = logging.getLogger("gym_remote.vector")


class _Shard:
    """One server's slice of the batch: sub-envs ``start:start + count`` in one :class:`ClientSession`."""

    def __init__(self, link: ClientSession, start: int, count: int) -> None:
        self.link, self.start, self.count = link, start, count
        self.last: dict[str, Any] = {}  # the latest obs (and state) of this shard's sub-envs

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


class _FanOut:
    """The fan-out methods of :class:`~gym_remote.vector.RemoteVectorEnv` (its ``_shards``, ``_closed``)."""

    def _open(self, shards: Sequence[_Shard]) -> list[dict[str, Any]]:
        """HELLO on ``shards`` concurrently (new sessions); their replies, in order."""
        results = self._gather(shards, lambda sh: sh.link.send_open(), lambda sh: sh.link.recv_open())
        return self._raise_first(shards, results)

    def _gather(
        self, shards: Sequence[_Shard], send: Callable[[_Shard], None], recv: Callable[[_Shard], Any]
    ) -> list[Any]:
        """``send`` to every shard, then ``recv`` from each: a reply or the error, per shard, in order.

        Every request is out before any reply is awaited, so the servers work concurrently. After a
        failed send (a dead server makes a send wait its whole timeout) the rest are not sent, so
        the call fails within one timeout; the replies already due are still collected.
        """
        self._check_open()
        results: list[Any] = [None] * len(shards)
        for i, shard in enumerate(shards):
            try:
                send(shard)
            except RemoteEnvError as exc:
                results[i] = exc
                for j in range(i + 1, len(shards)):
                    results[j] = RemoteEnvError(f"not sent: server {shard.name} failed first")
                break
        for i, shard in enumerate(shards):
            if results[i] is None:
                try:
                    results[i] = recv(shard)
                except RemoteEnvError as exc:
                    results[i] = exc
        return results

    def _raise_first(self, shards: Sequence[_Shard], results: list[Any]) -> list[Any]:
        """``results`` if none is an error; else raise the first, naming its server when there are several."""
        for result in results:
            if isinstance(result, RemoteEnvError):
                if len(self._shards) > 1 and result.host is not None:
                    result.message = f"server {result.host}:{result.port} failed: {result.message}"
                    result.args = (result.message,)
                raise result
        return results

    def _check_open(self) -> None:
        if self._closed:
            raise RemoteEnvError("this vector env is closed: close() ended its sessions; make a new one to go on")

    def _all(
        self, kind: Kind, bodies: Sequence[Any], timeout: float | None = None, shards: Sequence[_Shard] | None = None
    ) -> list[Any]:
        """One request per shard, concurrently; the replies in order, or the first error raised."""
        shards = self._shards if shards is None else shards
        payload = dict(zip(map(id, shards), bodies, strict=True))
        results = self._gather(
            shards, lambda sh: sh.link.send(kind, payload[id(sh)], timeout), lambda sh: sh.link.recv(timeout)
        )
        return self._raise_first(shards, results)

    def _restart_shard(self, shard: _Shard) -> dict[str, Any]:
        """A step reply for a shard whose server forgot its session: a new session, reset, and every
        sub-env of the shard reported truncated (SAME_STEP: ``final_obs`` is its last observation)."""
        log.warning("session on %s lost during a step: its %d sub-envs restart as truncated", shard.name, shard.count)
        self._open([shard])
        reply = shard.link.request(Kind.RESET, {"seed": None, "options": None, "with_state": self.with_state})
        n = shard.count
        final_obs = np.empty(n, dtype=object)
        if shard.last.get("obs") is not None:
            batched = batch_space(self.single_observation_space, n)
            for j, obs in enumerate(iterate(batched, shard.last["obs"])):
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
