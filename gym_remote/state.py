"""Simulator-agnostic scene state: a name-keyed schema that travels once, and flat arrays per step.

A scene is a set of *entities*: articulations (robots, with joints) and rigid bodies. Each entity has
a root pose (position xyz + quaternion **w-first**) and root velocity (linear xyz + angular xyz);
articulations also have joint positions and velocities. The :class:`StateSchema` names all of it and
travels once, in the HELLO reply. Each step then carries one float64 array of shape
``(schema.size,)`` (or ``(num_envs, schema.size)`` when batched) laid out entity by entity as
``root_pose[7], root_vel[6], joint_pos[J], joint_vel[J]``: one frame instead of a dict of dicts.

The conversions here are pure functions; :class:`MujocoBinding` maps a schema onto a MuJoCo model's
``qpos``/``qvel`` (through a :class:`NameMap` when the names differ), which serves both state
extraction on a MuJoCo server and kinematic replay on the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from gym_remote.errors import StateError

if TYPE_CHECKING:
    import mujoco

ROOT_POSE = 7
ROOT_VEL = 6
QuatOrder = Literal["wxyz", "xyzw"]


@dataclass(frozen=True)
class Entity:
    """One articulation or rigid body of the scene."""

    name: str
    kind: Literal["articulation", "rigid"]
    joints: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return ROOT_POSE + ROOT_VEL + 2 * len(self.joints)


@dataclass(frozen=True)
class StateSchema:
    """Names and layout of a flat state vector. Quaternions in the flat vector are always w-first."""

    entities: tuple[Entity, ...]

    def __post_init__(self) -> None:
        names = [e.name for e in self.entities]
        if len(set(names)) != len(names):
            raise StateError(f"entity names must be unique, got {names}")

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entities)

    def offsets(self) -> dict[str, int]:
        """Start index of each entity in the flat vector."""
        out, start = {}, 0
        for e in self.entities:
            out[e.name] = start
            start += e.size
        return out

    def entity(self, name: str) -> Entity:
        for e in self.entities:
            if e.name == name:
                return e
        raise StateError(f"no entity {name!r} in schema; entities: {[e.name for e in self.entities]}")

    def to_dict(self) -> dict[str, Any]:
        return {"entities": [{"name": e.name, "kind": e.kind, "joints": list(e.joints)} for e in self.entities]}

    @classmethod
    def from_dict(cls, data: Any) -> StateSchema:
        try:
            return cls(
                tuple(
                    Entity(str(e["name"]), e["kind"], tuple(str(j) for j in e.get("joints", ())))
                    for e in data["entities"]
                )
            )
        except (KeyError, TypeError) as exc:
            raise StateError(f"malformed state schema: {exc}") from exc


# ------------------------------------------------------------------------- pure conversions


def convert_quat(q: np.ndarray, src: QuatOrder, dst: QuatOrder) -> np.ndarray:
    """Reorder quaternions along the last axis (``wxyz`` <-> ``xyzw``)."""
    if src == dst:
        return q
    if {src, dst} != {"wxyz", "xyzw"}:
        raise StateError(f"unknown quaternion order {src!r} or {dst!r}; use 'wxyz' or 'xyzw'")
    return np.roll(q, 1 if src == "xyzw" else -1, axis=-1)


def check_state(schema: StateSchema, state: Any, batched: bool | None = None) -> np.ndarray:
    """Validate a flat state's shape against ``schema`` and return it as a float64 array."""
    arr = np.asarray(state, dtype=np.float64)
    if arr.ndim not in (1, 2) or arr.shape[-1] != schema.size or (batched is not None and (arr.ndim == 2) != batched):
        want = f"(num_envs, {schema.size})" if batched else f"({schema.size},)"
        raise StateError(f"state of shape {arr.shape} does not fit the schema: expected {want}")
    return arr


def state_to_dict(schema: StateSchema, state: np.ndarray) -> dict[str, dict[str, Any]]:
    """Split a flat (or batched) state into ``{entity: {root_pose, root_vel, joint_pos, joint_vel}}``.

    ``joint_pos``/``joint_vel`` are ``{joint name: value}`` maps; values keep the batch dimension.
    """
    arr = check_state(schema, state)
    out: dict[str, dict[str, Any]] = {}
    start = 0
    for e in schema.entities:
        j = len(e.joints)
        seg = arr[..., start : start + e.size]
        d: dict[str, Any] = {
            "root_pose": seg[..., :ROOT_POSE],
            "root_vel": seg[..., ROOT_POSE : ROOT_POSE + ROOT_VEL],
        }
        if e.kind == "articulation":
            pos = seg[..., ROOT_POSE + ROOT_VEL : ROOT_POSE + ROOT_VEL + j]
            vel = seg[..., ROOT_POSE + ROOT_VEL + j :]
            d["joint_pos"] = {name: pos[..., i] for i, name in enumerate(e.joints)}
            d["joint_vel"] = {name: vel[..., i] for i, name in enumerate(e.joints)}
        out[e.name] = d
        start += e.size
    return out


def state_from_dict(
    schema: StateSchema, nested: Mapping[str, Mapping[str, Any]], quat_order: QuatOrder = "wxyz"
) -> np.ndarray:
    """Inverse of :func:`state_to_dict`; missing velocities are zero, missing names are an error."""
    missing = [e.name for e in schema.entities if e.name not in nested]
    if missing:
        raise StateError(f"state lacks entities {missing}")
    batch: tuple[int, ...] = (
        np.shape(np.asarray(nested[schema.entities[0].name]["root_pose"]))[:-1] if schema.entities else ()
    )
    out = np.zeros((*batch, schema.size))
    start = 0
    for e in schema.entities:
        src = nested[e.name]
        seg = out[..., start : start + e.size]
        seg[..., :ROOT_POSE] = _pose(src["root_pose"], quat_order)
        if "root_vel" in src:
            seg[..., ROOT_POSE : ROOT_POSE + ROOT_VEL] = src["root_vel"]
        for offset, key in (
            (ROOT_POSE + ROOT_VEL, "joint_pos"),
            (ROOT_POSE + ROOT_VEL + len(e.joints), "joint_vel"),
        ):
            values = src.get(key, {})
            lacking = [j for j in e.joints if j not in values]
            if key == "joint_pos" and lacking:
                raise StateError(f"entity {e.name!r} lacks joint positions for {lacking}")
            for i, jname in enumerate(e.joints):
                if jname in values:
                    seg[..., offset + i] = values[jname]
        start += e.size
    return out


def _pose(pose: Any, quat_order: QuatOrder) -> np.ndarray:
    pose = np.asarray(pose, dtype=np.float64)
    return np.concatenate([pose[..., :3], convert_quat(pose[..., 3:7], quat_order, "wxyz")], axis=-1)


# ------------------------------------------------------------------------------- name maps


@dataclass
class NameMap:
    """How a remote scene's names map onto a local model, and the remote quaternion order.

    ``entities`` and ``joints`` map remote names to local ones (absent means the same name);
    ``ignore`` lists remote entities (``"name"``) or joints (``"entity/joint"``) that are dropped on
    purpose. Anything else that matches nothing locally is an error, never silently skipped.
    """

    entities: dict[str, str] = field(default_factory=dict)
    joints: dict[str, str] = field(default_factory=dict)
    quat_order: QuatOrder = "wxyz"
    ignore: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NameMap:
        unknown = set(data) - {"entities", "joints", "quat_order", "ignore", "description"}
        if unknown:
            raise StateError(f"unknown name-map keys {sorted(unknown)}")
        order = data.get("quat_order", "wxyz")
        if order not in ("wxyz", "xyzw"):
            raise StateError(f"quat_order must be 'wxyz' or 'xyzw', got {order!r}")
        return cls(
            entities=dict(data.get("entities") or {}),
            joints=dict(data.get("joints") or {}),
            quat_order=order,
            ignore=tuple(data.get("ignore") or ()),
        )

    @classmethod
    def load(cls, source: NameMap | Mapping[str, Any] | str | Path | None) -> NameMap:
        """A NameMap from itself, a dict, or a YAML file path; None means identity."""
        if source is None:
            return cls()
        if isinstance(source, NameMap):
            return source
        if isinstance(source, Mapping):
            return cls.from_dict(source)
        import yaml

        with open(source, encoding="utf-8") as f:
            return cls.from_dict(yaml.safe_load(f) or {})


# ---------------------------------------------------------------------------------- MuJoCo

_FREE, _BALL, _SLIDE, _HINGE = 0, 1, 2, 3


def mujoco_schema(model: mujoco.MjModel) -> StateSchema:
    """Derive a schema from a MuJoCo model.

    Each child body of the world with joints in its subtree is an entity named after that body: a
    free joint at its root makes it a floating root, hinge and slide joints make it an articulation.
    A fixed robot base is an articulation whose root pose is the body's world pose.
    """
    import mujoco

    entities = []
    for body in range(1, model.nbody):
        if model.body_parentid[body] != 0:
            continue
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, body) or f"body{body}"
        joints = []
        for j in range(model.njnt):
            if model.body_rootid[model.jnt_bodyid[j]] != body:
                continue
            jtype = int(model.jnt_type[j])
            if jtype == _FREE:
                if model.jnt_bodyid[j] != body:
                    raise StateError(f"free joint {j} inside the subtree of {name!r} is not supported")
                continue
            if jtype == _BALL:
                raise StateError(f"ball joint {j} in {name!r} is not supported by the state schema")
            joints.append(mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) or f"{name}/joint{j}")
        has_free = any(model.jnt_bodyid[j] == body and model.jnt_type[j] == _FREE for j in range(model.njnt))
        if joints:
            entities.append(Entity(name, "articulation", tuple(joints)))
        elif has_free:
            entities.append(Entity(name, "rigid"))
    return StateSchema(tuple(entities))


class MujocoBinding:
    """Index arrays that move a flat state of ``schema`` into and out of a MuJoCo model.

    Built once (names resolved, unmatched names reported together); reading or writing a state
    is then a few fancy-indexing assignments, cheap enough for every step.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        schema: StateSchema,
        name_map: NameMap | Mapping[str, Any] | str | Path | None = None,
    ) -> None:
        import mujoco

        self.model, self.schema = model, schema
        self.name_map = nm = NameMap.load(name_map)
        ignored = set(nm.ignore)
        qpos_src: list[int] = []
        qpos_dst: list[int] = []
        qvel_src: list[int] = []
        qvel_dst: list[int] = []
        self._fixed_roots: list[tuple[int, int]] = []  # (flat offset, body id) of bases without free joint
        self._quat_slices: list[int] = []
        unmatched: list[str] = []
        start = 0
        for e in schema.entities:
            if e.name in ignored:
                start += e.size
                continue
            local = nm.entities.get(e.name, e.name)
            body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, local)
            if body < 0:
                unmatched.append(f"entity {e.name!r} (local body {local!r})")
                start += e.size
                continue
            free = [j for j in range(model.njnt) if model.jnt_bodyid[j] == body and model.jnt_type[j] == _FREE]
            if free:
                qa, va = int(model.jnt_qposadr[free[0]]), int(model.jnt_dofadr[free[0]])
                qpos_src += range(start, start + ROOT_POSE)
                qpos_dst += range(qa, qa + ROOT_POSE)
                qvel_src += range(start + ROOT_POSE, start + ROOT_POSE + ROOT_VEL)
                qvel_dst += range(va, va + ROOT_VEL)
                self._quat_slices.append(start + 3)
            else:
                self._fixed_roots.append((start, body))
            base = start + ROOT_POSE + ROOT_VEL
            for i, jname in enumerate(e.joints):
                if f"{e.name}/{jname}" in ignored:
                    continue
                ljname = nm.joints.get(f"{e.name}/{jname}", nm.joints.get(jname, jname))
                j = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, ljname)
                if j < 0 or int(model.jnt_type[j]) not in (_SLIDE, _HINGE):
                    unmatched.append(f"joint {e.name}/{jname!s} (local joint {ljname!r})")
                    continue
                qpos_src.append(base + i)
                qpos_dst.append(int(model.jnt_qposadr[j]))
                qvel_src.append(base + len(e.joints) + i)
                qvel_dst.append(int(model.jnt_dofadr[j]))
            start += e.size
        if unmatched:
            raise StateError(
                "these remote names match nothing in the local model (map them in the name map, or list "
                "them under 'ignore'): " + "; ".join(unmatched)
            )
        self._qpos = (np.array(qpos_src, dtype=np.intp), np.array(qpos_dst, dtype=np.intp))
        self._qvel = (np.array(qvel_src, dtype=np.intp), np.array(qvel_dst, dtype=np.intp))

    def read(self, data: mujoco.MjData) -> np.ndarray:
        """The flat state of ``data`` (float64, w-first quaternions). Needs kinematics computed."""
        out = np.zeros(self.schema.size)
        src, dst = self._qpos
        out[src] = data.qpos[dst]
        src, dst = self._qvel
        out[src] = data.qvel[dst]
        for offset, body in self._fixed_roots:
            out[offset : offset + 3] = data.xpos[body]
            out[offset + 3 : offset + 7] = data.xquat[body]
        return out

    def write(self, data: mujoco.MjData, state: np.ndarray, velocities: bool = True) -> None:
        """Write a flat state into ``data`` (converting quaternions from the name map's order).

        Runs no dynamics: callers follow with ``mj_forward`` (or ``mj_kinematics`` for replay).
        """
        state = check_state(self.schema, state, batched=False)
        if self.name_map.quat_order != "wxyz" and self._quat_slices:
            state = state.copy()
            for s in self._quat_slices:
                state[s : s + 4] = convert_quat(state[s : s + 4], self.name_map.quat_order, "wxyz")
        src, dst = self._qpos
        data.qpos[dst] = state[src]
        if velocities:
            src, dst = self._qvel
            data.qvel[dst] = state[src]


def mujoco_get_state(model: mujoco.MjModel, data: mujoco.MjData) -> tuple[StateSchema, np.ndarray]:
    """Schema and flat state of any MuJoCo scene (convenience; servers cache the binding)."""
    schema = mujoco_schema(model)
    return schema, MujocoBinding(model, schema).read(data)
