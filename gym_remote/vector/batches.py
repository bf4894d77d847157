"""Batch trees across shards: split a batch into per-server slices and merge the replies in order.

Obs, infos and states are trees (dicts and tuples) of arrays whose first axis is the sub-env; a
Graph, Sequence, OneOf or Text batch is a tuple of one sample per sub-env.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


def _slice_tree(tree: Any, start: int, stop: int) -> Any:
    if isinstance(tree, dict):
        return {k: _slice_tree(v, start, stop) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(_slice_tree(v, start, stop) for v in tree)
    return tree[start:stop]


def concat_batches(parts: Sequence[Any], counts: Sequence[int]) -> Any:
    """Concatenate batched obs or vector infos from several servers along the batch axis.

    Info keys that only some servers returned are filled with zeros (and ``False`` masks), as
    Gymnasium's own vector envs do for sub-envs that did not report a key.
    """
    if len(parts) == 1:
        return parts[0]
    first = next((p for p in parts if p is not None), None)
    if isinstance(first, dict):
        keys = list(dict.fromkeys(k for p in parts for k in p))
        out = {}
        for k in keys:
            present = [p[k] for p in parts if k in p]
            out[k] = concat_batches(
                [p[k] if k in p else _empty_like(present[0], n) for p, n in zip(parts, counts, strict=True)],
                counts,
            )
        return out
    if isinstance(first, tuple):
        return tuple(concat_batches([p[i] for p in parts], counts) for i in range(len(first)))
    arrays = [np.asarray(p) for p in parts]
    if any(a.ndim == 0 for a in arrays):  # a per-batch figure (e.g. Isaac Lab's info["log"]): not per sub-env
        return arrays[0]
    return np.concatenate(arrays, axis=0)


#: Spaces whose batch is a tuple with one sample per sub-env (Gymnasium's ``batch_space``).
_PER_ENV_TUPLES = (spaces.Graph, spaces.Sequence, spaces.OneOf, spaces.Text)


def slice_batch(space: spaces.Space, batch: Any, start: int, stop: int) -> Any:
    """Sub-envs ``start:stop`` of a batch of the single-env ``space`` (the inverse of concatenation)."""
    if isinstance(space, spaces.Dict):
        return {k: slice_batch(s, batch[k], start, stop) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(slice_batch(s, b, start, stop) for s, b in zip(space.spaces, batch, strict=True))
    return batch[start:stop]  # an array, or a tuple of one sample per sub-env


def concat_observations(space: spaces.Space, parts: Sequence[Any], counts: Sequence[int]) -> Any:
    """Concatenate batched observations of the single-env ``space`` from several servers, in order.

    Arrays are concatenated along the batch axis; Graph, Sequence, OneOf and Text batches are
    tuples of one sample per sub-env, so they are joined as tuples; Dict and Tuple recurse.
    """
    if len(parts) == 1:
        return parts[0]
    if isinstance(space, spaces.Dict):
        return {k: concat_observations(s, [p[k] for p in parts], counts) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(concat_observations(s, [p[i] for p in parts], counts) for i, s in enumerate(space.spaces))
    if isinstance(space, _PER_ENV_TUPLES):
        return tuple(x for p in parts for x in p)
    return np.concatenate([np.asarray(p) for p in parts], axis=0)


def _empty_like(example: Any, n: int) -> Any:
    if isinstance(example, dict):
        return {k: _empty_like(v, n) for k, v in example.items()}
    if isinstance(example, tuple):
        return tuple(_empty_like(v, n) for v in example)
    example = np.asarray(example)
    if example.dtype == object:
        return np.full(n, None, dtype=object)
    return np.zeros((n, *example.shape[1:]), dtype=example.dtype)
