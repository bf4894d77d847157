"""MetaSim's ``TensorState`` as gym-remote's flat state, and what a ``set_states`` really restored.

A ``TensorState`` holds ``robots`` and ``objects`` (name -> ``root_state`` [N, 13] = position (m),
quaternion w-first, linear velocity (m/s), angular velocity (rad/s); ``joint_pos``/``joint_vel``
[N, J] with columns sorted by joint name). The flat state (``gym_remote.state``) lists robots, then
objects, each as root pose (7), root velocity (6), then joint positions and velocities: MetaSim's
``root_state`` is exactly our root pose followed by our root velocity, so rows copy across as they are.

MetaSim's handlers do not restore everything they are given: the MuJoCo handler zeroes every velocity
it sets (joints and free bodies). :func:`unrestored_fields` compares the state that was asked for with
the state read back afterwards, so a ``set_state`` reply can say what did not take instead of
pretending it did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from gym_remote.backends.host_arrays import to_host
from gym_remote.errors import StateError
from gym_remote.state import ROOT_POSE, ROOT_VEL, Entity, StateSchema

__all__ = ["ROOT_STATE", "is_tensor_state", "tensor_state_schema", "tensor_state_to_flat", "unrestored_fields"]

#: Width of MetaSim's ``root_state``: our root pose plus our root velocity.
ROOT_STATE = ROOT_POSE + ROOT_VEL
#: Default tolerance of :func:`unrestored_fields`: MetaSim keeps states in float32.
RESTORE_TOL = 1e-4


def is_tensor_state(obs: Any) -> bool:
    """Whether a task's observation is the ``TensorState`` itself (``robots`` and ``objects``, not a dict)."""
    return hasattr(obs, "robots") and hasattr(obs, "objects") and not isinstance(obs, Mapping)


def tensor_state_schema(
    states: Any, joint_names: Callable[[str], Sequence[str]]
) -> tuple[StateSchema, list[tuple[str, str]]]:
    """Schema of a MetaSim ``TensorState``: robots, then objects (articulated ones with joints).

    Args:
        states: a ``TensorState`` (or anything with ``robots``/``objects`` maps of the same entries).
        joint_names: the handler's ``get_joint_names(name, sort=True)``.

    Returns:
        The schema and the ``(group, name)`` of each entity, in order.

    Raises:
        StateError: an entity's joint columns and joint names disagree in number.
    """
    entities: list[Entity] = []
    layout: list[tuple[str, str]] = []
    for group in ("robots", "objects"):
        for name, entry in getattr(states, group).items():
            jpos = getattr(entry, "joint_pos", None)
            width = 0 if jpos is None else int(np.shape(jpos)[-1])
            if group == "robots" or width:
                joints = tuple(str(j) for j in joint_names(name))
                if len(joints) != width:
                    raise StateError(f"{group[:-1]} {name!r} has {width} joint columns but {len(joints)} joint names")
                entities.append(Entity(str(name), "articulation", joints))
            else:
                entities.append(Entity(str(name), "rigid"))
            layout.append((group, str(name)))
    return StateSchema(tuple(entities)), layout


def tensor_state_to_flat(states: Any, schema: StateSchema, layout: Sequence[tuple[str, str]]) -> np.ndarray:
    """A ``TensorState`` (or the same structure with numpy arrays) as the flat float64 ``[N, size]`` state."""
    parts: list[np.ndarray] = []
    for entity, (group, name) in zip(schema.entities, layout, strict=True):
        entry = getattr(states, group)[name]
        parts.append(np.asarray(to_host(entry.root_state), dtype=np.float64))
        if entity.joints:
            n = parts[-1].shape[0]
            for field_name in ("joint_pos", "joint_vel"):
                value = getattr(entry, field_name, None)
                parts.append(
                    np.zeros((n, len(entity.joints))) if value is None else np.asarray(to_host(value), np.float64)
                )
    return np.concatenate(parts, axis=-1)


def _quat_gap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Largest component gap between quaternion rows, ``q`` and ``-q`` being the same rotation."""
    return np.minimum(np.abs(a - b).max(axis=-1), np.abs(a + b).max(axis=-1))


def unrestored_fields(schema: StateSchema, wanted: np.ndarray, got: np.ndarray, tol: float = RESTORE_TOL) -> list[str]:
    """The ``"entity/field"`` parts of ``wanted`` that ``got`` does not match within ``tol``.

    Fields are ``root_pose``, ``root_vel``, ``joint_pos`` and ``joint_vel`` (the layout of
    :mod:`gym_remote.state`); a field counts as unrestored when any sub-env differs.

    Args:
        schema: the layout of both states.
        wanted: the state that was set, ``[N, size]`` float.
        got: the state read back afterwards, same shape.
        tol: largest accepted absolute gap (metres, radians, their rates; quaternion components).
    """
    wanted, got = np.atleast_2d(wanted), np.atleast_2d(got)
    out: list[str] = []
    start = 0
    for entity in schema.entities:
        w, g = wanted[:, start : start + entity.size], got[:, start : start + entity.size]
        j = len(entity.joints)
        pose_gap = np.maximum(np.abs(w[:, :3] - g[:, :3]).max(axis=-1), _quat_gap(w[:, 3:7], g[:, 3:7]))
        gaps = {
            "root_pose": pose_gap,
            "root_vel": np.abs(w[:, ROOT_POSE:ROOT_STATE] - g[:, ROOT_POSE:ROOT_STATE]).max(axis=-1),
        }
        if j:
            gaps["joint_pos"] = np.abs(w[:, ROOT_STATE : ROOT_STATE + j] - g[:, ROOT_STATE : ROOT_STATE + j]).max(-1)
            gaps["joint_vel"] = np.abs(w[:, ROOT_STATE + j :] - g[:, ROOT_STATE + j :]).max(-1)
        out += [f"{entity.name}/{field}" for field, gap in gaps.items() if (gap > tol).any()]
        start += entity.size
    return out
