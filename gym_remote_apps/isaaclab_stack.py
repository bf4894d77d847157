"""The seed's task on the real Isaac Lab: ``IsaacContrib-Stack-Cube-Franka`` driven from the client.

The server runs Isaac Lab 3.0's Franka cube-stacking task (Newton physics; served with
``configs/tasks/isaaclab_stack_cube.yaml``, every observation group). What reaches the client per
step, per sub-env:

- ``obs["policy"]``: ``joint_pos`` and ``joint_vel`` (9 each, *relative to* the task's default pose
  :data:`DEFAULT_JOINT_POS`; radians, finger slides in metres), ``object`` (39: each cube's position
  relative to its env's origin, m, and x-y-z-w quaternion, then gripper-to-cube and cube-to-cube
  vectors), ``cube_positions`` (9, *world* frame: env origin added), ``cube_orientations`` (12,
  x-y-z-w), ``eef_pos`` (3, env-relative), ``eef_quat``, ``gripper_pos`` (finger 1, minus finger 2),
  ``actions`` (the last action);
- ``obs["subtask_terms"]``: the task's own booleans ``grasp_1`` (cube_2 in the closed hand),
  ``stack_1`` (cube_2 on cube_1, within 5 cm sideways and at most 5.18 mm above the 4.68 cm
  spacing, gripper fully open) and ``grasp_2``;
- the action is 8 floats: 7 arm targets as offsets from the default pose divided by
  :data:`ARM_ACTION_SCALE` (0.5) and one gripper value (< 0 closes, >= 0 opens).

:class:`IsaacLabStackExpert` is the built-in task's scripted expert
(:class:`~gym_remote.tasks.expert.StackCubeExpert`: its Franka kinematics and IK run here, on the
client) fed from those observations: it picks cube_2 (the red one) and puts it on cube_1 (blue).
:func:`replay_scene` is the built-in MuJoCo scene (``gym_remote/assets/stack_cube.xml``, same Franka)
with Isaac Lab's three 4.06 cm blocks, for replaying the states through
``configs/maps/isaaclab_franka.yaml``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from gym_remote.tasks.expert import StackCubeExpert
from gym_remote.tasks.stack_cube import ARM_JOINTS, OBS_DIM, OBS_SLICES

__all__ = [
    "ARM_ACTION_SCALE",
    "BLOCK_HALF",
    "DEFAULT_JOINT_POS",
    "ISAACLAB_STACK_TASK",
    "IsaacLabStackExpert",
    "cube_poses",
    "joint_positions",
    "replay_scene",
    "replay_scene_xml",
    "stacked",
]

log = logging.getLogger(__name__)

#: The Isaac Lab 3.0 id (2.x: ``Isaac-Stack-Cube-Franka-v0``).
ISAACLAB_STACK_TASK = "IsaacContrib-Stack-Cube-Franka"
#: The task's default joint pose (``panda_joint1..7`` radians, both finger slides m), from
#: ``isaaclab_tasks/contrib/stack/config/franka/stack_joint_pos_env_cfg.py``: ``joint_pos``
#: observations and arm actions are offsets from it.
DEFAULT_JOINT_POS = np.array([0.0444, -0.1894, -0.1107, -2.5148, 0.0044, 2.3775, 0.6952, 0.04, 0.04])
#: Arm action scale: target (rad) = default + scale * action.
ARM_ACTION_SCALE = 0.5
#: Half the edge of Isaac Lab's blocks (m); block centres rest 0.0203 m above the table.
BLOCK_HALF = 0.0203
#: The cubes, in the task's order; the expert puts cube_2 on cube_1.
CUBES = ("cube_1", "cube_2", "cube_3")
_OBJECT_STRIDE = 7  # the `object` term: per cube position (3) then x-y-z-w quaternion (4)


def _policy(obs: Mapping[str, Any]) -> Mapping[str, Any]:
    return obs.get("policy", obs)


def joint_positions(obs: Mapping[str, Any]) -> np.ndarray:
    """The 9 Franka joint positions (rad; fingers m) of one sub-env's observation (whole or ``policy``)."""
    return np.asarray(_policy(obs)["joint_pos"], dtype=np.float64) + DEFAULT_JOINT_POS


def cube_poses(obs: Mapping[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each cube's (position relative to its env's origin (3,) m, w-first quaternion (4,)), from ``object``."""
    obj = np.asarray(_policy(obs)["object"], dtype=np.float64)
    out = {}
    for i, name in enumerate(CUBES):
        start = i * _OBJECT_STRIDE
        x, y, z, w = obj[start + 3 : start + 7]
        out[name] = (obj[start : start + 3].copy(), np.array([w, x, y, z]))
    return out


def stacked(obs: Mapping[str, Any]) -> bool:
    """The task's own ``stack_1`` term (cube_2 on cube_1, gripper open) for one sub-env's observation.

    Raises:
        KeyError: the observation has no ``subtask_terms`` group (serve with ``obs_group: null``, as
            ``configs/tasks/isaaclab_stack_cube.yaml`` does).
    """
    return bool(np.asarray(obs["subtask_terms"]["stack_1"]))


class IsaacLabStackExpert:
    """The built-in scripted expert acting on ``IsaacContrib-Stack-Cube-Franka``'s observations.

    Usage: ``expert.reset()`` at each episode start, then ``action = expert.act(obs)`` with ``obs``
    one sub-env's observation (the whole Dict or its ``policy`` group); ``action`` is (8,) float32
    in the task's action space. The TCP is computed by forward kinematics of the observed joints on
    the expert's own copy of the MJCF Franka. On the stand-in robot (built from that MJCF) the task's
    ``eef_pos`` is the same point within 1e-6 m after a step, but at a reset it still shows the pose
    before the reset (zeros in a new env): Isaac Lab's frame transformer updates on the next step.
    Keywords go to :class:`~gym_remote.tasks.expert.StackCubeExpert`.
    """

    def __init__(self, integral_gain: float = 0.3, integral_limit: float = 0.15, **expert_kwargs: Any) -> None:
        self.expert = StackCubeExpert(base_half_height=BLOCK_HALF, **expert_kwargs)
        ranges = np.array([self.expert.model.joint(j).range for j in ARM_JOINTS])
        self._low, self._high = ranges[:, 0], ranges[:, 1]
        self.integral_gain, self.integral_limit = integral_gain, integral_limit
        self._integral = np.zeros(len(ARM_JOINTS))

    def reset(self) -> None:
        """Forget the previous episode."""
        self.expert.reset()
        self._integral[:] = 0.0

    def expert_obs(self, obs: Mapping[str, Any]) -> np.ndarray:
        """One sub-env's observation as the built-in task's (35,) vector (``OBS_SLICES``): cube_2 is
        the ``cube`` to pick, cube_1 the ``base`` to put it on."""
        policy = _policy(obs)
        out = np.zeros(OBS_DIM)
        q = joint_positions(policy)
        out[OBS_SLICES["qpos"]] = q
        out[OBS_SLICES["qvel"]] = np.asarray(policy["joint_vel"], dtype=np.float64)
        cubes = cube_poses(policy)
        out[OBS_SLICES["cube_pos"]], out[OBS_SLICES["cube_quat"]] = cubes["cube_2"]
        out[OBS_SLICES["base_pos"]], out[OBS_SLICES["base_quat"]] = cubes["cube_1"]
        out[OBS_SLICES["tcp_pos"]] = self.expert.tcp_position(q[:7])
        return out

    def act(self, obs: Mapping[str, Any]) -> np.ndarray:
        """The task's (8,) float32 action for one sub-env's observation.

        The built-in expert's joint targets assume servos that reach them (its MJCF links are gravity
        compensated); Isaac Lab's Franka carries its own weight on finite-stiffness drives and sags by
        about 1 cm at the hand. An integral term on the joint error (``integral_gain`` per step,
        bounded by ``integral_limit`` rad) removes that steady-state error without knowing the gains.
        """
        expert_obs = self.expert_obs(obs)
        a = self.expert.act(expert_obs).astype(np.float64)
        target = self._low + (np.clip(a[:7], -1.0, 1.0) + 1.0) * 0.5 * (self._high - self._low)
        error = target - expert_obs[OBS_SLICES["qpos"]][:7]
        self._integral = np.clip(self._integral + self.integral_gain * error, -self.integral_limit, self.integral_limit)
        arm = (target + self._integral - DEFAULT_JOINT_POS[:7]) / ARM_ACTION_SCALE
        return np.r_[arm, 1.0 if a[7] >= 0 else -1.0].astype(np.float32)


def replay_scene() -> Any:
    """The built-in MuJoCo stack-cube scene with Isaac Lab's blocks, as a compiled ``mujoco.MjModel``.

    Same Franka, table, lights and cameras as ``gym_remote/assets/stack_cube.xml``; its red ``cube``
    and blue ``base`` become 4.06 cm blocks (Isaac Lab's cube_2 and cube_1) and a green ``cube_3`` is
    added, each with a free joint, so ``configs/maps/isaaclab_franka.yaml`` maps every entity of the
    stack scene. ``replay_scene_xml()`` gives the same scene as MJCF text (for ``gym-remote replay --model``).
    """
    return _scene_spec().compile()


def replay_scene_xml() -> str:
    """:func:`replay_scene` as MJCF text."""
    return _scene_spec().to_xml()


def _scene_spec() -> Any:
    import mujoco

    from gym_remote.assets import STACK_CUBE_XML

    spec = mujoco.MjSpec.from_file(str(STACK_CUBE_XML))
    half = [BLOCK_HALF] * 3
    for name, pos in (("cube", (0.55, 0.05)), ("base", (0.4, 0.0))):  # the task's default cube_2, cube_1 spots
        spec.geom(name).size = half
        spec.body(name).pos = [*pos, BLOCK_HALF]
    spec.add_material(name="green", rgba=[0.1, 0.7, 0.2, 1.0])
    body = spec.worldbody.add_body(name="cube_3", pos=[0.6, -0.1, BLOCK_HALF])
    body.add_freejoint(name="cube_3")
    body.add_geom(name="cube_3", type=mujoco.mjtGeom.mjGEOM_BOX, size=half, material="green", mass=0.05)
    return spec
