"""Gymnasium spaces as plain data, so a client knows the spaces without the simulator installed.

Gymnasium has no serialisation for space *definitions* (``to_jsonable`` is for samples and ``repr``
does not round-trip), so each supported type gets a small explicit schema. Bounds travel as arrays,
so ``inf`` and per-element bounds survive exactly. Every space Gymnasium 1.x ships travels: Box,
Discrete, MultiDiscrete, MultiBinary, Text, Dict, Tuple, Graph, Sequence and OneOf. An unknown
space type fails at HELLO, not later.

Samples travel as plain data (arrays, tuples, dicts); a ``GraphInstance`` arrives as a plain tuple,
and :func:`restore_sample` turns it back into one, guided by the space (only for spaces that hold a
Graph: :func:`needs_restore` is checked once per space, not per step).
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
from gymnasium import spaces

from gym_remote.errors import SpaceError


def space_to_dict(space: spaces.Space) -> dict[str, Any]:
    """Describe ``space`` as msgpack-able data (arrays stay numpy arrays)."""
    if isinstance(space, spaces.Box):
        return {"type": "Box", "low": space.low, "high": space.high, "dtype": space.dtype.str}
    if isinstance(space, spaces.Discrete):
        return {
            "type": "Discrete",
            "n": int(space.n),
            "start": int(space.start),
            "dtype": np.dtype(space.dtype).str,
        }
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec, "start": space.start, "dtype": space.dtype.str}
    if isinstance(space, spaces.MultiBinary):
        n = space.n
        return {
            "type": "MultiBinary",
            "n": [int(x) for x in n] if isinstance(n, (tuple, list, np.ndarray)) else int(n),
        }
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": [[k, space_to_dict(s)] for k, s in space.spaces.items()]}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_dict(s) for s in space.spaces]}
    if isinstance(space, spaces.Text):
        return {
            "type": "Text",
            "min_length": int(space.min_length),
            "max_length": int(space.max_length),
            "charset": "".join(space.character_list),
        }
    if isinstance(space, spaces.Graph):
        edges = space.edge_space
        return {
            "type": "Graph",
            "node_space": space_to_dict(space.node_space),
            "edge_space": None if edges is None else space_to_dict(edges),
        }
    if isinstance(space, spaces.Sequence):
        return {"type": "Sequence", "space": space_to_dict(space.feature_space), "stack": bool(space.stack)}
    if isinstance(space, spaces.OneOf):
        return {"type": "OneOf", "spaces": [space_to_dict(s) for s in space.spaces]}
    raise SpaceError(
        f"{type(space).__name__} is not supported on the wire; supported: Box, Discrete, MultiDiscrete, "
        "MultiBinary, Dict, Tuple, Text, Graph, Sequence, OneOf"
    )


def space_from_dict(data: Any) -> spaces.Space:
    """Rebuild a space from :func:`space_to_dict` output; a malformed description is a SpaceError."""
    if not isinstance(data, dict) or "type" not in data:
        raise SpaceError(f"a space description must be a map with a 'type', got {type(data).__name__}")
    kind = data["type"]
    try:
        if kind == "Box":
            low, high = np.asarray(data["low"]), np.asarray(data["high"])
            return spaces.Box(low=low, high=high, shape=low.shape, dtype=np.dtype(data["dtype"]))
        if kind == "Discrete":
            return spaces.Discrete(int(data["n"]), start=int(data["start"]), **_dtype_kw(spaces.Discrete, data))
        if kind == "MultiDiscrete":
            return spaces.MultiDiscrete(
                np.asarray(data["nvec"]), dtype=np.dtype(data["dtype"]), start=np.asarray(data["start"])
            )
        if kind == "MultiBinary":
            return spaces.MultiBinary(data["n"])
        if kind == "Dict":
            return spaces.Dict({str(k): space_from_dict(s) for k, s in data["spaces"]})
        if kind == "Tuple":
            return spaces.Tuple(tuple(space_from_dict(s) for s in data["spaces"]))
        if kind == "Text":
            return spaces.Text(
                max_length=int(data["max_length"]),
                min_length=int(data["min_length"]),
                charset=data["charset"],
            )
        if kind == "Graph":
            node_space = space_from_dict(data["node_space"])
            edge_space = None if data["edge_space"] is None else space_from_dict(data["edge_space"])
            if not isinstance(node_space, (spaces.Box, spaces.Discrete)) or not isinstance(
                edge_space, (spaces.Box, spaces.Discrete, type(None))
            ):
                raise SpaceError("a Graph's node and edge spaces must be Box or Discrete")
            return spaces.Graph(node_space, edge_space)
        if kind == "Sequence":
            return spaces.Sequence(space_from_dict(data["space"]), stack=bool(data["stack"]))
        if kind == "OneOf":
            return spaces.OneOf(tuple(space_from_dict(s) for s in data["spaces"]))
    except SpaceError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise SpaceError(f"malformed {kind} space description: {type(exc).__name__}: {exc}") from exc
    raise SpaceError(f"unknown space type {kind!r}")


def needs_restore(space: spaces.Space) -> bool:
    """Whether samples of ``space`` hold a ``GraphInstance`` (which arrives as a plain tuple)."""
    if isinstance(space, spaces.Graph):
        return True
    if isinstance(space, spaces.Dict):
        return any(needs_restore(s) for s in space.spaces.values())
    if isinstance(space, (spaces.Tuple, spaces.OneOf)):
        return any(needs_restore(s) for s in space.spaces)
    if isinstance(space, spaces.Sequence):
        return needs_restore(space.feature_space)
    return False


def restore_sample(space: spaces.Space, value: Any) -> Any:
    """``value`` received on the wire with its ``GraphInstance`` parts rebuilt, guided by ``space``.

    Everything else is returned as it is. Call it only when :func:`needs_restore` is true.
    """
    if isinstance(space, spaces.Graph):
        if isinstance(value, tuple) and not isinstance(value, spaces.GraphInstance) and len(value) == 3:
            return spaces.GraphInstance(*value)
        return value
    if isinstance(space, spaces.Dict) and isinstance(value, dict):
        return {k: restore_sample(space.spaces[k], v) if k in space.spaces else v for k, v in value.items()}
    if isinstance(space, spaces.Tuple) and isinstance(value, tuple) and len(value) == len(space.spaces):
        return tuple(restore_sample(s, v) for s, v in zip(space.spaces, value, strict=True))
    if isinstance(space, spaces.Sequence) and not space.stack and isinstance(value, tuple):
        return tuple(restore_sample(space.feature_space, v) for v in value)
    if isinstance(space, spaces.OneOf) and isinstance(value, tuple) and len(value) == 2:
        index = int(value[0])
        if 0 <= index < len(space.spaces):
            return value[0], restore_sample(space.spaces[index], value[1])
    return value


def validate_action(space: spaces.Space, action: Any) -> Any:
    """Return ``action`` in the space's own types, or raise a ValueError saying what does not fit.

    Shapes and dtypes must fit; Box bounds are not enforced (envs clip, and SB3 clips before
    stepping), but discrete values must be in range since an env cannot recover from those.
    """
    # Fast paths for what agents send every step; the general checks below give the messages.
    fast_box = type(space) is spaces.Box and type(action) is np.ndarray
    if fast_box and action.shape == space.shape and action.dtype == space.dtype:
        return action
    if type(space) is spaces.Discrete and type(action) in (int, np.int64):
        start, n = int(space.start), int(space.n)
        if start <= action < start + n:
            return np.int64(action)
    # A batch of Discrete actions (a vector env's): an integer array of the right shape, in range.
    multi = type(space) is spaces.MultiDiscrete and type(action) is np.ndarray
    if multi and action.shape == space.shape and action.dtype.kind in "iu":
        cast = action if action.dtype == space.dtype else action.astype(space.dtype)
        bounds = _uniform_bounds(space)
        if bounds is not None and cast.size:  # every sub-env the same range: a min and a max
            small = cast.size <= 16  # Python's min/max over a short list beat two numpy reductions
            values = cast.ravel().tolist() if small else cast
            low, high = (min(values), max(values)) if small else (values.min(), values.max())
            if bounds[0] <= low and high < bounds[1]:
                return cast
        else:
            lo = space.start  # MultiDiscrete.contains, without its generic checks (10 us a call)
            if bool(((cast >= lo) & (cast - lo < space.nvec)).all()):
                return cast
    if isinstance(space, spaces.Box):
        arr = _numeric(action, "action", space.shape)
        if np.issubdtype(space.dtype, np.integer) and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"action dtype {arr.dtype} does not fit the integer Box dtype {space.dtype}")
        return arr.astype(space.dtype, copy=False)
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
        shape = () if isinstance(space, spaces.Discrete) else space.shape
        arr = _numeric(action, "action", shape)
        integral = np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.bool_)
        if not integral and (not np.all(np.isfinite(arr)) or not np.all(np.mod(arr, 1) == 0)):
            raise ValueError(f"action {action!r} is not integral, as {type(space).__name__} requires")
        cast = arr.astype(space.dtype)
        if not space.contains(cast if shape else space.dtype.type(cast)):
            raise ValueError(f"action {action!r} is outside {space}")
        return space.dtype.type(cast) if isinstance(space, spaces.Discrete) else cast
    if isinstance(space, spaces.Dict):
        if not isinstance(action, dict) or set(action) != set(space.spaces):
            got = sorted(action) if isinstance(action, dict) else type(action).__name__
            raise ValueError(f"action must be a dict with keys {sorted(space.spaces)}, got {got}")
        return {k: validate_action(s, action[k]) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        if not isinstance(action, (tuple, list)) or len(action) != len(space.spaces):
            raise ValueError(f"action must be a tuple of {len(space.spaces)} elements")
        return tuple(validate_action(s, a) for s, a in zip(space.spaces, action, strict=True))
    if isinstance(space, (spaces.Text, spaces.Graph, spaces.Sequence, spaces.OneOf)):
        if needs_restore(space):
            action = restore_sample(space, action)
        if not space.contains(action):
            raise ValueError(f"action {action!r} is not in {space}")
        return action
    raise ValueError(f"cannot validate actions of {type(space).__name__}")


#: id(space) -> (a weak reference to the MultiDiscrete space, its (start, start + n) when every
#: element has the same range, else None): a vector env's batched Discrete space, checked per step.
_BOUNDS: dict[int, tuple[weakref.ref[Any], tuple[int, int] | None]] = {}


def _uniform_bounds(space: spaces.MultiDiscrete) -> tuple[int, int] | None:
    entry = _BOUNDS.get(id(space))
    if entry is None or entry[0]() is not space:
        low, high = np.unique(space.start), np.unique(space.start + space.nvec)
        bounds = (int(low[0]), int(high[0])) if low.size == 1 and high.size == 1 else None
        if len(_BOUNDS) >= 256:
            _BOUNDS.clear()
        entry = _BOUNDS[id(space)] = (weakref.ref(space), bounds)
    return entry[1]


def _numeric(value: Any, what: str, shape: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} {value!r} is not array-like: {exc}") from exc
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{what} dtype {arr.dtype} is not numeric")
    if arr.shape != tuple(shape):
        raise ValueError(f"{what} shape {arr.shape} does not match the action space shape {tuple(shape)}")
    return arr


def _dtype_kw(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    # Discrete took a dtype only from Gymnasium 1.1; the GPU servers may run 1.0-1.2.
    import inspect

    dtype = np.dtype(data.get("dtype", "<i8"))
    if "dtype" in inspect.signature(cls).parameters:
        return {"dtype": dtype}
    if dtype != np.int64:
        raise SpaceError(f"this Gymnasium cannot make a Discrete space of dtype {dtype}")
    return {}
