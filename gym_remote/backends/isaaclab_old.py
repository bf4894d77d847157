"""The ``isaaclab`` backend: an Isaac Lab task (IsaacSim on an NVIDIA GPU) served as one session.

Start-up follows Isaac Lab's required order: ``AppLauncher`` first (once per process, when the
factory is built, so before the server prints READY), then ``import isaaclab_tasks`` (which needs the
running app to register its ids), then per session ``parse_env_cfg`` and ``gym.make(task, cfg=cfg)``.

One session is one batched ``ManagerBasedRLEnv``; an IsaacSim process holds one stage, so a server
hosts one session at a time. Torch tensors (on the GPU) are copied to the host once per array per
step, never per sub-env.

Autoreset, honestly mapped: Isaac Lab resets finished sub-envs *inside* ``step()`` and keeps no
final observation. So:

- ``same_step`` is served natively: a finished sub-env's row of ``obs`` is already the first
  observation of its next episode; ``info["reset_in_step"]`` (mask ``info["_reset_in_step"]``)
  marks those rows; ``final_obs``/``final_info`` are absent because they do not exist.
- ``next_step`` and ``disabled`` are refused at HELLO with an error naming the reason.
- A single-env client (``RemoteEnv``, one sub-env) gets plain ``gym.Env`` replies; on a done step
  the returned observation already belongs to the next episode (``info["reset_in_step"] = True``),
  and the ``reset()`` that follows (without seed or options) returns it without resetting twice.

:class:`~gym_remote.backends.batched.BatchedSimSession` holds what is shared with RoboVerse.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.metadata
import logging
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np

from gym_remote.backends.batched import (
    RESET_IN_STEP_KEY,
    BatchedSimSession,
    SessionSlot,
    batch_size,
    check_autoreset,
    info_to_host,
    space_from_batch,
    split_kwargs,
    to_host,
    tree_to_host,
)
from gym_remote.errors import BadRequestError, StateError
from gym_remote.session import Session, SessionOptions, choose_task
from gym_remote.state import Entity, QuatOrder, StateSchema

log = logging.getLogger(__name__)

#: Keys of the server-side ``--kwargs`` that configure the backend instead of the task. Clients may
#: not send them: they choose the device, the app and the hardware budget of the GPU box.
ISAACLAB_SERVER_KEYS = frozenset({"num_envs", "device", "app", "quat_order", "obs_group"})

_ARTICULATION_KEYS = ("root_pose", "root_velocity", "joint_position", "joint_velocity")
_RIGID_KEYS = ("root_pose", "root_velocity")


# ----------------------------------------------------------------------- Isaac Lab specifics


def isaaclab_version() -> str | None:
    """Isaac Lab's version string (``isaaclab.__version__``, else the package metadata)."""
    module = sys.modules.get("isaaclab")
    if module is None:
        try:
            module = importlib.import_module("isaaclab")
        except ImportError:
            return None
    version = getattr(module, "__version__", None)
    if version and version != "0.0.0":  # 3.x reports 0.0.0 when its metadata is missing
        return str(version)
    try:
        return importlib.metadata.version("isaaclab")
    except importlib.metadata.PackageNotFoundError:
        return None


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


class IsaacLabSession(BatchedSimSession):
    """One batched Isaac Lab ``ManagerBasedRLEnv`` (made by ``gym.make``)."""

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
        n = int(self._u.num_envs)
        obs_space, act_space = self._single_spaces()
        scene = self._u.scene
        raw = scene.get_state(is_relative=True)
        names = {name: _joint_names(scene.articulations[name]) for name in raw.get("articulation") or {}}
        schema, self._pieces = isaaclab_schema(raw, names)
        self._perm = quat_permutation(schema, quat_order)
        self._inv_perm = None if self._perm is None else np.argsort(self._perm)
        meta = getattr(self._u, "metadata", {}) or {}
        metadata = {
            "render_modes": ["rgb_array"],
            "render_fps": float(meta.get("render_fps", 30.0)),
            "backend": "isaaclab",
            "isaaclab_version": version,
            "native_quat_order": quat_order,
            "observation_group": obs_group,
            "final_obs": False,
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
        )

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
        if ids is not None:  # env_ids only when needed: older Isaac Lab resets do not take it
            kwargs["env_ids"] = self._torch.tensor(ids, dtype=self._torch.long, device=self._device)
        obs, extras = self._u.reset(**kwargs)
        return self._obs_to_host(obs), self._info(extras)

    def _info(self, extras: Any) -> dict[str, Any]:
        dropped: set[str] = set()
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
                full[p.kind][p.name][k] = values[:, col : col + width]
                col += width
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


def _joint_names(articulation: Any) -> list[str]:
    names = getattr(articulation, "joint_names", None)
    if names is None:
        names = articulation.data.joint_names
    return list(names)


def apply_overrides(cfg: Any, overrides: Mapping[str, Any]) -> None:
    """Set env-cfg attributes by dotted path (``{"episode_length_s": 5, "scene.env_spacing": 3}``).

    Unknown paths are an error: a typo must not silently train on the default task.
    """
    for path, value in overrides.items():
        target = cfg
        parts = str(path).split(".")
        if any(not part or part.startswith("_") for part in parts):
            raise BadRequestError(f"task keyword {path!r}: private or empty attribute names are not settable")
        for part in parts[:-1]:
            if not hasattr(target, part):
                raise BadRequestError(f"task keyword {path!r}: the env config has no {part!r}")
            target = getattr(target, part)
        if not hasattr(target, parts[-1]):
            raise BadRequestError(f"task keyword {path!r}: the env config has no {parts[-1]!r}")
        setattr(target, parts[-1], value)


# ------------------------------------------------------------------------------- the factory

_APP: Any = None
_APP_ARGS: dict[str, Any] | None = None


def launch_app(app_args: Mapping[str, Any] | None = None) -> Any:
    """Start IsaacSim through ``AppLauncher`` once per process (headless); later calls reuse it."""
    global _APP, _APP_ARGS
    args = {"headless": True, **dict(app_args or {})}
    if _APP is not None:
        if args != _APP_ARGS:
            log.warning("IsaacSim is already running with %s; ignoring %s", _APP_ARGS, args)
        return _APP
    from isaaclab.app import AppLauncher

    log.info("starting IsaacSim (AppLauncher %s)", args)
    _APP = AppLauncher(args)  # a dict works for Isaac Lab 2.x and 3.x alike
    _APP_ARGS = args
    atexit.register(_close_app)
    return _APP


def _close_app() -> None:
    app = getattr(_APP, "app", None)
    if app is not None and callable(getattr(app, "close", None)):
        try:
            app.close()
        except Exception:  # the process is exiting anyway
            log.debug("closing IsaacSim failed", exc_info=True)


def isaaclab_factory(task: str | None, kwargs: dict[str, Any], **options: Any) -> Callable[[SessionOptions], Session]:
    """Serve Isaac Lab task ``task``; ``kwargs`` are the server's ``--kwargs``.

    Backend settings (from ``kwargs`` or keyword ``options``): ``device`` (default ``"cuda:0"``),
    ``num_envs`` (the most sub-envs one session may ask for), ``app`` (extra ``AppLauncher``
    arguments such as ``{"enable_cameras": true}``), ``quat_order`` (override the version-based
    detection), ``obs_group`` (the observation group served, default ``"policy"``; ``None`` serves
    every group as a Dict). Every other key is an env-cfg override by dotted path, applied before
    the client's own ``task_kwargs``. ``allow_any_task`` (default True) lets clients pick another
    registered Isaac Lab id; ``vectorization`` is ignored (Isaac Lab is batched natively).
    """
    settings, cfg_overrides = split_kwargs(kwargs, ISAACLAB_SERVER_KEYS)
    allow_any_task = bool(options.pop("allow_any_task", True))
    options.pop("vectorization", None)  # Isaac Lab batches natively
    unknown = set(options) - ISAACLAB_SERVER_KEYS
    if unknown:
        raise TypeError(f"unknown isaaclab backend options {sorted(unknown)}; known: {sorted(ISAACLAB_SERVER_KEYS)}")
    settings.update(options)
    device = str(settings.get("device", "cuda:0"))
    cap = settings.get("num_envs")
    obs_group = settings.get("obs_group", "policy")
    app_args = dict(settings.get("app") or {})

    launch_app(app_args)  # FIRST: isaaclab_tasks and every omni/pxr module need the running app
    importlib.import_module("isaaclab_tasks")  # registers the Isaac-* ids with Gymnasium
    from isaaclab_tasks.utils import parse_env_cfg

    version = isaaclab_version()
    quat_order: QuatOrder = settings.get("quat_order") or quat_order_for_version(version)
    log.info("Isaac Lab %s (quaternions %s) on %s", version, quat_order, device)
    if task:
        gym.spec(task)  # a bad id fails at start-up, with its traceback, not at the first HELLO
    slot = SessionSlot("isaaclab")

    def factory(opts: SessionOptions) -> Session:
        name = choose_task(opts, task, allow_any_task, ISAACLAB_SERVER_KEYS - {"num_envs"})
        try:
            gym.spec(name)
        except gym.error.Error as exc:
            raise BadRequestError(f"unknown Isaac Lab task {name!r}: {exc}") from exc
        check_autoreset("isaaclab", opts.autoreset_mode, True, opts.num_envs is None)
        if opts.render_mode is not None and not app_args.get("enable_cameras"):
            raise BadRequestError(
                f"render_mode={opts.render_mode!r} needs cameras: start the server with "
                '--kwargs \'{"app": {"enable_cameras": true}}\''
            )
        n = batch_size(opts, cap, "isaaclab")
        slot.check_free()
        cfg = parse_env_cfg(name, device=device, num_envs=n)
        apply_overrides(cfg, {**cfg_overrides, **opts.task_kwargs})
        if opts.max_episode_steps is not None:
            # Isaac Lab's limit is ceil(episode_length_s / step_dt) steps: aim half a step short of it.
            cfg.episode_length_s = (opts.max_episode_steps - 0.5) * cfg.sim.dt * cfg.decimation
        make_kwargs: dict[str, Any] = {"cfg": cfg}
        if opts.render_mode is not None:
            make_kwargs["render_mode"] = opts.render_mode
        env = gym.make(name, **make_kwargs)
        return slot.open(
            env,
            partial(
                IsaacLabSession,
                env,
                task=name,
                requested_envs=opts.num_envs,
                autoreset_mode=opts.autoreset_mode,
                quat_order=quat_order,
                obs_group=obs_group,
                version=version,
                render_mode=opts.render_mode,
            ),
        )

    return factory
