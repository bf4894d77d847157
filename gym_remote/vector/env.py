"""The :class:`RemoteVectorEnv` class: ``num_envs`` remote sub-envs, one round trip per batched step."""

from __future__ import annotations

import dataclasses
import logging
import warnings
import weakref
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

from gym_remote.async_batches import group_layout
from gym_remote.checks import (
    CLIENT_KEYWORDS,
    autoreset_mode_name,
    check_episode_lengths,
    check_reset_mask,
    check_vector_keywords,
    unexpected_keyword,
)
from gym_remote.client import parse_host_port
from gym_remote.client_session import ClientSession, ConnectOptions, ServerHandle, hello_body
from gym_remote.env import (
    DEFAULT_PORT,
    check_env_keywords,
    client_metadata,
    remote_methods,
    take_over,
    to_wire,
)
from gym_remote.errors import RemoteEnvError, SessionLostError, restated
from gym_remote.protocol import CLOCK_METHODS, Kind
from gym_remote.spaces import needs_restore, restore_sample, space_from_dict, validate_action
from gym_remote.state import StateSchema
from gym_remote.vector.batches import _slice_tree, concat_batches, concat_observations, slice_batch
from gym_remote.vector.shards import Shards, _Shard

log = logging.getLogger("gym_remote.vector")

_AUTORESET = getattr(gym.vector, "AutoresetMode", None)


class RemoteVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` remote sub-envs behind Gymnasium's ``VectorEnv`` API.

    The sessions (one per server, or per group) and the requests in flight on them are one
    :class:`~gym_remote.vector.shards.Shards`; this class turns Gymnasium's calls into its requests
    and their replies into batches.

    Args:
        num_envs: total sub-envs, split as evenly as possible over ``hosts``.
        host, port: one server; ``host=None`` (and no ``hosts``) starts a local one.
        hosts: ``["host:port", ...]`` to fan out over several servers.
        autoreset_mode: Gymnasium's ``AutoresetMode`` (``NEXT_STEP`` by default, ``SAME_STEP``, ``DISABLED``),
            its value (``"SameStep"``) or ``"next_step"``, ``"same_step"``, ``"disabled"``; kept as the enum in
            :attr:`autoreset_mode` and ``metadata["autoreset_mode"]``, as ``SyncVectorEnv`` keeps it.
        max_episode_steps: per sub-env time limit, enforced on the server.
        with_state: attach the batched state (``[num_envs, D]``) to each reply (``last_state``).
        batch_size: split the sub-envs into groups of this many, each its own session (dealt over
            ``hosts`` round-robin), for EnvPool's async API: ``async_reset``, ``send(actions, env_ids)``,
            ``recv()`` (see :mod:`gym_remote.async_batches`). ``step`` and ``reset`` still step every group.
        Other keywords are those of :class:`gym_remote.env.RemoteEnv`.

    Example:
        Three CartPoles in one batched session of a local server, one round trip per step:

        >>> import gymnasium as gym
        >>> import gym_remote
        >>> envs = gym.make_vec("Remote-IsaacSim-v0", num_envs=3, task="CartPole-v1")
        >>> envs.single_observation_space.shape, envs.num_envs
        ((4,), 3)
        >>> obs, infos = envs.reset(seed=42)
        >>> local = gym.make_vec("CartPole-v1", num_envs=3, vectorization_mode="sync")
        >>> bool((obs == local.reset(seed=42)[0]).all())
        True
        >>> obs, rewards, terminations, truncations, infos = envs.step([0, 1, 1])
        >>> rewards, terminations
        (array([1., 1., 1.]), array([False, False, False]))
        >>> envs.close(); local.close()
    """

    def __init__(
        self,
        num_envs: int = 1,
        host: str | None = None,
        port: int = DEFAULT_PORT,
        task: str | None = None,
        task_kwargs: dict[str, Any] | None = None,
        *,
        hosts: Sequence[str] | None = None,
        servers: Sequence[ServerHandle] | None = None,
        options: ConnectOptions | None = None,
        autoreset_mode: str | Any = "next_step",
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        with_state: bool = False,
        batch_size: int | None = None,
        **deprecated: Any,
    ) -> None:
        if isinstance(servers, int) and not isinstance(servers, bool):  # launch="ray"'s count of servers
            deprecated["servers"], servers = servers, None
        stray = [k for k in deprecated if k not in ConnectOptions.fields() and k not in ("launch", "backend")]
        if stray and not deprecated.get("launch"):  # a misspelling, not an old keyword: Python's own error
            known = CLIENT_KEYWORDS | {"options", "servers", "hosts", "num_envs", "autoreset_mode", "batch_size"}
            raise unexpected_keyword("RemoteVectorEnv", stray[0], known)
        if deprecated or (host is None and not hosts and not servers):
            # Until 0.2 the class took gym.make_vec's flat keywords and started servers itself.
            warnings.warn(
                "RemoteVectorEnv(timeout=..., launch=..., host=None, ...) is deprecated: pass "
                "options=ConnectOptions(...) and servers=[<started servers' handles>], or call "
                "gym.make_vec('Remote-IsaacSim-v0', ...), which takes the flat keywords",
                DeprecationWarning,
                stacklevel=2,
            )
            from gym_remote.entry import make_vector_env  # the one place flat keywords are folded

            keywords = dict(
                hosts=hosts,
                autoreset_mode=autoreset_mode,
                max_episode_steps=max_episode_steps,
                render_mode=render_mode,
                with_state=with_state,
                batch_size=batch_size,
            )
            if options is not None:
                keywords.update(dataclasses.asdict(options))
            made = make_vector_env(num_envs, host, port, task, task_kwargs, **keywords, **deprecated)
            take_over(self, made)
            return
        check_vector_keywords("RemoteVectorEnv", num_envs=num_envs, hosts=hosts)
        check_env_keywords(
            "RemoteVectorEnv",
            options,
            host=host,
            port=port,
            task=task,
            task_kwargs=task_kwargs,
            render_mode=render_mode,
            with_state=with_state,
            max_episode_steps=max_episode_steps,
        )
        if servers is not None and (
            isinstance(servers, (str, bytes)) or not all(isinstance(s, ServerHandle) for s in servers) or not servers
        ):
            raise TypeError(
                "RemoteVectorEnv(servers=...) takes a non-empty list of started servers' handles (local_host, "
                f"local_port, endpoint, log_tail(), close()), got {servers!r}"
            )
        if servers and (hosts or host is not None):
            raise TypeError("RemoteVectorEnv: give servers=[...] or host/hosts, not both")
        mode = autoreset_mode_name(autoreset_mode)
        self.num_envs = num_envs
        self.task = task
        self.task_kwargs = dict(task_kwargs or {})
        self.render_mode = render_mode
        self.with_state = with_state
        self.last_state: np.ndarray | None = None
        #: The sessions and what is in flight on them.
        self._shards = Shards()
        #: Why ``step()`` is refused until ``reset()``: a fan-out step that some servers took and others failed.
        self._torn: str | None = None
        # Every session this env opens is closed by close(), or when the env is garbage-collected
        # (Gymnasium 1.4's VectorEnv no longer closes itself then): the finalizer holds the shards,
        # never the env. The servers it was given are each closed with their first group's session.
        self._finalizer = weakref.finalize(self, self._shards.close)
        given = list(servers or ())
        endpoints = (
            [(s.local_host, s.local_port) for s in given]
            if given
            else [parse_host_port(h, DEFAULT_PORT) for h in hosts]
            if hosts
            else [(host, port)]
        )
        #: Sub-envs per group (``None``: one group per server).
        self.batch_size = batch_size
        self.options = options or ConnectOptions()
        self._mode = mode  # the wire name, for comparisons here
        #: Gymnasium's ``AutoresetMode`` (the wire name on Gymnasium releases without the enum).
        self.autoreset_mode: Any = _AUTORESET[mode.upper()] if _AUTORESET else mode
        self._recover_in_step = False  # the deprecated recover_in_step
        try:
            layout = group_layout(num_envs, len(endpoints), batch_size)
            adopted: set[int] = set()  # endpoints whose server a session holds (closed with it)
            for index, count in layout:
                h, p = endpoints[index]
                server = given[index] if given else None
                owner = server is not None and index not in adopted
                adopted.add(index)
                hello = hello_body(
                    "RemoteVectorEnv",
                    task=task,
                    task_kwargs=self.task_kwargs,
                    num_envs=count,
                    autoreset_mode=mode,
                    render_mode=render_mode,
                    max_episode_steps=max_episode_steps,
                )
                conn = self.options.connect(str(h), int(p), server)
                link = ClientSession(conn, hello, self.options.connect_timeout, server if owner else None)
                self._shards.add(link, count)
            self._apply_hello(self._shards.open())
        except BaseException:
            self.close()
            for server in given:  # those not yet handed to a session (closing is idempotent)
                server.close()
            raise

    # --------------------------------------------------------------------------- handshake

    def _apply_hello(self, replies: list[dict[str, Any]]) -> None:
        first = replies[0]
        for shard, reply in zip(self._shards, replies, strict=True):
            if reply["observation_space"].get("type") != first["observation_space"].get("type") or reply.get(
                "task"
            ) != first.get("task"):
                raise RemoteEnvError(f"server {shard.name} serves {reply.get('task')}, not {first.get('task')}")
        self.task = first.get("task") or self.task
        self.single_observation_space = space_from_dict(first["observation_space"])
        self.single_action_space = space_from_dict(first["action_space"])
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._restore_obs = needs_restore(self.observation_space)  # a Graph arrives as a plain tuple
        self.metadata = client_metadata(first.get("metadata"))
        self.metadata["autoreset_mode"] = self.autoreset_mode
        self._methods = remote_methods(first)
        schema = first.get("state_schema")
        self.state_schema = StateSchema.from_dict(schema) if schema else None
        log.info("vector env of %d over %s", self.num_envs, [s.name for s in self._shards])

    # ------------------------------------------------------------------------------ gym API

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        self._shards.check_idle("reset")
        if isinstance(seed, (int, np.integer)):
            super().reset(seed=int(seed))  # seeds self.np_random, as Gymnasium's vector envs do
        seeds = self._seeds(seed)
        mask = None if options is None else options.get("reset_mask")
        if options is not None and "reset_mask" in options:  # as SyncVectorEnv: TypeError or ValueError
            check_reset_mask(mask, self.num_envs, TypeError, ValueError)
        bodies: list[dict[str, Any]] = []
        for shard in self._shards:
            sl = slice(shard.start, shard.start + shard.count)
            shard_options: dict[str, Any] | None = None if options is None else {**options}
            if mask is not None and shard_options is not None:
                shard_options["reset_mask"] = mask[sl]
            bodies.append(self._reset_body(seeds[sl], shard_options))
        if mask is not None:  # a shard whose mask is all False is not asked at all
            active = [bool(b["options"]["reset_mask"].any()) for b in bodies]
            if not all(active):
                return self._reset_some(bodies, active)
        replies = self._reset_shards(self._shards, bodies)
        self._torn = None  # every sub-env starts anew: the shards are in phase again
        return self._merge(replies, ("obs", "info"))

    def _seeds(self, seed: int | Sequence[int | None] | None) -> list[int | None]:
        """One seed per sub-env: sub-env *i* gets ``seed + i``, as ``SyncVectorEnv`` seeds them."""
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} sub-envs")
        return seeds

    def _reset_body(self, seeds: list[int | None], options: dict[str, Any] | None) -> dict[str, Any]:
        """One shard's RESET body: its sub-envs' seeds (``None`` when none is seeded) and ``options``."""
        return {
            "seed": None if all(s is None for s in seeds) else seeds,
            "options": options,
            "with_state": self.with_state,
        }

    def _reset_shards(self, shards: Sequence[_Shard], bodies: Sequence[Any]) -> list[Any]:
        """RESET ``shards``; sessions the servers forgot are re-opened first, or on the way (once)."""
        lost = [s for s in shards if s.link.lost]
        if lost:
            self._shards.open(lost)
        try:
            return self._shards.request(Kind.RESET, bodies, shards)
        except SessionLostError:  # found lost by this very reset: a reset is safe to repeat
            self._shards.open([s for s in shards if s.link.lost])
            return self._shards.request(Kind.RESET, bodies, shards)

    def _reset_some(self, bodies: list[dict[str, Any]], active: list[bool]) -> tuple[Any, dict[str, Any]]:
        # Gymnasium requires a reset_mask to have at least one True per call, so only those shards go.
        shards = self._shards
        replies = self._reset_shards(
            [s for s, a in zip(shards, active, strict=True) if a], [b for b, a in zip(bodies, active, strict=True) if a]
        )
        if not replies:
            raise ValueError("reset_mask has no True entry")
        it = iter(replies)
        full = [next(it) if a else None for a in active]
        # Sub-envs not reset keep their current observation, as in Gymnasium's own vector envs.
        filled = [r if r is not None else {**s.last, "info": {}} for r, s in zip(full, shards, strict=True)]
        return self._merge(filled, ("obs", "info"))

    def step(
        self, actions: Any, *, on_lost_session: str | None = None
    ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-env: one request per server, all sent before any reply is awaited.

        Args:
            actions: one action per sub-env, batched as :attr:`action_space`.
            on_lost_session: what a server that forgot its session (it restarted, or expired the
                session) means for this step: ``"raise"`` (the default) raises
                :class:`~gym_remote.errors.SessionLostError` and ``reset()`` opens a new session;
                ``"restart"`` (SAME_STEP mode only; the SB3 front end passes it) opens and resets a
                new one at once and reports its sub-envs truncated, ``final_obs`` their last
                observation.

        Returns:
            ``(obs, reward, terminated, truncated, info)`` batched as ``SyncVectorEnv`` returns them:
            rewards ``float64``, flags ``bool``, of shape ``(num_envs,)``.

        Raises:
            RemoteEnvError: groups are in flight (``recv()`` them first), an earlier step was torn
                (``reset()`` first), or the env is closed; of the failure's class when some servers
                stepped and others failed (their transitions are on its ``partial``).
            SessionLostError: a server forgot its session (unless ``on_lost_session="restart"``).
            ValueError: ``on_lost_session`` is neither, or ``"restart"`` outside SAME_STEP mode.
        """
        self._shards.check_idle("step")
        if self._torn is not None:
            raise RemoteEnvError(f"{self._torn}; call reset() first")
        if not isinstance(actions, (dict, tuple, list)) and np.ndim(actions) == 0:  # as SyncVectorEnv's iterate
            raise TypeError(f"a vector env takes one action per sub-env, got the single value {actions!r}")
        if on_lost_session is not None:
            self._restarts(on_lost_session)  # checked now, not when a session is lost
        actions = validate_action(self.action_space, actions)
        one = self._shards.only
        if one is not None:
            return self._step_one(one, actions, on_lost_session)
        bodies = [
            {
                "action": slice_batch(self.single_action_space, actions, s.start, s.start + s.count),
                "with_state": self.with_state,
            }
            for s in self._shards
        ]
        results = self._shards.gather(Kind.STEP, bodies)
        if any(isinstance(r, SessionLostError) for r in results) and self._restarts(on_lost_session):
            for i, (shard, result) in enumerate(zip(self._shards, results, strict=True)):
                if isinstance(result, SessionLostError):
                    results[i] = self._shards.restart(shard, self.with_state, self.single_observation_space)
        self._fail_torn_step(results)
        replies = self._shards.raise_first(results)
        obs, reward, terminated, truncated, info = self._merge(
            replies, ("obs", "reward", "terminated", "truncated", "info")
        )
        return (
            obs,
            np.asarray(reward, np.float64),
            np.asarray(terminated, bool),
            np.asarray(truncated, bool),
            info,
        )

    def _restarts(self, on_lost_session: str | None) -> bool:
        """Whether a step restarts a lost session (``on_lost_session``, or the deprecated :attr:`recover_in_step`).

        Raises:
            ValueError: ``on_lost_session`` is neither ``"raise"`` nor ``"restart"``, or ``"restart"``
                in another mode than SAME_STEP (a NEXT_STEP step has no ``final_obs`` to report).
        """
        if on_lost_session is None:
            return self._recover_in_step and self._mode == "same_step"
        if on_lost_session not in ("raise", "restart"):
            raise ValueError(f"on_lost_session must be 'raise' or 'restart', got {on_lost_session!r}")
        if on_lost_session == "restart" and self._mode != "same_step":
            raise ValueError(
                f"on_lost_session='restart' reports the lost sub-envs' final_obs, which needs "
                f"autoreset_mode='same_step'; this env uses {self._mode!r}"
            )
        return on_lost_session == "restart"

    @property
    def recover_in_step(self) -> bool:
        """Deprecated: whether ``step()`` restarts a lost session by default; pass
        ``step(actions, on_lost_session="restart")`` instead."""
        return self._recover_in_step

    @recover_in_step.setter
    def recover_in_step(self, value: bool) -> None:
        warnings.warn(
            "RemoteVectorEnv.recover_in_step is deprecated: pass step(actions, on_lost_session='restart')",
            DeprecationWarning,
            stacklevel=2,
        )
        self._recover_in_step = bool(value)

    def _fail_torn_step(self, results: list[Any]) -> None:
        """Raise when some shards failed a step that others took; the env then refuses ``step()`` until ``reset()``.

        The healthy servers have stepped: their sub-envs moved on (and may have ended their episode)
        while the failed ones did not, so a later ``step()`` would go on out of phase and lose those
        transitions. They travel on the error instead, as ``partial``: ``{(start, stop): reply}`` per
        healthy shard (sub-envs ``start:stop``; ``reply`` holds ``obs``, ``reward``, ``terminated``,
        ``truncated``, ``info``).

        Raises:
            RemoteEnvError: of the first failure's class, naming the failed and the stepped servers.
        """
        failed = [(sh, r) for sh, r in zip(self._shards, results, strict=True) if isinstance(r, RemoteEnvError)]
        if not failed or len(failed) == len(self._shards):
            return
        stepped = {
            (sh.start, sh.start + sh.count): r
            for sh, r in zip(self._shards, results, strict=True)
            if not isinstance(r, RemoteEnvError)
        }
        first_shard, first = failed[0]
        names = ", ".join(sh.name for sh, _ in failed)
        took = ", ".join(f"sub-envs {a}-{b - 1}" for a, b in stepped)
        self._torn = (
            f"a step failed on {names} after {took} on the other servers had stepped: the sub-envs are out of "
            "phase, so step() is refused until reset()"
        )
        error = restated(
            first,
            f"server {first_shard.name} failed: {first.message}; {self._torn} (their transitions are on this "
            "error's `partial`)",
        )
        error.partial = stepped  # type: ignore[attr-defined]
        raise error from first

    def _step_one(
        self, shard: _Shard, actions: Any, on_lost_session: str | None
    ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """``step`` with one shard: what ``Shards.gather``, ``Shards.raise_first`` and ``_merge`` do
        for one reply, without their per-shard lists and concatenations."""
        self._shards.check_open()
        link = shard.link
        action = slice_batch(self.single_action_space, actions, 0, shard.count)
        try:
            link.send(Kind.STEP, {"action": action, "with_state": self.with_state})
            reply = link.recv()
        except SessionLostError:
            if not self._restarts(on_lost_session):
                raise
            reply = self._shards.restart(shard, self.with_state, self.single_observation_space)
        return self._step_result(shard, reply, self.observation_space)

    def _step_result(
        self, shard: _Shard, reply: dict[str, Any], space: spaces.Space
    ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One shard's step reply as ``step`` returns it: rewards float64, flags bool (no copy when the
        server sent those dtypes)."""
        return (
            self._take_obs(shard, reply, space),
            np.asarray(reply["reward"], np.float64),
            np.asarray(reply["terminated"], bool),
            np.asarray(reply["truncated"], bool),
            self._restore_info(reply["info"]),
        )

    def _restore_info(self, info: dict[str, Any]) -> dict[str, Any]:
        """``info`` with its SAME_STEP ``final_obs`` rows rebuilt as the observation space's samples
        (a ``GraphInstance`` arrives as a plain tuple, in ``final_obs`` as in the observations)."""
        final = info.get("final_obs") if self._restore_obs else None
        if not isinstance(final, np.ndarray) or final.dtype != object:
            return info
        rows = np.empty(len(final), dtype=object)
        rows[:] = [None if x is None else restore_sample(self.single_observation_space, x) for x in final]
        return {**info, "final_obs": rows}

    def _take_obs(self, shard: _Shard, reply: dict[str, Any], space: spaces.Space) -> Any:
        """One shard's observation batch from its reply, as in ``space``; records the shard's last
        observation and state (and ``last_state``)."""
        obs, state = reply["obs"], reply.get("state")
        shard.last = {"obs": obs, "state": state}
        if self.with_state:
            self.last_state = state
        return restore_sample(space, obs) if self._restore_obs else obs

    def _merge(self, replies: list[dict[str, Any]], keys: tuple[str, ...]) -> Any:
        counts = [s.count for s in self._shards]
        for shard, reply in zip(self._shards, replies, strict=True):
            shard.last = {"obs": reply["obs"], "state": reply.get("state")}
        if self.with_state:  # None rather than a stale state when a shard sent none
            states = [r.get("state") for r in replies]
            self.last_state = None if any(s is None for s in states) else concat_batches(states, counts)
        merged = [
            concat_observations(self.single_observation_space, [r[k] for r in replies], counts)
            if k == "obs"
            else concat_batches([r[k] for r in replies], counts)
            for k in keys
        ]
        if self._restore_obs and keys[0] == "obs":
            merged[0] = restore_sample(self.observation_space, merged[0])
        if keys[-1] == "info":
            merged[-1] = self._restore_info(merged[-1])
        return tuple(merged)

    def get_state(self) -> np.ndarray:
        """Batched state ``[num_envs, D]`` (laid out by :attr:`state_schema`)."""
        replies = self._shards.request(Kind.GET_STATE, [None] * len(self._shards))
        return concat_batches([r["state"] for r in replies], [s.count for s in self._shards])

    def set_state(self, state: Any) -> dict[str, Any] | None:
        """Set every sub-env's state (``(num_envs, state_schema.size)``); what could not be restored
        on any server comes back as ``{"not_restored": [names]}``, else ``None``."""
        replies = self._shards.request(
            Kind.SET_STATE,
            [{"state": _slice_tree(np.asarray(state), s.start, s.start + s.count)} for s in self._shards],
        )
        missed = sorted({name for r in replies if r for name in r.get("not_restored", ())})
        return {"not_restored": missed} if missed else None

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Allow-listed attributes or methods of every sub-env (see the server's allow-list).

        A goal-conditioned env's ``compute_reward``/``compute_terminated``/``compute_truncated``
        (listed in :attr:`remote_methods`) run on the server with ``args`` and ``kwargs``, once per
        sub-env as ``SyncVectorEnv.call`` runs them: batches of goals in, one result per sub-env out.
        Object arrays among the arguments (SB3's HER passes its infos as one) travel element by element.
        """
        if name in CLOCK_METHODS:  # one slice of the counts per server, not the same arguments to each
            raise AttributeError(f"call({name!r}) is set_episode_lengths(lengths): call that")
        body = {"name": name, "args": to_wire(list(args)), "kwargs": to_wire(kwargs)}
        replies = self._shards.request(Kind.CALL, [body] * len(self._shards))
        return tuple(v for r in replies for v in r["value"])

    @property
    def remote_methods(self) -> tuple[str, ...]:
        """The methods the server's env has: goal-conditioned ones (:meth:`call` reaches them) and
        ``set_episode_lengths`` (:meth:`set_episode_lengths`)."""
        return self._methods

    @property
    def time_limit(self) -> int | None:
        """Steps per episode that the servers enforce on each sub-env (the smallest over servers, from
        their HELLO replies), or ``None`` when none reports one."""
        limits = [s.link.info.get("max_episode_steps") for s in self._shards]
        limits = [x for x in limits if type(x) is int and x > 0]
        return min(limits) if limits else None

    def set_episode_lengths(self, lengths: Any) -> None:
        """Write each sub-env's count of steps since its reset on the servers (one round trip each).

        What a trainer's random start does in-process (rsl_rl's ``init_at_random_ep_len`` writes
        Isaac Lab's ``episode_length_buf``): the simulator then ends each episode when its count
        reaches its time limit (:attr:`time_limit`), inside its own step (``truncated``).

        Args:
            lengths: ``(num_envs,)`` integers in ``[0, time_limit]``.

        Raises:
            AttributeError: the servers' sessions keep no such counts (``"set_episode_lengths"`` is
                not in :attr:`remote_methods`; Isaac Lab's batched sessions have them).
            TypeError, ValueError: ``lengths`` is not an integer array of shape ``(num_envs,)``, or a
                count is out of range.
            RemoteEnvError: a server refused or failed (see :mod:`gym_remote.errors`).
        """
        if "set_episode_lengths" not in self._methods:
            raise AttributeError(
                f"the server's env ({self.task}) keeps no episode step counts a client may write; "
                f"its methods: {list(self._methods)}"
            )
        values = check_episode_lengths(lengths, self.num_envs, self.time_limit, TypeError, ValueError)
        self._shards.check_idle("set_episode_lengths")
        bodies = [
            {"name": "set_episode_lengths", "args": [values[s.start : s.start + s.count]], "kwargs": {}}
            for s in self._shards
        ]
        self._shards.request(Kind.CALL, bodies)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        return self.call(name)

    def set_attr(self, name: str, values: Any) -> None:
        """Refused on purpose: a client never writes the server envs' attributes (no remote writes; the
        one narrow write a session may offer is :meth:`set_episode_lengths`).

        Raises:
            AttributeError: always, naming what to do instead.
        """
        raise AttributeError(
            f"set_attr({name!r}, ...) is refused on purpose: remote envs' attributes are not written over the network; "
            "pass settings as task_kwargs when making the env, or reset options (episode step counts: "
            "set_episode_lengths)"
        )

    @property
    def np_random_seed(self) -> tuple[int, ...]:  # type: ignore[override]
        """Each sub-env's seed, as ``SyncVectorEnv.np_random_seed`` gives it (128-bit ints when unseeded)."""
        return self.call("np_random_seed")

    def render(self) -> Any:
        if self.render_mode is None:
            return None
        replies = self._shards.request(Kind.RENDER, [None] * len(self._shards))
        frames: list[Any] = []
        for reply in replies:  # a tuple per sub-env (Gymnasium vector envs) or one frame (a simulator's)
            frame = reply["frame"]
            if frame is not None:
                frames.extend(frame if isinstance(frame, (tuple, list)) else (frame,))
        return tuple(frames)

    # ------------------------------------------------------------- EnvPool's async API

    @property
    def in_flight(self) -> int:
        """How many groups have a request out whose results :meth:`recv` has not returned yet."""
        return self._shards.in_flight

    def async_reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> None:
        """Reset every group without waiting; :meth:`recv` returns each group's observations.

        Seeds are those of ``reset``: sub-env *i* gets ``seed + i``. ``recv`` then reports rewards of
        0 and no terminations for these groups, and the reset ``info``.

        Raises:
            RemoteEnvError: a group is already in flight, or the env is closed.
        """
        self._shards.check_open()
        self._shards.check_idle("async_reset")
        seeds = self._seeds(seed)
        lost = [s for s in self._shards if s.link.lost]
        if lost:
            self._shards.open(lost)
        self._shards.send(
            Kind.RESET,
            [
                (shard, self._reset_body(seeds[shard.start : shard.start + shard.count], options))
                for shard in self._shards
            ],
        )

    def send(self, actions: Any, env_ids: Any = None) -> None:
        """Send the actions of one or more whole groups; do not wait.

        Args:
            actions: a batch of actions for ``env_ids``, in their order (``len(env_ids)`` rows).
            env_ids: sub-env indices, whole groups each in ascending order (as :meth:`recv` returns
                them); ``None``: those of the latest :meth:`recv`.

        Raises:
            ValueError: ``env_ids`` are not whole groups, or the actions do not fit.
            RemoteEnvError: a group is already in flight, or the env is closed.
        """
        self._shards.check_open()
        ids = self._shards.last_ids if env_ids is None else np.asarray(env_ids)
        if ids is None:
            raise ValueError("send() without env_ids needs a recv() first: pass the env_ids of the groups")
        groups = self._shards.groups_of(ids)
        single = self.single_action_space
        actions = validate_action(self._shards.batched(single, len(ids)), actions)
        parts = [actions] if len(groups) == 1 else [slice_batch(single, actions, o, o + g.count) for g, o in groups]
        bodies = [{"action": part, "with_state": self.with_state} for part in parts]
        self._shards.send(Kind.STEP, [(g, body) for (g, _), body in zip(groups, bodies, strict=True)])

    def recv(
        self, timeout: float | None = None
    ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any], np.ndarray]:
        """The results of the first group in flight to arrive (the oldest first when several have).

        Returns:
            ``(obs, reward, terminated, truncated, info, env_ids)`` for the group's sub-envs: batched
            as ``step`` returns them (reward ``float64``, flags ``bool``), ``env_ids`` ``int32``.

        Raises:
            RemoteEnvError: nothing is in flight, or the env is closed.
            RemoteTimeoutError: no group answered within ``timeout`` (default: the env's ``timeout``).
            SessionLostError, ServerError: as for ``step``, for the group that failed.
        """
        request, reply = self._shards.recv(timeout)
        shard = request.shard
        n, space = shard.count, self._shards.batched(self.single_observation_space, shard.count)
        if request.kind is Kind.RESET:
            obs = self._take_obs(shard, reply, space)
            return obs, np.zeros(n), np.zeros(n, bool), np.zeros(n, bool), reply["info"], shard.env_ids
        return (*self._step_result(shard, reply, space), shard.env_ids)

    # ------------------------------------------------------------------------------ closing

    def close_extras(self, **kwargs: Any) -> None:
        """Close every session, socket and server this env started (``close()`` calls it once); the
        requests of groups in flight are abandoned, their replies not awaited.

        Also done when the env is garbage-collected without ``close()``.
        """
        finalizer = self.__dict__.get("_finalizer")
        if finalizer is not None:
            finalizer()  # runs once: later calls, and the collection, do nothing
