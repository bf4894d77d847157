"""One MetaSim task env as a batched gym-remote session (:class:`MetaSimSession`).

Checked against the real MetaSim (vendored commit dd8ff06, MuJoCo handler; ``tests/test_metasim_real.py``)
and, for the IsaacSim handler, only against a stand-in (``tests/standins/metasim``). The session keeps
to this MetaSim surface:

- ``env.reset(states=..., env_ids=...) -> (obs, info)`` and ``env.step(actions) -> (obs, reward,
  terminated, time_out, info)``, batched torch tensors;
- ``env.handler.get_states(mode="tensor")`` (a ``TensorState``, cached until ``handler._state_cache_expire``
  is set), ``env.handler.set_states(states)``, ``env.handler.get_joint_names(name, sort=True)``,
  ``env.handler.set_dof_targets(...)`` (see :mod:`gym_remote.backends.roboverse.actions`: tensor targets
  are checked against joint names at session start, per-joint targets used where they land wrong).

Seeding: no MetaSim handler seeds anything. A task's start states are its initial-state trajectories
(``get_traj(task.traj_filepath, ...)``, else ``task._initial_states``); every reset draws one per reset
sub-env with the session's ``np_random``, which ``reset(seed=s)`` reseeds (Gymnasium's generator, so
the same seed gives the same starts). A task with no start states to draw from logs that the seed
changes nothing, and its reset info says ``seed_ignored``.

``set_state`` writes through ``handler.set_states`` and reads the state back: what did not take
(velocities on the MuJoCo handler, which zeroes them) is logged and returned as
``{"not_restored": ["cube/root_vel", ...]}``.

MetaSim's ``BaseTaskEnv`` does not reset inside ``step()``, so every autoreset mode is honoured here,
with real ``final_obs`` in ``same_step``. Tasks derived from ``RLTaskEnv`` do reset in-step (no final
obs); they are treated like Isaac Lab (``same_step`` only, ``info["reset_in_step"]``). A task whose
observation is the ``TensorState`` itself (``BaseTaskEnv``'s default, e.g. ``stack_cube``) is served as
the flat scene state: a float32 Box laid out by ``state_schema``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from gym_remote.backends.batched import BatchedSimSession
from gym_remote.backends.host_arrays import (
    copy_tree,
    first_dim,
    info_to_host,
    put_rows,
    space_from_batch,
    to_host,
    tree_to_host,
)
from gym_remote.backends.roboverse.actions import (
    PER_JOINT,
    choose_action_path,
    per_joint_targets,
    probe_tensor_order,
)
from gym_remote.backends.roboverse.runtime import control_period, is_rl_task, start_state_pool
from gym_remote.backends.roboverse.state import (
    ROOT_STATE,
    is_tensor_state,
    tensor_state_schema,
    unrestored_fields,
)

__all__ = ["MetaSimSession"]

log = logging.getLogger(__name__)


class MetaSimSession(BatchedSimSession):
    """One batched MetaSim task env (``num_envs`` sub-envs; the MuJoCo handler holds one).

    Built by :func:`roboverse_factory`; see the module docstring for seeding, actions and states.

    Args:
        env: a constructed MetaSim task env (its handler launched).
        task: the registry name served; requested_envs: None for a single-env client, else N.
        autoreset_mode: the vector client's mode; resets_in_step: the task resets inside ``step``.
        simulator: MetaSim's simulator name (metadata only); render_mode: the client's render mode.
        on_close: called once when the session closes (frees the server's slot).
    """

    backend = "roboverse"

    def __init__(
        self,
        env: Any,
        *,
        task: str,
        requested_envs: int | None,
        autoreset_mode: str,
        resets_in_step: bool,
        simulator: str,
        render_mode: str | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        import torch

        self._torch = torch
        self._env = env
        self._handler = env.handler
        self._device = env.device
        self.resets_in_step = resets_in_step
        self._dropped: set[str] = {"privileged_observation"}  # the TensorState again: get_state has it
        n = int(env.num_envs)
        self._n = n
        states = self._states()
        schema, self._layout = tensor_state_schema(states, lambda name: self._handler.get_joint_names(name, sort=True))
        self.state_schema = schema
        self._robots = [(r.name, list(self._handler.get_joint_names(r.name, sort=True))) for r in self._handler.robots]
        action_space = self._action_space(env)
        tensor_ok = probe_tensor_order(
            self._handler, self._robots, action_space.low, action_space.high, torch, self._device
        )
        self._action_path = choose_action_path(tensor_ok, not is_rl_task(type(env)), type(self._handler).__name__)
        log.info("actions reach %s as %s targets", type(self._handler).__name__, self._action_path)
        self._pool = start_state_pool(env)
        self.np_random, _ = gym.utils.seeding.np_random()  # unseeded until reset(seed=...)
        obs, _ = self._reset_env(None)  # one probe to learn what the observations look like
        self._state_obs = is_tensor_state(obs)
        self._last_obs = self._obs_to_host(obs)
        if first_dim(self._last_obs) != n:
            raise ValueError(f"{task}: reset returned {first_dim(self._last_obs)} observations for {n} sub-envs")
        metadata = {
            "render_modes": ["rgb_array"] if callable(getattr(env, "render", None)) else [],
            "backend": "roboverse",
            "simulator": simulator,
            "task_class": type(env).__name__,
            "observation": "state" if self._state_obs else "task",
            "final_obs": not resets_in_step,
            "reset_in_step": resets_in_step,
            "action_path": self._action_path,
            "start_states": 0 if self._pool is None else len(self._pool),
        }
        dt = control_period(self._handler)
        if dt:
            metadata["render_fps"] = round(1.0 / dt, 3)  # replay videos then play in real time
        super().__init__(
            task=task,
            requested_envs=requested_envs,
            sim_envs=n,
            autoreset_mode=autoreset_mode,
            observation_space=self._observation_space(env),
            action_space=action_space,
            metadata=metadata,
            schema=schema,
            render_mode=render_mode,
            on_close=on_close,
            env=env,
        )
        #: The limit MetaSim's task enforces itself (``BaseTaskEnv.max_episode_steps``, 250 for
        #: stack_cube), or the client's ``max_episode_steps``, which the factory wrote there.
        self.max_episode_steps = int(getattr(env, "max_episode_steps", 0) or 0) or None

    # -- spaces -----------------------------------------------------------------------------

    def _observation_space(self, env: Any) -> gym.Space:
        if self._state_obs:
            return gym.spaces.Box(-np.inf, np.inf, (self.state_schema.size,), np.float32)  # type: ignore[union-attr]
        derived = space_from_batch(self._last_obs)
        declared = getattr(env, "observation_space", None)
        if (
            isinstance(declared, gym.spaces.Box)
            and isinstance(derived, gym.spaces.Box)
            and declared.shape == derived.shape
        ):
            return declared
        return derived

    def _action_space(self, env: Any) -> gym.spaces.Box:
        declared = getattr(env, "action_space", None)
        if isinstance(declared, gym.spaces.Box) and int(np.prod(declared.shape)) > 0:
            return declared
        # BaseTaskEnv declares an empty Box: its actions are joint targets of every robot, each
        # robot's joints sorted by name.
        low: list[float] = []
        high: list[float] = []
        for robot, joints in zip(self._handler.robots, self._robots, strict=True):
            limits = getattr(robot, "joint_limits", None) or {}
            for joint in joints[1]:
                lo, hi = limits.get(joint, (-np.inf, np.inf))
                low.append(lo)
                high.append(hi)
        return gym.spaces.Box(np.array(low, np.float32), np.array(high, np.float32), dtype=np.float32)

    # -- conversions ------------------------------------------------------------------------

    def _expire_cache(self) -> None:
        if hasattr(self._handler, "_state_cache_expire"):
            self._handler._state_cache_expire = True

    def _states(self) -> Any:
        states = self._handler.get_states(mode="tensor")
        rows = int(next(iter({**states.robots, **states.objects}.values())).root_state.shape[0])
        if rows != self._n:  # a partial reset's get_states(env_ids=...) cached a subset: refetch
            self._expire_cache()
            states = self._handler.get_states(mode="tensor")
        return states

    def _flat_on_device(self, states: Any) -> Any:
        parts = []
        for entity, (group, name) in zip(self.state_schema.entities, self._layout, strict=True):  # type: ignore[union-attr]
            entry = getattr(states, group)[name]
            parts.append(entry.root_state)
            if entity.joints:
                for field_name in ("joint_pos", "joint_vel"):
                    value = getattr(entry, field_name, None)
                    parts.append(self._torch.zeros_like(entry.joint_pos) if value is None else value)
        return self._torch.cat([p.to(parts[0].dtype) for p in parts], dim=-1)

    def _obs_to_host(self, obs: Any) -> Any:
        if is_tensor_state(obs):
            return to_host(self._flat_on_device(obs).float())  # one copy for the whole scene
        return tree_to_host(obs)

    def _info(self, info: Any) -> dict[str, Any]:
        dropped: set[str] = set()
        out = info_to_host({k: v for k, v in (info or {}).items() if k not in self._dropped}, dropped)
        if dropped:
            log.info("info values that cannot travel are left out: %s", sorted(dropped))
            self._dropped |= dropped
        return out

    # -- primitives -------------------------------------------------------------------------

    def _sim_step(self, action: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._action_path == PER_JOINT:
            act: Any = per_joint_targets(np.asarray(action), self._robots)
        else:
            act = self._torch.tensor(np.asarray(action), dtype=self._torch.float32, device=self._device)
        obs, reward, terminated, time_out, info = self._env.step(act)
        self._last_obs = self._obs_to_host(obs)
        n = self._n
        rew = np.zeros(n) if reward is None else to_host(reward).astype(np.float64, copy=False).reshape(n)
        term = to_host(terminated).astype(bool, copy=False).reshape(n)
        trunc = to_host(time_out).astype(bool, copy=False).reshape(n)
        return self._last_obs, rew, term, trunc, self._info(info)

    def _reset_env(self, ids: np.ndarray | None) -> tuple[Any, Any]:
        """Reset sub-envs ``ids`` (all for None) to start states drawn with ``np_random``."""
        env_ids = list(range(self._n)) if ids is None else [int(i) for i in ids]
        if self._pool is None:
            return self._env.reset(env_ids=env_ids)
        picks = self.np_random.integers(len(self._pool), size=len(env_ids))
        states = [self._pool[0]] * self._n  # handlers index the list by sub-env id
        for i, k in zip(env_ids, picks, strict=True):
            states[i] = self._pool[int(k)]
        log.debug("sub-envs %s start from states %s", env_ids, picks.tolist())
        return self._env.reset(states=states, env_ids=env_ids)

    def _sim_reset(
        self, ids: np.ndarray | None, seed: int | None, options: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self.np_random, _ = gym.utils.seeding.np_random(seed)
        obs, info = self._reset_env(ids)
        info = self._info(info)
        if seed is not None and self._pool is None:
            log.warning("%s offers no start states and handlers do not seed: seed %d is ignored", self.task, seed)
            info["seed_ignored"] = True
        host = self._obs_to_host(obs)
        rows = first_dim(host)
        if rows == self._n:
            self._last_obs = host
        elif ids is not None and rows == len(ids):  # only the reset sub-envs were returned
            merged = copy_tree(self._last_obs)  # never write into arrays already handed out
            put_rows(merged, ids, host)
            self._last_obs = merged
        else:
            raise ValueError(f"reset returned {rows} observations for {self._n} sub-envs (reset ids {ids})")
        return self._last_obs, info

    def _read_state(self) -> np.ndarray:
        return to_host(self._flat_on_device(self._states())).astype(np.float64, copy=False)

    def _write_state(self, state: np.ndarray) -> dict[str, Any]:
        current = self._states()
        groups: dict[str, dict[str, Any]] = {"robots": dict(current.robots), "objects": dict(current.objects)}
        offsets = self.state_schema.offsets()  # type: ignore[union-attr]
        for entity, (group, name) in zip(self.state_schema.entities, self._layout, strict=True):  # type: ignore[union-attr]
            entry = groups[group][name]
            dtype, device = entry.root_state.dtype, entry.root_state.device
            seg = self._torch.tensor(
                state[:, offsets[entity.name] : offsets[entity.name] + entity.size],
                dtype=dtype,
                device=device,
            )
            changes: dict[str, Any] = {"root_state": seg[:, :ROOT_STATE]}
            j = len(entity.joints)
            if j:
                changes["joint_pos"] = seg[:, ROOT_STATE : ROOT_STATE + j]
                changes["joint_vel"] = seg[:, ROOT_STATE + j :]
            groups[group][name] = dataclasses.replace(entry, **changes)
        self._handler.set_states(dataclasses.replace(current, robots=groups["robots"], objects=groups["objects"]))
        self._expire_cache()
        missed = unrestored_fields(self.state_schema, state, self._read_state())  # type: ignore[arg-type]
        if missed:
            log.info("set_state: %s could not restore %s", type(self._handler).__name__, ", ".join(missed))
        return {"not_restored": missed}

    def render(self) -> Any:
        if self.render_mode is None:
            return None
        render = getattr(self._env, "render", None)
        frame = render() if callable(render) else None
        return None if frame is None else np.asarray(to_host(frame))

    def _close_sim(self) -> None:
        self._env.close()
