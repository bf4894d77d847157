"""Stable-Baselines3 on remote envs: a ``VecEnv`` over :class:`RemoteVectorEnv` (extra ``sb3``).

SB3 does not take Gymnasium vector envs, and its semantics are Gymnasium's SAME_STEP autoreset:
a finished sub-env returns the first observation of its next episode, with the last one in
``info["terminal_observation"]`` and ``info["TimeLimit.truncated"]``. The server does the reset in
the same round trip, so SB3 costs no extra round trips either.
"""

from __future__ import annotations

import copy
import functools
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import concatenate, create_empty_array
from stable_baselines3.common.vec_env import VecEnv

from gym_remote.checks import autoreset_mode_name, check_clip_actions
from gym_remote.entry import front_end_venv
from gym_remote.errors import RemoteEnvError
from gym_remote.protocol import CALLABLE_ALLOWLIST
from gym_remote.vector import RemoteVectorEnv


def _index(tree: Any, i: int) -> Any:
    if isinstance(tree, dict):
        return {k: _index(v, i) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(_index(v, i) for v in tree)
    return tree[i]


def _writable(tree: Any) -> Any:
    """SB3 and torch expect writable arrays; received frames are read-only views.

    Dict observations come back as the ``OrderedDict`` DummyVecEnv returns, Tuple ones as a tuple of
    batches.
    """
    if isinstance(tree, dict):
        return OrderedDict((k, _writable(v)) for k, v in tree.items())
    if isinstance(tree, tuple):
        return tuple(_writable(v) for v in tree)
    return np.array(tree)


def _per_env(value: Any, n: int) -> bool:
    """Whether ``value`` holds one entry per sub-env (a batch of ``n``), as Gymnasium's vector infos do."""
    shape = getattr(value, "shape", None)
    if shape is not None:
        return len(shape) > 0 and shape[0] == n
    return isinstance(value, list | tuple) and len(value) == n


def split_infos(info: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Gymnasium's dict-of-arrays vector info as SB3's list of per-env dicts (masked keys only).

    A key with a ``_key`` mask, or a value with one entry per sub-env, is split by row. Any other
    value is one value for the whole batch, and every sub-env's dict gets it (a copy each, when it
    is mutable): Isaac Lab's ``extras["log"]`` holds such scalars, averages over the sub-envs that
    reset (Isaac Lab's own SB3 wrapper puts them in those sub-envs' ``info["episode"]``).
    """
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, value in info.items():
        if key.startswith("_"):
            continue
        mask = info.get(f"_{key}")
        if isinstance(value, dict):
            parts = split_infos(value, n)
            for i in range(n):
                if mask is None or mask[i]:
                    out[i][key] = parts[i]
        elif mask is not None or _per_env(value, n):
            for i in range(n):
                if mask is None or mask[i]:
                    out[i][key] = value[i]
        else:
            shared = isinstance(value, int | float | complex | str | bytes | np.generic | type(None))
            for i in range(n):
                out[i][key] = value if shared or i == 0 else copy.deepcopy(value)
    return out


class RemoteVecEnv(VecEnv):
    """An SB3 ``VecEnv`` whose sub-envs run on gym-remote servers.

    Pass an existing :class:`RemoteVectorEnv` created with ``autoreset_mode="same_step"``, or the
    keyword arguments to create one (``num_envs``, ``host``, ``port``, ``task``, ``hosts``...).

    Args:
        clip_actions: bound a ``Box`` action space to ``[-clip_actions, clip_actions]`` (within its
            own bounds) and clip actions to it, as Isaac Lab's RSL-RL and RL-Games wrappers'
            ``clip_actions`` does. SB3's policies need finite bounds, and Isaac Lab's action spaces
            are unbounded (``Box(-inf, inf)``).

    Raises:
        TypeError: ``clip_actions`` with an action space that is not a ``Box``.
        ValueError: ``clip_actions`` not a positive finite number, or an autoreset mode other than
            ``same_step``.

    Example:
        >>> import numpy as np
        >>> from gym_remote.sb3 import RemoteVecEnv
        >>> vec = RemoteVecEnv(num_envs=2, task="CartPole-v1")  # a local server
        >>> vec.seed(0)
        [0, 1]
        >>> obs = vec.reset()
        >>> obs.shape, vec.action_space
        ((2, 4), Discrete(2))
        >>> obs, rewards, dones, infos = vec.step(np.array([1, 0]))
        >>> rewards, dones
        (array([1., 1.], dtype=float32), array([False, False]))
        >>> vec.close()
    """

    #: Names that ``get_attr``/``env_method`` may reach on the remote envs (the server's allow-list).
    REMOTE_ATTRS = CALLABLE_ALLOWLIST

    def __init__(
        self, venv: RemoteVectorEnv | None = None, *, clip_actions: float | None = None, **kwargs: Any
    ) -> None:
        check_clip_actions(clip_actions)
        with front_end_venv(venv, kwargs) as venv:  # one made here is closed if this set-up fails
            self._adopt(venv, clip_actions)

    def _adopt(self, venv: RemoteVectorEnv, clip_actions: float | None) -> None:
        if autoreset_mode_name(venv.autoreset_mode) != "same_step":
            raise ValueError(f"SB3 needs autoreset_mode='same_step', the RemoteVectorEnv uses {venv.autoreset_mode!r}")
        action_space = venv.single_action_space
        self._clip: tuple[np.ndarray, np.ndarray] | None = None
        if clip_actions is not None:
            action_space = self._clipped(action_space, clip_actions)
            self._clip = (action_space.low, action_space.high)
        self.venv = venv  # set before super().__init__, which calls get_attr("render_mode")
        self._actions: np.ndarray | None = None
        super().__init__(venv.num_envs, venv.single_observation_space, action_space)
        # The env's metadata as DummyVecEnv copies it (render_fps: VecVideoRecorder's frame rate), without
        # the vector env's autoreset_mode; render_modes are those that work here (no "human").
        self.metadata = {k: v for k, v in venv.metadata.items() if k != "autoreset_mode"}

    @staticmethod
    def _clipped(space: gym.Space, clip: float) -> spaces.Box:
        if not isinstance(space, spaces.Box):
            raise TypeError(f"clip_actions bounds a Box action space; this one is {space}")
        low = np.maximum(space.low, -clip).astype(space.dtype)
        high = np.minimum(space.high, clip).astype(space.dtype)
        if np.any(low > high):
            raise ValueError(f"clip_actions={clip} leaves no action inside {space}")
        return spaces.Box(low, high, space.shape, space.dtype)  # type: ignore[arg-type]

    def reset(self) -> Any:
        seeds = [s if s is None else int(s) for s in self._seeds] if any(s is not None for s in self._seeds) else None
        if self._options and any(o != self._options[0] for o in self._options):
            options = list(self._options)
            self._reset_options()  # as DummyVecEnv: options count for one reset, refused or not
            raise ValueError(
                "RemoteVecEnv resets every sub-env with the same options: set_options() with different options per "
                f"sub-env is refused on purpose ({options!r}); give one dict to set_options(), or use one "
                "RemoteVecEnv per options"
            )
        options = self._options[0] if self._options else None
        obs, info = self.venv.reset(seed=seeds, options=options or None)
        self.reset_infos = split_infos(info, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return _writable(obs)

    def step_async(self, actions: np.ndarray) -> None:
        """Take one action per sub-env: a batch, or a sequence whose item ``i`` is sub-env ``i``'s action.

        As ``DummyVecEnv`` reads ``actions[i]``, a list of per-env dicts or tuples (Dict and Tuple
        action spaces) is taken too, and batched here.
        """
        if self._clip is not None:
            actions = np.clip(actions, *self._clip)
        elif isinstance(self.action_space, (spaces.Dict, spaces.Tuple)) and not isinstance(actions, dict):
            actions = self._batch_actions(actions)
        self._actions = actions

    def _batch_actions(self, actions: Any) -> Any:
        """Per-env Dict or Tuple actions (``actions[i]``) as one Gymnasium batch of the vector env's space."""
        if len(actions) != self.num_envs:
            raise ValueError(f"{len(actions)} actions for {self.num_envs} sub-envs: give one per sub-env")
        single = self.action_space
        return concatenate(
            single, [actions[i] for i in range(self.num_envs)], create_empty_array(single, self.num_envs)
        )

    def step_wait(self) -> tuple[Any, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        if self._actions is None:
            raise RemoteEnvError("step_wait() without step_async()")
        # A sub-env whose server restarted ends its episode (truncated) and goes on in a new
        # session, so learn() continues across a server restart.
        obs, reward, terminated, truncated, info = self.venv.step(self._actions, on_lost_session="restart")
        self._actions = None
        dones = terminated | truncated
        infos = split_infos(info, self.num_envs)
        final_obs = info.get("final_obs")
        final_info = info.get("final_info")
        final_infos = split_infos(final_info, self.num_envs) if final_info is not None else None
        for i in range(self.num_envs):
            if dones[i] and final_infos is not None:  # as DummyVecEnv: the ended step's info, the reset's apart
                self.reset_infos[i] = {k: v for k, v in infos[i].items() if k not in ("final_obs", "final_info")}
                infos[i] = final_infos[i]
            elif dones[i]:  # Isaac Lab: one info, the step's own (extras["log"] describes the ended episodes)
                self.reset_infos[i] = {}
            if dones[i] and final_obs is not None:  # Isaac Lab has none: leave the key out (VecNormalize reads it)
                infos[i]["terminal_observation"] = _index(final_obs, i)
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])  # on every step
        return _writable(obs), reward.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def _indices(self, indices: int | Iterable[int] | None) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def get_attr(self, attr_name: str, indices: int | Iterable[int] | None = None) -> list[Any]:
        idx = self._indices(indices)
        if attr_name == "render_mode":
            return [self.venv.render_mode for _ in idx]
        if attr_name in self.venv.remote_methods:  # a goal env's compute_reward: callable here, as locally
            return [functools.partial(self.env_method, attr_name, indices=[i]) for i in idx]
        if attr_name not in self.REMOTE_ATTRS:
            raise AttributeError(f"{attr_name!r} is not readable on remote envs; allowed: {sorted(self.REMOTE_ATTRS)}")
        values = self.venv.call(attr_name)
        return [values[i] for i in idx]

    def set_attr(self, attr_name: str, value: Any, indices: int | Iterable[int] | None = None) -> None:
        raise AttributeError(f"setting {attr_name!r} on remote envs is not allowed (no arbitrary remote writes)")

    def env_method(
        self, method_name: str, *args: Any, indices: int | Iterable[int] | None = None, **kwargs: Any
    ) -> list[Any]:
        if method_name in self.venv.remote_methods:  # SB3's HER: compute_reward on goal batches
            values = self.venv.call(method_name, *args, **kwargs)  # one per sub-env, as DummyVecEnv's
            return [values[i] for i in self._indices(indices)]
        if method_name not in self.REMOTE_ATTRS:
            allowed = sorted(self.REMOTE_ATTRS | set(self.venv.remote_methods))
            raise AttributeError(f"{method_name!r} is not callable on remote envs; allowed: {allowed}")
        values = self.venv.call(method_name, *args, **kwargs)
        return [values[i] for i in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: int | Iterable[int] | None = None) -> list[bool]:
        """Whether each sub-env is wrapped in ``wrapper_class`` on the server, as DummyVecEnv answers it.

        The server walks each sub-env's wrapper chain and compares class names (module and qualified
        name, subclasses included).

        A natively batched simulator (Isaac Lab, MetaSim) answers from the wrapper chain of its one
        batched env, the same for every sub-env.

        Raises:
            BadRequestError: the server cannot tell (sub-envs in worker processes, ``serve
                --vectorization async``): no answer rather than a wrong one.
        """
        values = self.venv.call("env_is_wrapped", f"{wrapper_class.__module__}.{wrapper_class.__qualname__}")
        return [bool(values[i]) for i in self._indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.venv.render()
        return list(frames) if frames else [None] * self.num_envs
