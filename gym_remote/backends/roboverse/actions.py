"""How a batch of joint targets reaches a MetaSim handler on the joints it names.

The RoboVerse backend's action is one row per sub-env of joint position targets (radians, metres
for slide joints): every robot's joints sorted by name, robots in scenario order. MetaSim handlers
take such targets two ways:

- a tensor ``[N, A]`` in that sorted order, which each handler reorders into its simulator's order.
  The IsaacSim handler does this right; the MuJoCo handler (commit dd8ff06) applies the inverse of
  the permutation it needs, so the targets land on the wrong joints, silently;
- per-joint targets, ``[{robot: {"dof_pos_target": {joint: value}}}]`` one dict per sub-env, which
  every handler applies by name.

:func:`probe_tensor_order` checks the tensor path once per session against the names: it sets
distinct targets as a tensor and reads them back by name from the handler's own state
(``joint_pos_target``). :func:`choose_action_path` then keeps the fast tensor path where it is right
and sends per-joint targets where it is not.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["PER_JOINT", "TENSOR", "choose_action_path", "per_joint_targets", "probe_tensor_order"]

log = logging.getLogger(__name__)

TENSOR = "tensor"
PER_JOINT = "per_joint"


def _probe_values(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """One distinct target per column, inside each joint's limits where they are finite."""
    a = len(low)
    frac = 0.15 + 0.7 * (np.arange(a) + 1.0) / (a + 1.0)
    finite = np.isfinite(low) & np.isfinite(high)
    return np.where(finite, np.nan_to_num(low) + frac * np.nan_to_num(high - low), 0.01 * (np.arange(a) + 1.0))


def probe_tensor_order(
    handler: Any,
    robots: Sequence[tuple[str, Sequence[str]]],
    low: np.ndarray,
    high: np.ndarray,
    torch: Any,
    device: Any,
) -> bool | None:
    """Whether ``handler.set_dof_targets(tensor)`` puts each column on the joint it names.

    Sets distinct in-limit targets (not simulated: no step is taken) and compares the handler's
    ``joint_pos_target`` read back per robot (its columns sorted by joint name).

    Args:
        handler: a launched MetaSim handler.
        robots: ``(robot name, its joint names sorted)`` in action-column order.
        low, high: the action bounds, ``(A,)``.
        torch: the torch module; device: the env's device.

    Returns:
        True or False; None when the handler does not report its joint targets.
    """
    values = _probe_values(np.asarray(low, np.float64), np.asarray(high, np.float64))
    n = int(getattr(handler, "num_envs", 1))
    batch = torch.tensor(np.tile(values, (n, 1)), dtype=torch.float32, device=device)
    handler.set_dof_targets(batch)
    if hasattr(handler, "_state_cache_expire"):
        handler._state_cache_expire = True  # setting targets does not expire MetaSim's state cache
    states = handler.get_states(mode="tensor")
    if hasattr(handler, "_state_cache_expire"):
        handler._state_cache_expire = True
    got = []
    for name, _joints in robots:
        target = getattr(states.robots[name], "joint_pos_target", None)
        if target is None:
            return None
        got.append(np.asarray(target.detach().cpu().numpy(), np.float64))
    read = np.concatenate(got, axis=-1)
    ok = read.shape == (n, len(values)) and bool(np.allclose(read, values[None], atol=1e-5))
    if not ok:
        names = [f"{r}/{j}" for r, joints in robots for j in joints]
        moved = [f"{names[i]}->{names[int(np.argmin(np.abs(values - read[0, i])))]}" for i in range(len(names))]
        log.warning("%s applies tensor actions to the wrong joints (%s)", type(handler).__name__, ", ".join(moved))
    return ok


def choose_action_path(tensor_ok: bool | None, takes_dicts: bool, handler_name: str) -> str:
    """:data:`TENSOR` or :data:`PER_JOINT`, given the probe's answer and whether the task forwards
    actions to the handler as they are (``BaseTaskEnv``) rather than as tensors only (``RLTaskEnv``).

    Raises:
        RuntimeError: the handler misplaces tensor actions and the task takes nothing else.
    """
    if tensor_ok:
        return TENSOR
    if takes_dicts:
        return PER_JOINT
    if tensor_ok is None:
        log.warning("%s does not report joint targets: tensor actions are sent unchecked", handler_name)
        return TENSOR
    raise RuntimeError(
        f"{handler_name} applies tensor actions to the wrong joints and this task accepts tensors only; "
        "serve a task derived from BaseTaskEnv (per-joint targets) or another simulator"
    )


def per_joint_targets(batch: np.ndarray, robots: Sequence[tuple[str, Sequence[str]]]) -> list[dict[str, Any]]:
    """``[N, A]`` targets as MetaSim's per-sub-env dicts ``{robot: {"dof_pos_target": {joint: float}}}``."""
    batch = np.asarray(batch, dtype=np.float64)
    rows = batch.tolist()
    out: list[dict[str, Any]] = []
    for row in rows:
        col = 0
        entry: dict[str, Any] = {}
        for name, joints in robots:
            entry[name] = {"dof_pos_target": dict(zip(joints, row[col : col + len(joints)], strict=True))}
            col += len(joints)
        out.append(entry)
    return out
