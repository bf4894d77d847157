"""Simulator output made host numpy, and rows of batch trees (arrays, or dicts of them, batch first).

Tensors come to the host once per array per step: :func:`to_host` makes one device-to-host copy the
caller owns, :func:`info_to_host` stacks an info dict's 0-d tensors into a single copy. The row helpers
(:func:`take_rows`, :func:`put_rows`, ...) treat an observation and a dict of observations alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = [
    "copy_tree",
    "first_dim",
    "info_to_host",
    "put_rows",
    "space_from_batch",
    "take_rows",
    "to_host",
    "tree_to_host",
    "unbatch_info",
]


def _is_tensor(value: Any) -> bool:
    return hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "ndim")


def to_host(value: Any) -> np.ndarray:
    """One device-to-host copy of a tensor as a numpy array the caller owns.

    A tensor already on the CPU shares memory with its numpy view, and simulators overwrite their
    buffers in place on the next step, so that case gets a private host copy instead.
    """
    if not _is_tensor(value):
        return np.asarray(value)
    on_cpu = getattr(getattr(value, "device", None), "type", "cpu") == "cpu"
    arr = value.detach().cpu().numpy()
    return arr.copy() if on_cpu else arr


def tree_to_host(tree: Any) -> Any:
    """Tensors (possibly in nested dicts) to numpy arrays, one copy per tensor."""
    if isinstance(tree, Mapping):
        return {str(k): tree_to_host(v) for k, v in tree.items()}
    return to_host(tree)


def info_to_host(info: Any, dropped: set[str] | None = None) -> dict[str, Any]:
    """A simulator's info/extras dict made wire-safe, with all 0-d tensors in ONE host copy.

    Isaac Lab's ``extras["log"]`` holds a dozen scalar tensors; converting each with ``.item()``
    would synchronise the GPU a dozen times per step, so they are stacked on the device first.
    Values that cannot travel (simulator objects) are left out; their keys are added to ``dropped``.
    """
    out: dict[str, Any] = {}
    scalars: list[tuple[dict[str, Any], str, Any]] = []

    def walk(src: Mapping[Any, Any], dst: dict[str, Any], prefix: str) -> None:
        for key, value in src.items():
            if not isinstance(key, str):
                if dropped is not None:
                    dropped.add(f"{prefix}{key!r}")
                continue
            if isinstance(value, Mapping):
                dst[key] = {}
                walk(value, dst[key], f"{prefix}{key}/")
            elif _is_tensor(value):
                if value.ndim == 0:
                    scalars.append((dst, key, value))
                else:
                    dst[key] = to_host(value)
            elif value is None or isinstance(value, (bool, int, float, str, np.ndarray, np.generic)):
                dst[key] = value
            elif isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value):
                dst[key] = list(value)
            elif dropped is not None:
                dropped.add(f"{prefix}{key}")

    if isinstance(info, Mapping):
        walk(info, out, "")
    if scalars:
        try:
            import torch

            values = to_host(torch.stack([t.detach().double() for _, _, t in scalars])).tolist()
        except (ImportError, RuntimeError, TypeError):  # mixed devices: fall back to one sync each
            values = [float(t.item()) for _, _, t in scalars]
        for (dst, key, _), value in zip(scalars, values, strict=True):
            dst[key] = float(value)
    return out


def take_rows(tree: Any, idx: Any) -> Any:
    if isinstance(tree, dict):
        return {k: take_rows(v, idx) for k, v in tree.items()}
    return np.asarray(tree)[idx]


def put_rows(dst: Any, idx: Any, src: Any) -> None:
    if isinstance(dst, dict):
        for k in dst:
            put_rows(dst[k], idx, src[k])
    else:
        dst[idx] = src


def copy_tree(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: copy_tree(v) for k, v in tree.items()}
    return np.array(tree)


def first_dim(tree: Any) -> int:
    if isinstance(tree, dict):
        return first_dim(next(iter(tree.values())))
    return int(np.shape(tree)[0])


def unbatch_info(info: Mapping[str, Any]) -> dict[str, Any]:
    """A one-sub-env vector info as a plain env's info: drop masks, take row 0 of batched arrays."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        if key.startswith("_"):
            continue
        if isinstance(value, Mapping):
            out[key] = unbatch_info(value)
        elif isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == 1:
            out[key] = value[0]
        else:
            out[key] = value
    return out


def space_from_batch(batch: Any) -> gym.Space:
    if isinstance(batch, dict):
        return gym.spaces.Dict({k: space_from_batch(v) for k, v in batch.items()})
    arr = np.asarray(batch)
    return gym.spaces.Box(-np.inf, np.inf, arr.shape[1:], arr.dtype)
