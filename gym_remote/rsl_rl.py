"""rsl_rl on remote envs: an ``rsl_rl.env.VecEnv`` over :class:`RemoteVectorEnv` (extra ``rsl-rl``).

rsl_rl (``rsl-rl-lib``, the trainer Isaac Lab's recipes are written for) trains on any subclass of
its ``VecEnv``. :class:`RemoteRslRlVecEnv` is one over a remote batched session and behaves as Isaac
Lab's own ``isaaclab_rl.rsl_rl.RslRlVecEnvWrapper`` does over the same task in-process, so an Isaac
Lab agent cfg (``handle_deprecated_rsl_rl_cfg`` + ``to_dict``) and ``OnPolicyRunner`` run unchanged
on a machine without Isaac Lab. What travels, per step, for ``N = num_envs``:

- actions: ``(N, num_actions)`` torch, clamped to ``[-clip_actions, clip_actions]`` when set, sent as
  float32 numpy (the server's Isaac Lab makes them a tensor on its own device);
- observations: a ``TensorDict`` of batch size ``(N,)`` on ``device``, one entry per observation
  group the server serves: every group when the server runs with ``obs_group: null`` (``policy``,
  ``critic``...), else the one group it names (``metadata["observation_group"]``, ``"policy"`` by
  default); leaves keep the server's dtype (float32 for Isaac Lab);
- rewards ``(N,)`` float32 and dones ``(N,)`` long (terminated or truncated), as Isaac Lab's wrapper;
- extras: the server's info, which for Isaac Lab is its ``extras`` (``"log"``: batch-level scalars
  averaged over the episodes that ended), plus ``"time_outs"``, ``(N,)`` bool, the truncations
  (rsl_rl bootstraps them), unless the task is finite-horizon (``cfg.is_finite_horizon``). gym-remote's
  own bookkeeping keys (``reset_in_step`` and the ``_``-masks) are left out.

Autoreset is Isaac Lab's: a sub-env that ends is reset by the server inside the same step and its
row of the observation is the new episode's first (``autoreset_mode="same_step"``, the only mode
accepted). The runner never calls ``reset``: the constructor resets once, as Isaac Lab's wrapper does.

``episode_length_buf`` is the client's count of each sub-env's steps since its last reset
(``(N,)`` long, zeroed where ``dones``), kept equal to the server's. ``OnPolicyRunner.learn(...,
init_at_random_ep_len=True)`` writes random counts into it so that the first episodes end at
staggered steps. A server whose session keeps episode clocks (Isaac Lab's batched sessions list
``set_episode_lengths`` in their HELLO ``methods``) has them written too, one round trip at the
write: Isaac Lab's ``episode_length_buf`` then holds the counts, and its time-out terms end those
episodes inside its step, exactly as in-process. With a server that keeps none (older servers,
other backends), the client ends such an episode itself: on the step where a sub-env's count reaches
``max_episode_length`` before the server's clock does, the row is truncated (``dones`` 1,
``time_outs`` True) and the sub-env is reset on the server (``reset(options={"reset_mask": ...})``,
one more round trip on such steps; the row holds the new episode's first observation, as in-process;
``extras["log"]`` then carries Isaac Lab's metrics of the rows reset, whose termination counts leave
out these time-outs: the server's termination manager did not see them). There, a count written
lower than the server's clock does not make an episode longer (the server's time-out comes first),
and a task whose reset takes no ``env_ids`` (Isaac Lab's ``DirectRLEnv``) refuses partial resets, so
the written counts are counted only (logged once). ``max_episode_length`` is the server's limit
(Isaac Lab's ``ceil(episode_length_s / step_dt)``).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict

from gym_remote.checks import check_clip_actions
from gym_remote.entry import front_end_venv
from gym_remote.errors import BadRequestError, RemoteEnvError
from gym_remote.vector import RemoteVectorEnv

__all__ = ["RemoteRslRlVecEnv", "RemoteTaskCfg", "split_threads"]

log = logging.getLogger(__name__)

#: Info keys that are gym-remote's bookkeeping, not the simulator's extras.
_OWN_KEYS = frozenset({"reset_in_step", "final_obs", "final_info"})


@dataclasses.dataclass(frozen=True)
class RemoteTaskCfg:
    """What the client knows of the remote task: rsl_rl's ``env.cfg`` (logged with the run).

    A dataclass, so rsl_rl's W&B and Neptune writers store it (they call ``dataclasses.asdict``).
    """

    #: The task the server serves (``"Isaac-Cartpole"``).
    task: str | None
    #: Sub-envs in the session.
    num_envs: int
    #: The client's ``task_kwargs`` (env-cfg attributes and Hydra overrides for Isaac Lab).
    task_kwargs: dict[str, Any]
    #: Steps per episode, the server's limit.
    max_episode_length: int
    #: No ``time_outs`` in extras, as Isaac Lab's ``cfg.is_finite_horizon`` (the server does not send it).
    is_finite_horizon: bool
    #: The server's metadata (backend, versions, physics engine, observation group).
    metadata: dict[str, Any]


class RemoteRslRlVecEnv(VecEnv):
    """An rsl_rl ``VecEnv`` whose sub-envs run on a gym-remote server (Isaac Lab's wrapper, remotely).

    Pass an existing :class:`RemoteVectorEnv` created with ``autoreset_mode="same_step"``, or the
    keyword arguments to create one (``num_envs``, ``host``, ``port``, ``task``, ``task_kwargs``,
    ``hosts``, ``connect_timeout``, ``max_episode_steps``...); ``autoreset_mode`` defaults to
    ``"same_step"``. The env made here is closed by :meth:`close`; one passed in is closed too, as
    Isaac Lab's wrapper closes the env it wraps.

    Args:
        venv: an open :class:`RemoteVectorEnv`, or ``None`` to make one from ``kwargs``.
        device: where the tensors given to the trainer live (``"cpu"``, ``"cuda:0"``); the server's
            device is its own.
        clip_actions: clamp actions to ``[-clip_actions, clip_actions]`` before sending them, and
            bound the action space to that box, as Isaac Lab's ``clip_actions`` (the agent cfg's).
        finite_horizon: the task is finite-horizon (Isaac Lab's ``cfg.is_finite_horizon``): extras get
            no ``time_outs``, so rsl_rl does not bootstrap truncations. The server does not send the
            flag; Isaac Lab's own tasks are infinite-horizon, the default.
        seed: the seed of the constructor's reset (sub-env ``i`` is seeded ``seed + i`` on servers
            that seed per sub-env; Isaac Lab seeds its one batched env with ``seed``).

    Raises:
        ValueError: ``clip_actions`` not a positive finite number; an autoreset mode other than
            ``same_step``; a server that reports no time limit and no ``max_episode_steps`` given.
        TypeError: ``venv`` and keyword arguments both given; an action space that is not a ``Box``.
        RemoteEnvError: (and its subclasses) from making the remote env or its first reset.

    Example:
        >>> from gym_remote.rsl_rl import RemoteRslRlVecEnv
        >>> from rsl_rl.runners import OnPolicyRunner
        >>> env = RemoteRslRlVecEnv(num_envs=256, host="gpu-box", port=5555, task="Isaac-Cartpole")  # doctest: +SKIP
        >>> OnPolicyRunner(env, agent_cfg_dict, device="cpu").learn(150, init_at_random_ep_len=True)  # doctest: +SKIP
    """

    def __init__(
        self,
        venv: RemoteVectorEnv | None = None,
        *,
        device: str | torch.device = "cpu",
        clip_actions: float | None = None,
        finite_horizon: bool = False,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        check_clip_actions(clip_actions)
        self._closed = True
        with front_end_venv(venv, kwargs) as venv:  # one made here is closed if this set-up fails
            self._adopt(venv, torch.device(device), clip_actions, finite_horizon, kwargs.get("max_episode_steps"))
            self.reset(seed=seed)  # rsl_rl's runner never resets: Isaac Lab's wrapper resets here too

    def _adopt(
        self,
        venv: RemoteVectorEnv,
        device: torch.device,
        clip_actions: float | None,
        finite_horizon: bool,
        max_episode_steps: int | None,
    ) -> None:
        # a wire name, or Gymnasium's AutoresetMode (its value "SameStep")
        if getattr(venv.autoreset_mode, "value", venv.autoreset_mode) not in ("same_step", "SameStep"):
            raise ValueError(
                f"rsl_rl needs autoreset_mode='same_step' (Isaac Lab resets inside step); the RemoteVectorEnv "
                f"uses {venv.autoreset_mode!r}"
            )
        action_space = venv.single_action_space
        if not isinstance(action_space, gym.spaces.Box):
            raise TypeError(f"rsl_rl acts in a Box action space; this task's is {action_space}")
        limit = max_episode_steps or venv.time_limit
        if not limit:
            raise ValueError(
                f"the server of {venv.task!r} reports no time limit, and rsl_rl needs max_episode_length: pass "
                "max_episode_steps=N (enforced by the server)"
            )
        #: The remote vector env (Isaac Lab's wrapper calls its env ``unwrapped``).
        self.venv = venv
        #: Sub-envs in the session.
        self.num_envs = venv.num_envs
        #: Where observations, rewards and dones are put; actions may come from any device.
        self.device = device
        #: Flat action size (``(num_envs, num_actions)`` actions).
        self.num_actions = gym.spaces.flatdim(action_space)
        #: Steps per episode, the server's limit (rsl_rl draws random episode lengths below it).
        self.max_episode_length = int(limit)
        #: Actions are clamped to ``[-clip_actions, clip_actions]`` when set.
        self.clip_actions = clip_actions
        self.cfg = RemoteTaskCfg(
            task=venv.task,
            num_envs=venv.num_envs,
            task_kwargs=dict(venv.task_kwargs or {}),
            max_episode_length=self.max_episode_length,
            is_finite_horizon=bool(finite_horizon),
            metadata={k: v for k, v in venv.metadata.items() if k != "autoreset_mode"},
        )
        self.single_action_space: gym.spaces.Box = action_space
        if clip_actions is not None:  # as Isaac Lab's wrapper: the box the clipped actions live in
            self.single_action_space = gym.spaces.Box(-clip_actions, clip_actions, (self.num_actions,), np.float32)
        self._action_dtype = action_space.dtype
        space = venv.single_observation_space
        #: The observation groups, in the order the server serves them.
        self.obs_groups: tuple[str, ...] = (
            tuple(space.spaces)
            if isinstance(space, gym.spaces.Dict)
            else (str(venv.metadata.get("observation_group") or "policy"),)
        )
        self.single_observation_space = (
            space if isinstance(space, gym.spaces.Dict) else gym.spaces.Dict({self.obs_groups[0]: space})
        )
        self._lengths = torch.zeros(self.num_envs, dtype=torch.long, device=device)
        self._partial_resets = True  # until the server refuses one (a DirectRLEnv)
        self._obs: TensorDict | None = None
        self._closed = False

    # ------------------------------------------------------------------------------ rsl_rl API

    @property
    def episode_length_buf(self) -> torch.Tensor:
        """The client's count of steps since each sub-env's last reset: ``(num_envs,)`` long on ``device``.

        ``+1`` per step, ``0`` where the step's ``dones`` is set; a sub-env whose count reaches
        ``max_episode_length`` ends its episode (truncated), as Isaac Lab's own buffer decides.
        """
        return self._lengths

    @episode_length_buf.setter
    def episode_length_buf(self, value: torch.Tensor) -> None:
        """Overwrite the counts (``OnPolicyRunner.learn(init_at_random_ep_len=True)`` does).

        Values are clamped to ``[0, max_episode_length - 1]``. Where the server's session keeps
        episode clocks (Isaac Lab's ``episode_length_buf``; ``"set_episode_lengths"`` in
        ``unwrapped.remote_methods``), they are written there too, in one round trip, and the
        simulator ends each episode inside its step as in-process. Elsewhere the client ends an
        episode whose count reaches ``max_episode_length`` first (see the module docstring).

        Raises:
            ValueError: ``value`` is not of shape ``(num_envs,)``.
            RemoteEnvError: the server refused or failed.
        """
        value = torch.as_tensor(value)
        if tuple(value.shape) != (self.num_envs,):
            raise ValueError(f"episode_length_buf takes shape ({self.num_envs},), not {tuple(value.shape)}")
        value = value.to(device=self.device, dtype=torch.long).clamp(0, self.max_episode_length - 1)
        if "set_episode_lengths" in self.venv.remote_methods:
            self.venv.set_episode_lengths(value.cpu().numpy())
        self._lengths = value.clone()

    def get_observations(self) -> TensorDict:
        """The latest observations (of the last ``step`` or ``reset``), without a round trip.

        Returns:
            A ``TensorDict`` of batch size ``(num_envs,)`` on ``device``: one entry per observation group.
        """
        self._check_open()
        assert self._obs is not None  # reset in the constructor
        return self._obs

    def reset(self, seed: int | None = None) -> tuple[TensorDict, dict[str, Any]]:
        """Reset every sub-env on the server (one round trip); the client's episode counts go to 0.

        Args:
            seed: reseed the server's env first (Isaac Lab: its one batched env; Gymnasium tasks:
                sub-env ``i`` with ``seed + i``); ``None`` keeps its random state.

        Returns:
            ``(observations, extras)``: the ``TensorDict`` as :meth:`get_observations`, and the
            server's reset info without gym-remote's bookkeeping keys.

        Raises:
            RemoteEnvError: the server failed or is unreachable (see :mod:`gym_remote.errors`).
        """
        self._check_open()
        obs, info = self.venv.reset(seed=seed)
        self._obs = self._tensordict(obs)
        self._lengths.zero_()
        return self._obs, self._extras(info)

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Step every sub-env once (one round trip); finished sub-envs are reset by the server.

        Args:
            actions: ``(num_envs, num_actions)`` tensor (any device and float dtype); clamped to
                ``clip_actions`` when set, then sent in the action space's dtype.

        Returns:
            ``(observations, rewards, dones, extras)``: a ``TensorDict`` as :meth:`get_observations`,
            rewards ``(num_envs,)`` float32, dones ``(num_envs,)`` long (terminated or truncated), and
            the server's extras: ``"log"`` (Isaac Lab's episode metrics, batch-level) and
            ``"time_outs"``, ``(num_envs,)`` bool, unless ``cfg.is_finite_horizon``. Tensors are on
            ``device``; a row that ended holds its next episode's first observation.

        Raises:
            ValueError: ``actions`` is not of shape ``(num_envs, num_actions)``.
            RemoteEnvError: the server failed or is unreachable (see :mod:`gym_remote.errors`).
        """
        self._check_open()
        actions = torch.as_tensor(actions)
        if tuple(actions.shape) != (self.num_envs, self.num_actions):
            raise ValueError(f"actions of shape {tuple(actions.shape)}; expected ({self.num_envs}, {self.num_actions})")
        if self.clip_actions is not None:
            actions = torch.clamp(actions, -self.clip_actions, self.clip_actions)
        sent = actions.detach().to("cpu").numpy().astype(self._action_dtype, copy=False)
        sent = sent.reshape((self.num_envs, *self.venv.single_action_space.shape))
        obs, reward, terminated, truncated, info = self.venv.step(sent)
        done = np.logical_or(terminated, truncated)
        self._lengths += 1
        late = (self._lengths >= self.max_episode_length).cpu().numpy() & ~done
        if late.any() and self._partial_resets:
            obs, truncated, info = self._end_episodes(late, obs, truncated, info)
            done = done | late
        self._obs = self._tensordict(obs)
        rewards = torch.tensor(reward, dtype=torch.float32, device=self.device)
        self._lengths[torch.as_tensor(done, device=self.device)] = 0
        done = torch.tensor(done, device=self.device)
        extras = self._extras(info)
        if not self.cfg.is_finite_horizon:
            extras["time_outs"] = torch.tensor(truncated, dtype=torch.bool, device=self.device)
        return self._obs, rewards, done.to(torch.long), extras

    def close(self) -> None:
        """Close the remote session (idempotent); later calls raise ``RemoteEnvError``."""
        if not self._closed:
            self._closed = True
            self.venv.close()

    def __enter__(self) -> RemoteRslRlVecEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def unwrapped(self) -> RemoteVectorEnv:
        """The remote vector env underneath (Isaac Lab's wrapper returns its Isaac Lab env here)."""
        return self.venv

    @property
    def action_space(self) -> gym.spaces.Box:
        """The batched action space (bounded to ``clip_actions`` when set)."""
        return gym.vector.utils.batch_space(self.single_action_space, self.num_envs)

    @property
    def observation_space(self) -> gym.spaces.Dict:
        """The batched observation space: a ``Dict`` of the observation groups."""
        return gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.cfg.task!r} x{self.num_envs} groups={list(self.obs_groups)}>"

    # ------------------------------------------------------------------------------ helpers

    def _check_open(self) -> None:
        if self._closed:
            raise RemoteEnvError(f"{type(self).__name__} is closed: make a new one")

    def _end_episodes(
        self, late: np.ndarray, obs: Any, truncated: np.ndarray, info: dict[str, Any]
    ) -> tuple[Any, np.ndarray, dict[str, Any]]:
        """Truncate the ``late`` rows (their count reached the limit first) and reset them on the server."""
        try:
            fresh, reset_info = self.venv.reset(options={"reset_mask": late})
        except BadRequestError as exc:  # a DirectRLEnv: its reset() takes no env_ids
            self._partial_resets = False
            log.warning("episode_length_buf counts only: %s cannot reset some sub-envs (%s)", self.cfg.task, exc)
            return obs, truncated, info
        obs = _take_rows(obs, fresh, late)
        truncated = truncated | late
        if "log" in reset_info and not np.any(info.get("_reset_in_step", False)):
            info = {**info, "log": reset_info["log"]}  # Isaac Lab's episode metrics of the rows just reset
        return obs, truncated, info

    def _tensordict(self, obs: Any) -> TensorDict:
        groups = obs if isinstance(obs, Mapping) else {self.obs_groups[0]: obs}
        return TensorDict(
            {k: _to_tensor(v, self.device) for k, v in groups.items()}, batch_size=[self.num_envs], device=self.device
        )

    def _extras(self, info: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in info.items() if not k.startswith("_") and k not in _OWN_KEYS}


def split_threads(runner: Any, *, rollout: int = 1, update: int | None = None) -> None:
    """Run ``runner``'s rollouts on ``rollout`` torch CPU threads and its updates on ``update``.

    With the simulator remote, a CPU trainer waits for every step. torch's OpenMP workers then either
    spin through the wait, taking a core from a server on the same machine, or fall asleep, and the
    next ``act`` pays for waking them: on the 2-core machine of ``docs/trainers.md``, a 32x32 MLP's
    forward on 1,024 rows took 8-11 ms after a 20 ms wait on 2 threads (libgomp's default), 0.5 ms on
    one, and 0.16 ms with no wait. A rollout's work per step is that small, so it runs on ``rollout``
    threads; the PPO update, the trainer's heavy work with no waits in it, runs on ``update``. This
    sets torch's process-wide thread count (``torch.set_num_threads``) now and around each update.

    Args:
        runner: an rsl_rl runner (``OnPolicyRunner``); its ``alg.update`` is wrapped.
        rollout: threads outside the updates (at least 1).
        update: threads during each update (default: ``torch.get_num_threads()`` now).

    Raises:
        ValueError: a thread count below 1.

    Example:
        >>> runner = OnPolicyRunner(env, agent_cfg, log_dir=None, device="cpu")  # doctest: +SKIP
        >>> split_threads(runner)  # doctest: +SKIP
        >>> runner.learn(100, init_at_random_ep_len=True)  # doctest: +SKIP
    """
    update = torch.get_num_threads() if update is None else update
    for name, value in (("rollout", rollout), ("update", update)):
        if type(value) is not int or value < 1:
            raise ValueError(f"split_threads({name}=...) takes an int >= 1, got {value!r}")
    inner = runner.alg.update

    @functools.wraps(inner)
    def update_on_more_threads(*args: Any, **kwargs: Any) -> Any:
        torch.set_num_threads(update)
        try:
            return inner(*args, **kwargs)
        finally:
            torch.set_num_threads(rollout)

    runner.alg.update = update_on_more_threads
    torch.set_num_threads(rollout)


def _to_tensor(value: Any, device: torch.device) -> Any:
    if isinstance(value, Mapping):
        return {k: _to_tensor(v, device) for k, v in value.items()}
    return torch.tensor(np.asarray(value), device=device)  # a copy: received frames are read-only


def _take_rows(obs: Any, fresh: Any, rows: np.ndarray) -> Any:
    """``obs`` with the ``rows`` of ``fresh`` (same structure: arrays, or dicts of them)."""
    if isinstance(obs, Mapping):
        return {k: _take_rows(v, fresh[k], rows) for k, v in obs.items()}
    out = np.array(obs)
    out[rows] = np.asarray(fresh)[rows]
    return out
