"""What the natively batched simulator backends (Isaac Lab, RoboVerse MetaSim) share.

Both serve one batched simulator as one session: tensors come to the host once per array per step,
finished sub-envs may be reset inside ``step()``, and the client's autoreset mode is honoured where
the simulator allows it and refused with the reason where it does not.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from gym_remote.backends.host_arrays import (
    copy_tree,
    put_rows,
    take_rows,
    unbatch_info,
)
from gym_remote.checks import check_episode_lengths
from gym_remote.errors import BadRequestError, ServerBusyError, StateError
from gym_remote.protocol import CALLABLE_ALLOWLIST, CLOCK_METHODS, ObjectList
from gym_remote.session import Session, SessionOptions
from gym_remote.session.base import is_wrapped_in
from gym_remote.state import StateSchema, check_state

__all__ = [
    "RESET_IN_STEP_KEY",
    "BatchedSimSession",
    "SingleSceneGuard",
    "batch_size",
    "check_autoreset",
    "one_seed",
    "split_kwargs",
]

log = logging.getLogger(__name__)

#: Info key (and ``_``-prefixed mask) marking sub-envs the simulator reset inside this step: their
#: observation row is the first of a new episode and no final observation exists.
RESET_IN_STEP_KEY = "reset_in_step"


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
        env: Any = None,
    ) -> None:
        self.task = task
        self._wrapped = env  # the simulator's env as built (gym.make's wrappers included): env_is_wrapped
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

    def _write_state(self, state: np.ndarray) -> dict[str, Any] | None:
        """Write a ``[N, size]`` state; may return a report (e.g. ``{"not_restored": [...]}``)."""
        raise StateError(f"this env ({self.task}) cannot set its state")

    def _close_sim(self) -> None:
        """Release the simulator (subclasses)."""

    def _final_obs_batch(self) -> Any:
        """A simulator that resets inside its step: the whole batch's observations just before this
        step's resets, when it computes them (Isaac Lab's ``cfg.compute_final_obs``); else None."""
        return None

    def _with_final(self, info: dict[str, Any], final: Any, done: np.ndarray) -> dict[str, Any]:
        """``info`` with Gymnasium's masked ``final_obs``/``final_info`` for the ``done`` rows of ``final``."""
        final_obs = ObjectList([None] * self._n)
        for i in np.flatnonzero(done):
            final_obs[i] = copy_tree(take_rows(final, i))
        return {
            **info,
            "final_obs": final_obs,
            "_final_obs": done.copy(),
            "final_info": dict(info),
            "_final_info": done.copy(),
        }

    # -- Session API ----------------------------------------------------------------------------

    def reset(self, *, seed: int | list[int] | None, options: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
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
                final = self._final_obs_batch() if mode == "same_step" else None
                if final is not None:
                    info = self._with_final(info, final, done)
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
            info = self._with_final(info, obs, done)
            reset_obs, _ = self._sim_reset(ids, None, {})
            put_rows(obs, ids, take_rows(reset_obs, ids))
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

    def set_state(self, state: Any) -> dict[str, Any] | None:
        if self.state_schema is None:
            super().set_state(state)
        arr = check_state(self.state_schema, state, batched=not self._single)
        if self._single:
            arr = arr[None]
        elif arr.shape[0] != self._n:
            raise StateError(f"batched state has {arr.shape[0]} rows for {self._n} sub-envs")
        report = self._write_state(arr)
        # The episode goes on from the state that was set: nothing is pending any more.
        self._autoreset[:] = False
        self._pending_obs = None
        return report

    def set_episode_lengths(self, lengths: Any) -> None:
        """Write each sub-env's count of steps since its reset (:data:`~gym_remote.protocol.CLOCK_METHODS`).

        The simulator's own time limit then ends each episode when its count reaches
        :attr:`max_episode_steps`, inside its step, as when a trainer writes the counts in-process.

        Args:
            lengths: ``(N,)`` integers in ``[0, max_episode_steps]``.

        Raises:
            StateError: this session's simulator keeps no such counts (it is not in :attr:`remote_methods`).
            BadRequestError: ``lengths`` not an integer array of shape ``(N,)``, or a count out of range.
        """
        if "set_episode_lengths" not in self.remote_methods:
            raise StateError(f"this env ({self.task}) keeps no episode step counts a client may write")
        self._write_episode_lengths(
            check_episode_lengths(lengths, self._n, self.max_episode_steps, BadRequestError, BadRequestError)
        )

    def _write_episode_lengths(self, lengths: np.ndarray) -> None:
        """Write the simulator's episode step counts (``int64 (N,)``, checked); sessions listing
        ``set_episode_lengths`` in :attr:`remote_methods` implement it."""
        raise NotImplementedError(f"{type(self).__name__} lists set_episode_lengths but does not write the counts")

    def call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if name in CLOCK_METHODS and not self._single:
            if kwargs or len(args) != 1:
                raise BadRequestError(f"{name} takes one argument, the (N,) counts, and no keywords")
            self.set_episode_lengths(args[0])
            return None
        if name == "env_is_wrapped" and self._wrapped is not None:
            # every sub-env lives inside the one batched env, so each is wrapped as that env is
            value: Any = is_wrapped_in(self._wrapped, str(args[0]) if args else "")
            return value if self._single else [value] * self._n
        if name not in CALLABLE_ALLOWLIST:
            raise StateError(f"{name!r} is not on the remote call allow-list {sorted(CALLABLE_ALLOWLIST)}")
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


class SingleSceneGuard:
    """The one scene a simulator process can hold (Isaac Lab, MetaSim): a second HELLO while it is open
    is refused with :class:`~gym_remote.errors.ServerBusyError`, and closing the session frees it."""

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

    def open(self, env: Any, build: Callable[..., Session]) -> Session:
        """``build(on_close=...)`` the session around a freshly made ``env``; close ``env`` if that fails."""
        try:
            session = build(on_close=self.release)
        except BaseException:
            env.close()
            raise
        self.session, self.opened_at = session, time.monotonic()
        return session

    def release(self) -> None:
        self.session = None


#: The former name of :class:`SingleSceneGuard`, kept for one release.
SessionSlot = SingleSceneGuard


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


def split_kwargs(kwargs: Mapping[str, Any], server_keys: frozenset[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    settings = {k: v for k, v in kwargs.items() if k in server_keys}
    task_kwargs = {k: v for k, v in kwargs.items() if k not in server_keys}
    return settings, task_kwargs
