"""STAND-IN for ``metasim.sim.base.BaseSimHandler`` and the IsaacSim handler behind it (GPU only).

Kept: ``get_states(env_ids, mode)`` with the real tensor cache and its flag ``_state_cache_expire``
(a partial ``env_ids`` fetch is cached as is; ``set_states`` and ``simulate`` expire it,
``set_dof_targets`` does not), ``set_states(TensorState | list[dict], env_ids)`` writing poses and
joint positions but not velocities (as MetaSim backends do), ``set_dof_targets`` taking a tensor in
sorted joint order or per-sub-env ``{robot: {"dof_pos_target": {joint: value}}}`` dicts (as the
IsaacSim handler does), ``joint_pos_target`` in the robot state, ``simulate``,
``get_joint_names(name, sort)``. Like every real handler it has no ``set_seed``. Toy physics: joints
move halfway to their targets each step; objects stay where they are.
"""

from __future__ import annotations

from typing import Any

import torch

from metasim.types import ObjectState, RobotState, TensorState


class BaseSimHandler:
    def __init__(self, scenario: Any, optional_queries: dict | None = None) -> None:
        if scenario.simulator not in ("isaacsim", "isaaclab"):
            raise ValueError(f"stand-in: only the isaacsim handler is faked, not {scenario.simulator!r}")
        self.scenario = scenario
        self.robots = scenario.robots
        self.objects = scenario.objects
        self.num_envs = scenario.num_envs
        self.device = "cpu"
        self.dt = 0.01 * scenario.decimation
        self._states: TensorState | None = None
        self._state_cache_expire = True
        self.set_states_calls: list[Any] = []
        n = self.num_envs
        self._root = {o.name: self._identity(n) for o in [*self.robots, *self.objects]}
        self._jpos = {r.name: torch.zeros(n, len(r.joint_limits)) for r in self.robots}
        self._jvel = {r.name: torch.zeros(n, len(r.joint_limits)) for r in self.robots}
        self._targets = {r.name: torch.zeros(n, len(r.joint_limits)) for r in self.robots}

    @staticmethod
    def _identity(n: int) -> torch.Tensor:
        root = torch.zeros(n, 13)
        root[:, 3] = 1.0
        return root

    def launch(self) -> None:
        pass

    def get_joint_names(self, obj_name: str, sort: bool = True) -> list[str]:
        robot = next((r for r in self.robots if r.name == obj_name), None)
        names = list(robot.joint_limits) if robot is not None else []
        return sorted(names) if sort else names

    def _get_states(self, env_ids: list[int] | None = None) -> TensorState:
        ids = slice(None) if env_ids is None else torch.as_tensor(env_ids, dtype=torch.long)
        robots = {
            r.name: RobotState(
                root_state=self._root[r.name][ids].clone(),
                joint_pos=self._jpos[r.name][ids].clone(),
                joint_vel=self._jvel[r.name][ids].clone(),
                joint_pos_target=self._targets[r.name][ids].clone(),
            )
            for r in self.robots
        }
        objects = {o.name: ObjectState(root_state=self._root[o.name][ids].clone()) for o in self.objects}
        return TensorState(objects=objects, robots=robots)

    def get_states(self, env_ids: list[int] | None = None, mode: str = "dict") -> Any:
        if mode != "tensor":
            raise NotImplementedError("stand-in: only mode='tensor'")
        if self._state_cache_expire:
            self._states = self._get_states(env_ids)
            self._state_cache_expire = False
        return self._states

    def set_states(self, states: Any, env_ids: list[int] | None = None) -> None:
        self._state_cache_expire = True
        self.set_states_calls.append((type(states).__name__, env_ids))
        ids = list(range(self.num_envs)) if env_ids is None else list(env_ids)
        if isinstance(states, TensorState):
            for name, entry in {**states.robots, **states.objects}.items():
                self._root[name][ids, :7] = entry.root_state[ids, :7].to(torch.float32)
                self._root[name][ids, 7:] = 0.0  # velocities are not written (as in MetaSim backends)
                if name in self._jpos:
                    self._jpos[name][ids] = entry.joint_pos[ids].to(torch.float32)
                    self._jvel[name][ids] = 0.0
            return
        for i in ids:  # list of per-env dict states: {"objects"/"robots": {name: {"pos", "rot", "dof_pos"}}}
            for name, entry in {**states[i].get("robots", {}), **states[i].get("objects", {})}.items():
                self._root[name][i, :3] = torch.as_tensor(entry["pos"])
                self._root[name][i, 3:7] = torch.as_tensor(entry["rot"])
                self._root[name][i, 7:] = 0.0
                if "dof_pos" in entry:
                    names = self.get_joint_names(name, sort=True)
                    self._jpos[name][i] = torch.tensor([entry["dof_pos"][j] for j in names])
                    self._jvel[name][i] = 0.0

    def set_dof_targets(self, actions: Any) -> None:
        if not isinstance(actions, torch.Tensor):  # per-sub-env dicts, by joint name
            actions = torch.tensor(
                [
                    [actions[i][r.name]["dof_pos_target"][j] for r in self.robots for j in self.get_joint_names(r.name)]
                    for i in range(self.num_envs)
                ]
            )
        col = 0
        for r in self.robots:
            width = len(r.joint_limits)
            self._targets[r.name] = actions[:, col : col + width].to(torch.float32)
            col += width

    def simulate(self) -> None:
        self._state_cache_expire = True
        for r in self.robots:
            step = 0.5 * (self._targets[r.name] - self._jpos[r.name])
            self._jpos[r.name] += step
            self._jvel[r.name] = step / self.dt

    def close(self) -> None:
        self.closed = True
