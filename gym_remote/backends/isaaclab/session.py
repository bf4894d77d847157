"""One batched Isaac Lab env (``ManagerBasedRLEnv`` or ``DirectRLEnv``) behind the Session interface.

Torch tensors (on the GPU, or Warp's CPU device) come to the host once per array per step, never per
sub-env. Autoreset, honestly mapped: Isaac Lab resets finished sub-envs *inside* ``step()`` and keeps
no final observation, so ``same_step`` is served natively (``info["reset_in_step"]`` marks the rows)
and ``next_step``/``disabled`` are refused at HELLO (:func:`~gym_remote.backends.batched.check_autoreset`).
With 3.x's ``cfg.compute_final_obs``, Isaac Lab computes the observations before the in-step reset,
and ``same_step`` clients get them as Gymnasium's masked ``final_obs``.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np

from gym_remote.backends.batched import RESET_IN_STEP_KEY, BatchedSimSession
from gym_remote.backends.host_arrays import info_to_host, space_from_batch, to_host, tree_to_host
from gym_remote.backends.isaaclab.physics import physics_name
from gym_remote.backends.isaaclab.state import isaaclab_schema, joint_names, quat_permutation
from gym_remote.errors import BadRequestError
from gym_remote.state import QuatOrder

log = logging.getLogger(__name__)


class IsaacLabSession(BatchedSimSession):
    """One batched Isaac Lab env made by ``gym.make(task, cfg=cfg)``.

    Args:
        env: the env as ``gym.make`` returned it; ``env.unwrapped`` is Isaac Lab's env.
        task: the registered id served.
        requested_envs: ``None`` for a single-env client, else the vector client's ``num_envs``.
        autoreset_mode: the vector client's mode (only ``same_step`` reaches here).
        quat_order: the order of Isaac Lab's quaternions (``"xyzw"`` in 3.x, ``"wxyz"`` in 2.x).
        obs_group: the observation group served (``"policy"``); ``None`` serves the whole Dict.
        version: Isaac Lab's version string, reported in the metadata.
        render_mode: ``"rgb_array"`` or ``None``; the factory refuses it where Isaac Lab cannot render.
        on_close: called once when the session closes (frees the server's one simulator slot).
    """

    backend = "isaaclab"
    resets_in_step = True

    def __init__(
        self,
        env: gym.Env,
        *,
        task: str,
        requested_envs: int | None,
        autoreset_mode: str,
        quat_order: QuatOrder,
        obs_group: str | None = "policy",
        version: str | None = None,
        render_mode: str | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        import torch

        self._torch = torch
        self._env = env
        self._u: Any = env.unwrapped  # a ManagerBasedRLEnv: duck-typed, its classes need the GPU app
        self._device = self._u.device
        self._obs_group = obs_group
        self._dropped: set[str] = set()
        # Isaac Lab 3.x computes the observation before an in-step reset when cfg.compute_final_obs
        # is set (a client's task_kwargs may set it): then vector clients get Gymnasium's final_obs.
        self._computes_final_obs = bool(getattr(getattr(self._u, "cfg", None), "compute_final_obs", False))
        self._final: Any = None
        n = int(self._u.num_envs)
        # Manager-based envs reset a subset with reset(env_ids=...); DirectRLEnv.reset() takes none.
        self._partial_reset = "env_ids" in inspect.signature(self._u.reset).parameters
        obs_space, act_space = self._single_spaces()
        # Isaac Lab 3.0 reports zero joint velocities on an env's very first reset only; one reset
        # here makes every client reset with the same seed give the same observation.
        self._u.reset()
        scene = self._u.scene
        raw = scene.get_state(is_relative=True)
        names = {name: joint_names(scene.articulations[name]) for name in raw.get("articulation") or {}}
        schema, self._pieces = isaaclab_schema(raw, names)
        self._perm = quat_permutation(schema, quat_order)
        self._inv_perm = None if self._perm is None else np.argsort(self._perm)
        meta = getattr(self._u, "metadata", {}) or {}
        metadata = {
            "render_modes": ["rgb_array"] if render_mode is not None else [],
            "render_fps": float(meta.get("render_fps", 30.0)),
            "backend": "isaaclab",
            "isaaclab_version": version,
            "native_quat_order": quat_order,
            "physics": physics_name(getattr(self._u, "cfg", None)),
            "observation_group": obs_group,
            "final_obs": self._computes_final_obs,
            RESET_IN_STEP_KEY: True,
        }
        super().__init__(
            task=task,
            requested_envs=requested_envs,
            sim_envs=n,
            autoreset_mode=autoreset_mode,
            observation_space=obs_space,
            action_space=act_space,
            metadata=metadata,
            schema=schema if schema.entities else None,
            render_mode=render_mode,
            on_close=on_close,
            env=env,
        )
        #: Steps per episode as Isaac Lab counts them (``ceil(episode_length_s / step_dt)``).
        self.max_episode_steps = int(getattr(self._u, "max_episode_length", 0)) or None
        if requested_envs is not None and self._torch.is_tensor(getattr(self._u, "episode_length_buf", None)):
            # Isaac Lab's episode clocks, which its time-out terms read: a trainer may write them
            self.remote_methods = ("set_episode_lengths",)

    def _single_spaces(self) -> tuple[gym.Space, gym.Space]:
        obs_space = getattr(self._u, "single_observation_space", None)
        act_space = getattr(self._u, "single_action_space", None)
        if obs_space is None or act_space is None:  # derive them from one batch of tensors
            obs, _ = self._u.reset()
            obs_space = space_from_batch(tree_to_host(obs))
            act_dim = int(self._u.action_manager.total_action_dim)
            act_space = gym.spaces.Box(-np.inf, np.inf, (act_dim,), np.float32)
        if self._obs_group is not None:
            groups = list(obs_space.spaces) if isinstance(obs_space, gym.spaces.Dict) else []
            if self._obs_group not in groups:
                raise ValueError(f"observation group {self._obs_group!r} not in this task's groups {groups}")
            obs_space = obs_space[self._obs_group]
        return obs_space, act_space

    def _obs_to_host(self, obs: Any) -> Any:
        if self._obs_group is not None:
            obs = obs[self._obs_group]
        return tree_to_host(obs)

    def _sim_step(self, action: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        act = self._torch.tensor(np.asarray(action), dtype=self._torch.float32, device=self._device)
        obs, reward, terminated, truncated, extras = self._u.step(act)
        # kept on the device: the batched step asks for it (one host copy) only on a step that resets
        self._final = extras.get("final_obs") if self._computes_final_obs and isinstance(extras, dict) else None
        out = (
            self._obs_to_host(obs),
            to_host(reward).astype(np.float64, copy=False).reshape(self._n),
            to_host(terminated).astype(bool, copy=False).reshape(self._n),
            to_host(truncated).astype(bool, copy=False).reshape(self._n),
            self._info(extras),
        )
        return out

    def _sim_reset(
        self, ids: np.ndarray | None, seed: int | None, options: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        kwargs: dict[str, Any] = {"seed": seed, "options": options or None}
        if ids is not None and not self._partial_reset:
            raise BadRequestError(
                f"{self.task} is a DirectRLEnv: its reset() takes no env_ids, so a reset_mask cannot reset some "
                "sub-envs (Isaac Lab resets finished ones inside step); reset all of them with reset()"
            )
        if ids is not None:  # env_ids only when needed: DirectRLEnv.reset does not take it
            kwargs["env_ids"] = self._torch.tensor(ids, dtype=self._torch.long, device=self._device)
        obs, extras = self._u.reset(**kwargs)
        return self._obs_to_host(obs), self._info(extras)

    def _write_episode_lengths(self, lengths: np.ndarray) -> None:
        buf = self._u.episode_length_buf  # written in place: Isaac Lab's managers read this tensor
        buf.copy_(self._torch.as_tensor(lengths).to(device=buf.device, dtype=buf.dtype))

    def _final_obs_batch(self) -> Any:
        # Isaac Lab sets extras["final_obs"] on each step that resets (and leaves it there after):
        # the batched step asks for it only on such a step.
        return None if self._final is None else self._obs_to_host(self._final)

    def _info(self, extras: Any) -> dict[str, Any]:
        dropped: set[str] = set()
        if isinstance(extras, dict) and "final_obs" in extras:
            # Isaac Lab 3.x's own extras["final_obs"] is every row's observation groups, unmasked and
            # stale on later steps: the batched step serves it as Gymnasium's masked final_obs instead.
            extras = {k: v for k, v in extras.items() if k != "final_obs"}
        info = info_to_host(extras, dropped)
        new = dropped - self._dropped
        if new:
            log.info("extras that cannot travel are left out of info: %s", sorted(new))
            self._dropped |= new
        return info

    def _read_state(self) -> np.ndarray:
        state = self._u.scene.get_state(is_relative=True)
        flat = self._torch.cat([state[p.kind][p.name][k] for p in self._pieces for k in p.keys], dim=-1)
        host = to_host(flat).astype(np.float64, copy=False)
        return host if self._perm is None else host[:, self._perm]

    def _write_state(self, state: np.ndarray) -> None:
        if self._inv_perm is not None:
            state = state[:, self._inv_perm]
        scene = self._u.scene
        full = scene.get_state(is_relative=True)  # entities outside the schema keep their values
        values = self._torch.tensor(state, dtype=self._torch.float32, device=self._device)
        col = 0
        for p in self._pieces:
            for k in p.keys:
                width = int(full[p.kind][p.name][k].shape[-1])
                # contiguous: Warp (Isaac Lab 3.x's Newton) refuses a column slice of a wider batch
                full[p.kind][p.name][k] = values[:, col : col + width].contiguous()
                col += width
        with _joint_targets_kept(scene):
            scene.reset_to(full, env_ids=None, is_relative=True)
        sim = getattr(self._u, "sim", None)
        if callable(getattr(sim, "forward", None)):
            sim.forward()  # update kinematics (body poses) from the new joint state, as reset_to callers do

    def render(self) -> Any:
        if self.render_mode is None:
            return None
        frame = self._u.render()
        return None if frame is None else np.asarray(to_host(frame))

    def _close_sim(self) -> None:
        self._env.close()


@contextlib.contextmanager
def _joint_targets_kept(scene: Any) -> Iterator[None]:
    """Put back, on exit, the joint targets that ``InteractiveScene.reset_to`` overwrites.

    ``reset_to`` also sets every joint's position and velocity *targets* to the state's positions and
    velocities (its own FIXME: "assumes PD control over the joints"). That changes the dynamics: with
    Isaac-Cartpole's damped cart drive, the step after a restore drifted 0.06 m/s from the one the
    recorded trajectory took. Targets are the controller's, not the state's: the next action sets
    them for position-controlled tasks, and effort-controlled tasks never do.
    """
    restores: list[Callable[[], None]] = []
    for articulation in getattr(scene, "articulations", {}).values():
        command = getattr(getattr(articulation, "actuators", None), "target_command", None)
        if command is not None:  # Isaac Lab 3.x: the actuator collection holds the commands
            pos, vel = command.position.torch.clone(), command.velocity.torch.clone()
            restores += [
                partial(command.set_position_index, value=pos, full_data=True),
                partial(command.set_velocity_index, value=vel, full_data=True),
            ]
        else:  # 2.x: ArticulationData's torch buffers
            data = articulation.data
            restores += [
                partial(articulation.set_joint_position_target, data.joint_pos_target.clone()),
                partial(articulation.set_joint_velocity_target, data.joint_vel_target.clone()),
            ]
    yield
    for restore in restores:
        restore()
