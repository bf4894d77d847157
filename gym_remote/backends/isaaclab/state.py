"""Isaac Lab's scene state as gym-remote's flat state (:mod:`gym_remote.state`).

``scene.get_state(is_relative=True)`` is a dict of dicts of ``[N, k]`` tensors: per articulation
``root_pose`` (position in metres relative to its env origin, then a quaternion), ``root_velocity``
(linear m/s, angular rad/s, world frame), ``joint_position`` and ``joint_velocity`` in
``articulation.joint_names`` order (radians or metres); per rigid object ``root_pose`` and
``root_velocity``. Isaac Lab 2.x stores quaternions w-first; 3.0 moved to x-y-z-w (3.0 release
notes). The flat state is always w-first, so a permutation is applied on the way out and undone on
the way in.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gym_remote.backends.host_arrays import to_host
from gym_remote.errors import StateError
from gym_remote.state import Entity, QuatOrder, StateSchema

log = logging.getLogger(__name__)

_ARTICULATION_KEYS = ("root_pose", "root_velocity", "joint_position", "joint_velocity")
_RIGID_KEYS = ("root_pose", "root_velocity")


def quat_order_for_version(version: str | None) -> QuatOrder:
    """Isaac Lab 2.x stores quaternions w-first; 3.0 moved to x-y-z-w."""
    match = re.match(r"\s*v?(\d+)", version or "")
    if match is None:
        raise RuntimeError(
            f"cannot tell the Isaac Lab version ({version!r}), which fixes its quaternion order; pass "
            "quat_order='wxyz' (Isaac Lab 2.x) or 'xyzw' (3.x) in the server's --kwargs"
        )
    return "xyzw" if int(match.group(1)) >= 3 else "wxyz"


@dataclass(frozen=True)
class _Piece:
    """Where one entity of ``scene.get_state()`` goes in the flat state."""

    kind: str  # "articulation" | "rigid_object"
    name: str
    keys: tuple[str, ...]


def isaaclab_schema(
    state: Mapping[str, Any], joint_names: Mapping[str, Sequence[str]]
) -> tuple[StateSchema, list[_Piece]]:
    """Schema of an Isaac Lab scene state: articulations (with joints), then rigid objects.

    Deformable objects and surface grippers have no place in the schema; they are reported once
    and left untouched by ``set_state``.
    """
    entities: list[Entity] = []
    pieces: list[_Piece] = []
    for name, entry in (state.get("articulation") or {}).items():
        joints = tuple(str(j) for j in joint_names[name])
        width = int(np.shape(entry["joint_position"])[-1])
        if width != len(joints):
            raise StateError(f"articulation {name!r} has {width} joint positions but {len(joints)} joint names")
        entities.append(Entity(str(name), "articulation", joints))
        pieces.append(_Piece("articulation", str(name), _ARTICULATION_KEYS))
    for name in state.get("rigid_object") or {}:
        entities.append(Entity(str(name), "rigid"))
        pieces.append(_Piece("rigid_object", str(name), _RIGID_KEYS))
    others = [
        f"{kind}/{name}"
        for kind, group in state.items()
        if kind not in ("articulation", "rigid_object")
        for name in (group or {})
    ]
    if others:
        log.warning(
            "scene entities without a place in the state schema (set_state leaves them as they are): %s",
            others,
        )
    return StateSchema(tuple(entities)), pieces


def quat_permutation(schema: StateSchema, order: QuatOrder) -> np.ndarray | None:
    """Column permutation taking a flat state with ``order`` quaternions to w-first (None: identity)."""
    if order == "wxyz":
        return None
    perm = np.arange(schema.size)
    for start in schema.offsets().values():
        q = start + 3
        perm[q : q + 4] = [q + 3, q, q + 1, q + 2]  # (x, y, z, w) -> (w, x, y, z)
    return perm


def isaaclab_state_to_flat(
    state: Mapping[str, Any], schema: StateSchema, pieces: Sequence[_Piece], quat_order: QuatOrder
) -> np.ndarray:
    """A ``scene.get_state()`` dict (numpy or torch values) as the flat ``[N, size]`` float64 state.

    Pure host-side version of what the session does on the device; used for recorded states.
    """
    parts = [np.asarray(to_host(state[p.kind][p.name][k]), dtype=np.float64) for p in pieces for k in p.keys]
    flat = np.concatenate(parts, axis=-1)
    perm = quat_permutation(schema, quat_order)
    return flat if perm is None else flat[..., perm]


def joint_names(articulation: Any) -> list[str]:
    """An articulation's joint names, in the order of its joint tensors."""
    names = getattr(articulation, "joint_names", None)
    if names is None:
        names = articulation.data.joint_names
    return list(names)
