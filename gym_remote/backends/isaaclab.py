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

:class:`BatchedSimSession` holds the machinery shared with the RoboVerse backend.
"""

from __future__ import annotations

import abc
import atexit
import importlib
import importlib.metadata
import logging
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from gym_remote.errors import BadRequestError, ServerBusyError, StateError
from gym_remote.protocol import ObjectList
from gym_remote.session import CALLABLE_ALLOWLIST, Session, SessionOptions
from gym_remote.state import Entity, QuatOrder, StateSchema, check_state

log = logging.getLogger(__name__)

#: Info key (and ``_``-prefixed mask) marking sub-envs the simulator reset inside this step: their
#: observation row is the first of a new episode and no final observation exists.
RESET_IN_STEP_KEY = "reset_in_step"

#: Keys of the server-side ``--kwargs`` that configure the backend instead of the task. Clients may
#: not send them: they choose the device, the app and the hardware budget of the GPU box.
ISAACLAB_SERVER_KEYS = frozenset({"num_envs", "device", "app", "quat_order", "obs_group"})

_ARTICULATION_KEYS = ("root_pose", "root_velocity", "joint_position", "joint_velocity")
_RIGID_KEYS = ("root_pose", "root_velocity")


# ------------------------------------------------------------------------- host conversion


def _is_tensor(value: Any) -> bool:
    return hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "ndim")


def to_host(value: Any) -> np.ndarray:
    """One device-to-host copy of a tensor as a numpy array the caller owns.

    A tensor already on the CPU shares memory with its numpy view, and simulators overwrite their
    buffers in place on the next step, so that case gets a private host copy instead.
    """
    if not _is_tensor(value):
        return np.asarray(value)
    on_cpu = getattr(getattr(value, "device", None), "type", "cpu") == "cpu"
    arr = value.detach().cpu().numpy()
    return arr.copy() if on_cpu else arr


def tree_to_host(tree: Any) -> Any:
    """Tensors (possibly in nested dicts) to numpy arrays, one copy per tensor."""
    if isinstance(tree, Mapping):
        return {str(k): tree_to_host(v) for k, v in tree.items()}
    return to_host(tree)


def info_to_host(info: Any, dropped: set[str] | None = None) -> dict[str, Any]:
    """A simulator's info/extras dict made wire-safe, with all 0-d tensors in ONE host copy.

    Isaac Lab's ``extras["log"]`` holds a dozen scalar tensors; converting each with ``.item()``
    would synchronise the GPU a dozen times per step, so they are stacked on the device first.
    Values that cannot travel (simulator objects) are left out; their keys are added to ``dropped``.
    """
    out: dict[str, Any] = {}
    scalars: list[tuple[dict[str, Any], str, Any]] = []

    def walk(src: Mapping[Any, Any], dst: dict[str, Any], prefix: str) -> None:
        for key, value in src.items():
            if not isinstance(key, str):
                if dropped is not None:
                    dropped.add(f"{prefix}{key!r}")
                continue
            if isinstance(value, Mapping):
                dst[key] = {}
                walk(value, dst[key], f"{prefix}{key}/")
            elif _is_tensor(value):
                if value.ndim == 0:
                    scalars.append((dst, key, value))
                else:
                    dst[key] = to_host(value)
            elif value is None or isinstance(value, (bool, int, float, str, np.ndarray, np.generic)):
                dst[key] = value
            elif isinstance(value, (list, tuple)) and all(
                isinstance(v, (bool, int, float, str)) for v in value
            ):
                dst[key] = list(value)
            elif dropped is not None:
                dropped.add(f"{prefix}{key}")

    if isinstance(info, Mapping):
        walk(info, out, "")
    if scalars:
        try:
            import torch

            values = to_host(torch.stack([t.detach().double() for _, _, t in scalars])).tolist()
        except (ImportError, RuntimeError, TypeError):  # mixed devices: fall back to one sync each
            values = [float(t.item()) for _, _, t in scalars]
        for (dst, key, _), value in zip(scalars, values, strict=True):
            dst[key] = float(value)
    return out


# ---------------------------------------------------------------------- batch tree helpers


def take_rows(tree: Any, idx: Any) -> Any:
    if isinstance(tree, dict):
        return {k: take_rows(v, idx) for k, v in tree.items()}
    return np.asarray(tree)[idx]


def put_rows(dst: Any, idx: Any, src: Any) -> None:
    if isinstance(dst, dict):
        for k in dst:
            put_rows(dst[k], idx, src[k])
    else:
        dst[idx] = src


def copy_tree(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: copy_tree(v) for k, v in tree.items()}
    return np.array(tree)


def first_dim(tree: Any) -> int:
    if isinstance(tree, dict):
        return first_dim(next(iter(tree.values())))
    return int(np.shape(tree)[0])


def unbatch_info(info: Mapping[str, Any]) -> dict[str, Any]:
    """A one-sub-env vector info as a plain env's info: drop masks, take row 0 of batched arrays."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        if key.startswith("_"):
            continue
        if isinstance(value, Mapping):
            out[key] = unbatch_info(value)
        elif isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == 1:
            out[key] = value[0]
        else:
            out[key] = value
    return out


def one_seed(seed: int | Sequence[int | None] | None, single: bool) -> int | None:
    """The one seed a natively batched simulator takes (it seeds the whole batch at once).

    Vector clients send Gymnasium's per-sub-env list ``[s, s+1, ...]``; its first entry is used.
    """
    if seed is None or isinstance(seed, (int, np.integer)):
        return None if seed is None else int(seed)
    if single:
        raise BadRequestError("a single env takes an int seed, not a list")
    values = [s for s in seed if s is not None]
    if not values:
        return None
    first = int(values[0])
    if list(seed) != list(range(first, first + len(seed))):
        log.info("this simulator seeds the whole batch with one seed; using %d from %s", first, list(seed))
    return first


# --------------------------------------------------------------------------- the session


def check_autoreset(backend: str, mode: str, resets_in_step: bool, single: bool) -> None:
    """Refuse, before anything is built, an autoreset mode the simulator cannot honour."""
    if single or not resets_in_step or mode == "same_step":
        return
    reason = {
        "next_step": "next_step returns the final observation on the done step and resets on the next one",
        "disabled": "disabled leaves finished sub-envs alone until reset(options={'reset_mask': ...})",
    }.get(mode, f"{mode!r} is unknown")
    raise BadRequestError(
        f"autoreset_mode={mode!r} cannot be honoured by the {backend} backend: the simulator resets finished "
        f"sub-envs inside step() and keeps no final observation, but {reason}. Ask for "
        f"autoreset_mode='same_step': finished sub-envs come back already reset, marked by "
        f"info[{RESET_IN_STEP_KEY!r}], and there is no final_obs"
    )


class BatchedSimSession(Session):
    """A natively batched torch simulator behind the :class:`Session` interface.

    Subclasses provide the batched primitives on the host (:meth:`_sim_step`, :meth:`_sim_reset`,
    :meth:`_read_state`, :meth:`_write_state`); this class turns them into single-env replies
    (``num_envs=None``) or vector replies in the requested autoreset mode.
    """

    backend = "batched"
    #: True when the simulator resets finished sub-envs inside its own step.
    resets_in_step = False

    def __init__(
        self,
        *,
        task: str,
        requested_envs: int | None,
        sim_envs: int,
        autoreset_mode: str,
        observation_space: gym.Space,
        action_space: gym.Space,
        metadata: dict[str, Any],
        schema: StateSchema | None,
        render_mode: str | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.task = task
        self.render_mode = render_mode
        self.num_envs = requested_envs
        self._single = requested_envs is None
        self._n = sim_envs
        self.autoreset_mode = None if self._single else autoreset_mode
        self.observation_space = observation_space
        self.action_space = action_space
        self.metadata = dict(metadata)
        if not self._single:
            self.metadata["autoreset_mode"] = autoreset_mode
        self.state_schema = schema
        self._on_close = on_close
        self._closed = False
        self._autoreset = np.zeros(sim_envs, dtype=bool)
        self._pending_obs: Any = None  # single env: first obs of an episode already begun in-step

    # -- simulator primitives, all batched and on the host ---------------------------------

    @abc.abstractmethod
    def _sim_step(self, action: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]: ...

    @abc.abstractmethod
    def _sim_reset(
        self, ids: np.ndarray | None, seed: int | None, options: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        """Reset all sub-envs (``ids=None``) or some; return the observation of the WHOLE batch."""

    def _read_state(self) -> np.ndarray:
        raise StateError(f"this env ({self.task}) does not expose its state")

    def _write_state(self, state: np.ndarray) -> None:
        raise StateError(f"this env ({self.task}) cannot set its state")

    def _close_sim(self) -> None:
        """Release the simulator (subclasses)."""

    # -- Session API ----------------------------------------------------------------------------

    def reset(
        self, *, seed: int | list[int] | None, options: dict[str, Any] | None
    ) -> tuple[Any, dict[str, Any]]:
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        seed_ = one_seed(seed, self._single)
        if self._single:
            if mask is not None:
                raise BadRequestError("reset_mask is an option of vector envs, not of a single env")
            if self._pending_obs is not None and seed_ is None and not options:
                obs, self._pending_obs = self._pending_obs, None
                return obs, {RESET_IN_STEP_KEY: True}
            obs, info = self._sim_reset(None, seed_, options)
            self._pending_obs = None
            return take_rows(obs, 0), unbatch_info(info)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (self._n,):
                raise BadRequestError(f"reset_mask must have shape ({self._n},), got {mask.shape}")
            if not mask.any():
                raise BadRequestError("reset_mask must have at least one True entry")
            ids = np.flatnonzero(mask)
            obs, info = self._sim_reset(ids, seed_, options)
            self._autoreset[ids] = False
        else:
            obs, info = self._sim_reset(None, seed_, options)
            self._autoreset[:] = False
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        batch = np.asarray(action)[None] if self._single else action
        mode = self.autoreset_mode
        if mode == "disabled" and self._autoreset.any():
            raise BadRequestError(
                f"sub-envs {np.flatnonzero(self._autoreset).tolist()} finished and were not reset; with "
                "autoreset_mode='disabled' call reset(options={'reset_mask': mask}) first"
            )
        obs, reward, terminated, truncated, info = self._sim_step(batch)
        done = terminated | truncated
        if self.resets_in_step:
            if done.any():
                info[RESET_IN_STEP_KEY] = done.copy()
                info[f"_{RESET_IN_STEP_KEY}"] = done.copy()
        elif mode == "next_step" and self._autoreset.any():
            ids = np.flatnonzero(self._autoreset)
            reset_obs, _ = self._sim_reset(ids, None, {})
            put_rows(obs, ids, take_rows(reset_obs, ids))
            reward[ids] = 0.0
            terminated[ids] = False
            truncated[ids] = False
            done = terminated | truncated
        elif mode == "same_step" and done.any():
            ids = np.flatnonzero(done)
            final_obs = ObjectList([None] * self._n)
            for i in ids:
                final_obs[i] = copy_tree(take_rows(obs, i))
            final_info = dict(info)
            reset_obs, _ = self._sim_reset(ids, None, {})
            put_rows(obs, ids, take_rows(reset_obs, ids))
            info = {
                **info,
                "final_obs": final_obs,
                "_final_obs": done.copy(),
                "final_info": final_info,
                "_final_info": done.copy(),
            }
        self._autoreset = done if mode in ("next_step", "disabled") else np.zeros(self._n, dtype=bool)
        if self._single:
            first = take_rows(obs, 0)
            self._pending_obs = copy_tree(first) if self.resets_in_step and done[0] else None
            single_info = unbatch_info(info)
            if RESET_IN_STEP_KEY in single_info:
                single_info[RESET_IN_STEP_KEY] = bool(done[0])
            return first, float(reward[0]), bool(terminated[0]), bool(truncated[0]), single_info
        return obs, reward, terminated, truncated, info

    def get_state(self) -> Any:
        if self.state_schema is None:
            return super().get_state()
        state = self._read_state()
        return state[0] if self._single else state

    def set_state(self, state: Any) -> None:
        if self.state_schema is None:
            super().set_state(state)
        arr = check_state(self.state_schema, state, batched=not self._single)
        if self._single:
            arr = arr[None]
        elif arr.shape[0] != self._n:
            raise StateError(f"batched state has {arr.shape[0]} rows for {self._n} sub-envs")
        self._write_state(arr)
        # The episode goes on from the state that was set: nothing is pending any more.
        self._autoreset[:] = False
        self._pending_obs = None

    def call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if name not in CALLABLE_ALLOWLIST:
            raise StateError(f"{name!r} is not on the remote call allow-list {sorted(CALLABLE_ALLOWLIST)}")
        value: Any
        if name == "spec_id":
            value = self.task
        elif name == "get_state_schema":
            value = self.state_schema.to_dict() if self.state_schema else None
        elif name == "metadata":
            value = dict(self.metadata)
        else:
            value = getattr(self, name, None)
        return value if self._single else [value] * self._n

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._close_sim()
        finally:
            if self._on_close is not None:
                self._on_close()


class SessionSlot:
    """The one env an IsaacSim process can hold: a second HELLO while it is open is refused."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.session: Session | None = None
        self.opened_at = 0.0

    def check_free(self) -> None:
        if self.session is not None:
            age = time.monotonic() - self.opened_at
            raise ServerBusyError(
                f"this {self.backend} server already hosts a session (opened {age:.0f} s ago): an IsaacSim "
                "process holds one env at a time. Close that session, wait for the server's idle timeout, "
                "or start another server"
            )

    def hold(self, session: Session) -> None:
        self.session, self.opened_at = session, time.monotonic()

    def release(self) -> None:
        self.session = None


def batch_size(opts: SessionOptions, cap: int | None, backend: str) -> int:
    """Sub-envs to simulate: one for a single-env client, else what the vector client asked for."""
    n = 1 if opts.num_envs is None else int(opts.num_envs)
    if cap is not None and n > int(cap):
        raise BadRequestError(f"this {backend} server allows at most num_envs={cap} per session, asked {n}")
    if "num_envs" in opts.task_kwargs:
        raise BadRequestError(
            "num_envs is not a task keyword: a vector client sets it (RemoteVectorEnv(num_envs=...)), a "
            "RemoteEnv always gets one sub-env"
        )
    return n


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
            raise StateError(
                f"articulation {name!r} has {width} joint positions but {len(joints)} joint names"
            )
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
        self._u = env.unwrapped
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
            obs_space = _space_from_batch(tree_to_host(obs))
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


def _space_from_batch(batch: Any) -> gym.Space:
    if isinstance(batch, dict):
        return gym.spaces.Dict({k: _space_from_batch(v) for k, v in batch.items()})
    arr = np.asarray(batch)
    return gym.spaces.Box(-np.inf, np.inf, arr.shape[1:], arr.dtype)


def apply_overrides(cfg: Any, overrides: Mapping[str, Any]) -> None:
    """Set env-cfg attributes by dotted path (``{"episode_length_s": 5, "scene.env_spacing": 3}``).

    Unknown paths are an error: a typo must not silently train on the default task.
    """
    for path, value in overrides.items():
        target = cfg
        parts = str(path).split(".")
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


def _split_kwargs(
    kwargs: Mapping[str, Any], server_keys: frozenset[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    settings = {k: v for k, v in kwargs.items() if k in server_keys}
    task_kwargs = {k: v for k, v in kwargs.items() if k not in server_keys}
    return settings, task_kwargs


def isaaclab_factory(
    task: str | None, kwargs: dict[str, Any], **options: Any
) -> Callable[[SessionOptions], Session]:
    """Serve Isaac Lab task ``task``; ``kwargs`` are the server's ``--kwargs``.

    Backend settings (from ``kwargs`` or keyword ``options``): ``device`` (default ``"cuda:0"``),
    ``num_envs`` (the most sub-envs one session may ask for), ``app`` (extra ``AppLauncher``
    arguments such as ``{"enable_cameras": true}``), ``quat_order`` (override the version-based
    detection), ``obs_group`` (the observation group served, default ``"policy"``; ``None`` serves
    every group as a Dict). Every other key is an env-cfg override by dotted path, applied before
    the client's own ``task_kwargs``. ``allow_any_task`` (default True) lets clients pick another
    registered Isaac Lab id; ``vectorization`` is ignored (Isaac Lab is batched natively).
    """
    settings, cfg_overrides = _split_kwargs(kwargs, ISAACLAB_SERVER_KEYS)
    allow_any_task = bool(options.pop("allow_any_task", True))
    options.pop("vectorization", None)  # Isaac Lab batches natively
    unknown = set(options) - ISAACLAB_SERVER_KEYS
    if unknown:
        raise TypeError(
            f"unknown isaaclab backend options {sorted(unknown)}; known: {sorted(ISAACLAB_SERVER_KEYS)}"
        )
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
        name = opts.task or task
        if not name:
            raise BadRequestError("no task: the client named none and the server has no default")
        if name != task and not allow_any_task:
            raise BadRequestError(f"this server only serves {task!r}, not {name!r}")
        try:
            gym.spec(name)
        except gym.error.Error as exc:
            raise BadRequestError(f"unknown Isaac Lab task {name!r}: {exc}") from exc
        refused = ISAACLAB_SERVER_KEYS & set(opts.task_kwargs) - {"num_envs"}
        if refused:
            raise BadRequestError(
                f"task keywords {sorted(refused)} are server settings; clients may not set them"
            )
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
        try:
            session = IsaacLabSession(
                env,
                task=name,
                requested_envs=opts.num_envs,
                autoreset_mode=opts.autoreset_mode,
                quat_order=quat_order,
                obs_group=obs_group,
                version=version,
                render_mode=opts.render_mode,
                on_close=slot.release,
            )
        except BaseException:
            env.close()
            raise
        slot.hold(session)
        return session

    return factory
