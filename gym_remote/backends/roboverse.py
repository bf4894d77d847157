"""The ``roboverse`` backend: a RoboVerse MetaSim task (IsaacSim by default) served as one session.

The adapter keeps to the MetaSim surface it relies on:

- ``metasim.task.registry.get_task_class(name)``; ``task_cls.scenario.update(simulator=..., num_envs=...,
  headless=..., **kwargs)``; ``task_cls(scenario, device=...)`` (the handler launches the simulator);
- ``env.reset(env_ids=...) -> (obs, info)`` and ``env.step(actions) -> (obs, reward, terminated,
  time_out, info)``, batched torch tensors;
- ``env.handler.get_states(mode="tensor")`` -> ``TensorState`` (``robots``/``objects``: name ->
  ``root_state`` [N, 13] = pos, quat w-first, lin vel, ang vel; ``joint_pos``/``joint_vel`` [N, J] with
  columns sorted by joint name), ``env.handler.set_states(states)``,
  ``env.handler.get_joint_names(name, sort=True)``, ``env.handler.set_seed(seed)``.

MetaSim's ``BaseTaskEnv`` does not reset inside ``step()``, so every autoreset mode is honoured
here, with real ``final_obs`` in ``same_step``. Tasks derived from ``RLTaskEnv`` do reset in-step (no
final obs); they are treated like Isaac Lab (``same_step`` only, ``info["reset_in_step"]``).

A task whose observation is the ``TensorState`` itself (``BaseTaskEnv``'s default, e.g.
``stack_cube``) is served as the flat scene state: a float32 Box laid out by ``state_schema``.
``set_state`` writes poses and joint positions; MetaSim backends may drop velocities.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np

from gym_remote.backends.batched import (
    BatchedSimSession,
    SessionSlot,
    batch_size,
    check_autoreset,
    copy_tree,
    first_dim,
    info_to_host,
    put_rows,
    space_from_batch,
    split_kwargs,
    to_host,
    tree_to_host,
)
from gym_remote.errors import BadRequestError, StateError
from gym_remote.session import Session, SessionOptions, choose_task
from gym_remote.state import ROOT_POSE, ROOT_VEL, Entity, StateSchema

log = logging.getLogger(__name__)

#: Server-side ``--kwargs`` keys that configure the backend rather than the scenario.
ROBOVERSE_SERVER_KEYS = frozenset({"num_envs", "device", "simulator", "headless", "resets_in_step"})

ROOT_STATE = ROOT_POSE + ROOT_VEL  # MetaSim's root_state is exactly our root pose + root velocity


def tensor_state_schema(
    states: Any, joint_names: Callable[[str], Sequence[str]]
) -> tuple[StateSchema, list[tuple[str, str]]]:
    """Schema of a MetaSim ``TensorState``: robots, then objects (articulated ones with joints).

    Returns the schema and the ``(group, name)`` of each entity, in order.
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
    """A ``TensorState`` (or the same structure with numpy arrays) as the flat ``[N, size]`` state."""
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


def _is_tensor_state(obs: Any) -> bool:
    return hasattr(obs, "robots") and hasattr(obs, "objects") and not isinstance(obs, Mapping)


class MetaSimSession(BatchedSimSession):
    """One batched MetaSim task env."""

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
        obs, _ = env.reset()  # one probe to learn what the observations look like
        self._state_obs = _is_tensor_state(obs)
        self._last_obs = self._obs_to_host(obs)
        if first_dim(self._last_obs) != n:
            raise ValueError(f"{task}: reset returned {first_dim(self._last_obs)} observations for {n} sub-envs")
        obs_space = self._observation_space(env)
        metadata = {
            "render_modes": ["rgb_array"] if callable(getattr(env, "render", None)) else [],
            "backend": "roboverse",
            "simulator": simulator,
            "task_class": type(env).__name__,
            "observation": "state" if self._state_obs else "task",
            "final_obs": not resets_in_step,
            "reset_in_step": resets_in_step,
        }
        super().__init__(
            task=task,
            requested_envs=requested_envs,
            sim_envs=n,
            autoreset_mode=autoreset_mode,
            observation_space=obs_space,
            action_space=self._action_space(env),
            metadata=metadata,
            schema=schema,
            render_mode=render_mode,
            on_close=on_close,
        )

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

    def _action_space(self, env: Any) -> gym.Space:
        declared = getattr(env, "action_space", None)
        if isinstance(declared, gym.spaces.Box) and int(np.prod(declared.shape)) > 0:
            return declared
        # BaseTaskEnv declares an empty Box: its actions are joint targets of every robot, each
        # robot's joints sorted by name (the order set_dof_targets takes tensors in).
        low: list[float] = []
        high: list[float] = []
        for robot in self._handler.robots:
            limits = getattr(robot, "joint_limits", None) or {}
            for joint in self._handler.get_joint_names(robot.name, sort=True):
                lo, hi = limits.get(joint, (-np.inf, np.inf))
                low.append(lo)
                high.append(hi)
        return gym.spaces.Box(np.array(low, np.float32), np.array(high, np.float32), dtype=np.float32)

    # -- conversions ------------------------------------------------------------------------

    def _states(self) -> Any:
        states = self._handler.get_states(mode="tensor")
        rows = int(next(iter({**states.robots, **states.objects}.values())).root_state.shape[0])
        if rows != self._n:
            # get_states(env_ids=...) inside a partial reset may have cached a subset: refetch.
            invalidate = getattr(self._handler, "_invalidate_state_caches", None)
            if callable(invalidate):
                invalidate()
                states = self._handler.get_states(mode="tensor")
        return states

    def _flat_on_device(self, states: Any) -> Any:
        parts = []
        for entity, (group, name) in zip(self.state_schema.entities, self._layout, strict=True):  # type: ignore[union-attr]
            entry = getattr(states, group)[name]
            root = entry.root_state
            parts.append(root)
            if entity.joints:
                for field_name in ("joint_pos", "joint_vel"):
                    value = getattr(entry, field_name, None)
                    parts.append(self._torch.zeros_like(entry.joint_pos) if value is None else value)
        return self._torch.cat([p.to(parts[0].dtype) for p in parts], dim=-1)

    def _obs_to_host(self, obs: Any) -> Any:
        if _is_tensor_state(obs):
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
        act = self._torch.tensor(np.asarray(action), dtype=self._torch.float32, device=self._device)
        obs, reward, terminated, time_out, info = self._env.step(act)
        self._last_obs = self._obs_to_host(obs)
        n = self._n
        rew = np.zeros(n) if reward is None else to_host(reward).astype(np.float64, copy=False).reshape(n)
        term = to_host(terminated).astype(bool, copy=False).reshape(n)
        trunc = to_host(time_out).astype(bool, copy=False).reshape(n)
        return self._last_obs, rew, term, trunc, self._info(info)

    def _sim_reset(
        self, ids: np.ndarray | None, seed: int | None, options: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            set_seed = getattr(self._handler, "set_seed", None)
            if callable(set_seed):
                set_seed(seed)
            else:
                log.warning("this MetaSim handler has no set_seed(); seed %d is ignored", seed)
        env_ids = None if ids is None else [int(i) for i in ids]
        obs, info = self._env.reset(env_ids=env_ids)
        host = self._obs_to_host(obs)
        rows = first_dim(host)
        if rows == self._n:
            self._last_obs = host
        elif ids is not None and rows == len(ids):  # only the reset sub-envs were returned
            merged = copy_tree(self._last_obs)  # never write into arrays already handed out
            put_rows(merged, ids, host)
            self._last_obs = merged
        else:
            raise ValueError(f"reset returned {rows} observations for {self._n} sub-envs (reset ids {env_ids})")
        return self._last_obs, self._info(info)

    def _read_state(self) -> np.ndarray:
        return to_host(self._flat_on_device(self._states())).astype(np.float64, copy=False)

    def _write_state(self, state: np.ndarray) -> None:
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

    def render(self) -> Any:
        if self.render_mode is None:
            return None
        render = getattr(self._env, "render", None)
        frame = render() if callable(render) else None
        return None if frame is None else np.asarray(to_host(frame))

    def _close_sim(self) -> None:
        self._env.close()


def resets_in_step_by_class(task_cls: type) -> bool:
    """MetaSim's ``RLTaskEnv`` resets finished sub-envs inside ``step()``; ``BaseTaskEnv`` does not."""
    return any(cls.__name__ == "RLTaskEnv" for cls in getattr(task_cls, "__mro__", ()))


def roboverse_factory(task: str | None, kwargs: dict[str, Any], **options: Any) -> Callable[[SessionOptions], Session]:
    """Serve MetaSim task ``task`` (a registry name such as ``"stack_cube"``).

    Backend settings (from ``kwargs`` or keyword ``options``): ``simulator`` (default
    ``"isaacsim"``), ``device`` (default ``"cuda"``), ``headless`` (default True), ``num_envs``
    (the most sub-envs one session may ask for), ``resets_in_step`` (override the detection by task
    class). Every other key goes to ``scenario.update(...)``, then the client's own ``task_kwargs``.
    """
    settings, scenario_overrides = split_kwargs(kwargs, ROBOVERSE_SERVER_KEYS)
    allow_any_task = bool(options.pop("allow_any_task", True))
    options.pop("vectorization", None)  # MetaSim batches natively
    unknown = set(options) - ROBOVERSE_SERVER_KEYS
    if unknown:
        raise TypeError(f"unknown roboverse backend options {sorted(unknown)}; known: {sorted(ROBOVERSE_SERVER_KEYS)}")
    settings.update(options)
    simulator = str(settings.get("simulator", "isaacsim"))
    device = settings.get("device", "cuda")
    headless = bool(settings.get("headless", True))
    cap = settings.get("num_envs")

    registry = importlib.import_module("metasim.task.registry")
    if task:
        registry.get_task_class(task)  # an unknown name fails at start-up with the registered list
    slot = SessionSlot("roboverse")

    def factory(opts: SessionOptions) -> Session:
        name = choose_task(opts, task, allow_any_task, ROBOVERSE_SERVER_KEYS - {"num_envs"})
        try:
            task_cls = registry.get_task_class(name)
        except KeyError as exc:
            raise BadRequestError(str(exc.args[0] if exc.args else exc)) from exc
        in_step = settings.get("resets_in_step")
        in_step = resets_in_step_by_class(task_cls) if in_step is None else bool(in_step)
        check_autoreset("roboverse", opts.autoreset_mode, in_step, opts.num_envs is None)
        n = batch_size(opts, cap, "roboverse")
        slot.check_free()
        scenario = task_cls.scenario.update(
            simulator=simulator, num_envs=n, headless=headless, **{**scenario_overrides, **opts.task_kwargs}
        )
        env = task_cls(scenario, device=device)
        if opts.max_episode_steps is not None:
            env.max_episode_steps = int(opts.max_episode_steps)
        return slot.open(
            env,
            partial(
                MetaSimSession,
                env,
                task=name,
                requested_envs=opts.num_envs,
                autoreset_mode=opts.autoreset_mode,
                resets_in_step=in_step,
                simulator=simulator,
                render_mode=opts.render_mode,
            ),
        )

    return factory
