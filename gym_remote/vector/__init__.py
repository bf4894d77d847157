"""``RemoteVectorEnv``: a batch of remote sub-envs, one round trip per batched step.

A GPU simulator steps thousands of sub-envs in one process; over a network every round trip costs
milliseconds, so the whole batch travels in one request. Sub-envs may be spread over several
servers (``hosts=[...]``): every request is sent before any reply is awaited, so the servers step
concurrently, and the replies are merged in order. Autoreset happens on the server, in the mode
the client asked for.

Modules, each importing only the ones before it: ``batches`` (slicing a batch tree per server and
merging the replies), ``shards`` (:class:`~gym_remote.vector.shards.Shards`: the sessions, one per
server or group, and the requests out on them) and ``env`` (:class:`RemoteVectorEnv`, which holds
one ``Shards``). ``RemoteVectorEnv`` and the batch helpers are re-exported here.
"""

from __future__ import annotations

from gym_remote.vector.batches import (
    _PER_ENV_TUPLES,
    _empty_like,
    _slice_tree,
    _split,
    concat_batches,
    concat_observations,
    slice_batch,
)
from gym_remote.vector.env import _AUTORESET, RemoteVectorEnv, log
from gym_remote.vector.shards import _Shard

__all__ = [
    "_AUTORESET",
    "_PER_ENV_TUPLES",
    "RemoteVectorEnv",
    "_Shard",
    "_empty_like",
    "_slice_tree",
    "_split",
    "concat_batches",
    "concat_observations",
    "log",
    "slice_batch",
]
