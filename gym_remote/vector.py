"""``RemoteVectorEnv``: a batch of remote sub-envs, one round trip per batched step.

A GPU simulator steps thousands of sub-envs in one process; over a network every round trip costs
milliseconds, so the whole batch travels in one request. Sub-envs may be spread over several
servers (``hosts=[...]``): every request is sent before any reply is awaited, so the servers step
concurrently, and the replies are merged in order. Autoreset happens on the server, in the mode
the client asked for.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import uuid
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

from gym_remote import __version__
from gym_remote.client import PROBE_TIMEOUT, Connection, parse_host_port
from gym_remote.env import DEFAULT_PORT, check_render_mode, client_metadata, start_server_for
from gym_remote.errors import RemoteEnvError
from gym_remote.protocol import PROTOCOL_VERSION, Kind
from gym_remote.spaces import needs_restore, restore_sample, space_from_dict, validate_action
from gym_remote.state import StateSchema

log = logging.getLogger(__name__)

_AUTORESET = getattr(gym.vector, "AutoresetMode", None)


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


def _slice_tree(tree: Any, start: int, stop: int) -> Any:
    if isinstance(tree, dict):
        return {k: _slice_tree(v, start, stop) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(_slice_tree(v, start, stop) for v in tree)
    return tree[start:stop]


def concat_batches(parts: Sequence[Any], counts: Sequence[int]) -> Any:
    """Concatenate batched obs or vector infos from several servers along the batch axis.

    Info keys that only some servers returned are filled with zeros (and ``False`` masks), as
    Gymnasium's own vector envs do for sub-envs that did not report a key.
    """
    if len(parts) == 1:
        return parts[0]
    first = next((p for p in parts if p is not None), None)
    if isinstance(first, dict):
        keys = list(dict.fromkeys(k for p in parts for k in p))
        out = {}
        for k in keys:
            present = [p[k] for p in parts if k in p]
            out[k] = concat_batches(
                [p[k] if k in p else _empty_like(present[0], n) for p, n in zip(parts, counts, strict=True)],
                counts,
            )
        return out
    if isinstance(first, tuple):
        return tuple(concat_batches([p[i] for p in parts], counts) for i in range(len(first)))
    arrays = [np.asarray(p) for p in parts]
    if any(a.ndim == 0 for a in arrays):  # a per-batch figure (e.g. Isaac Lab's info["log"]): not per sub-env
        return arrays[0]
    return np.concatenate(arrays, axis=0)


#: Spaces whose batch is a tuple with one sample per sub-env (Gymnasium's ``batch_space``).
_PER_ENV_TUPLES = (spaces.Graph, spaces.Sequence, spaces.OneOf, spaces.Text)


def slice_batch(space: spaces.Space, batch: Any, start: int, stop: int) -> Any:
    """Sub-envs ``start:stop`` of a batch of the single-env ``space`` (the inverse of concatenation)."""
    if isinstance(space, spaces.Dict):
        return {k: slice_batch(s, batch[k], start, stop) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(slice_batch(s, b, start, stop) for s, b in zip(space.spaces, batch, strict=True))
    return batch[start:stop]  # an array, or a tuple of one sample per sub-env


def concat_observations(space: spaces.Space, parts: Sequence[Any], counts: Sequence[int]) -> Any:
    """Concatenate batched observations of the single-env ``space`` from several servers, in order.

    Arrays are concatenated along the batch axis; Graph, Sequence, OneOf and Text batches are
    tuples of one sample per sub-env, so they are joined as tuples; Dict and Tuple recurse.
    """
    if len(parts) == 1:
        return parts[0]
    if isinstance(space, spaces.Dict):
        return {k: concat_observations(s, [p[k] for p in parts], counts) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(concat_observations(s, [p[i] for p in parts], counts) for i, s in enumerate(space.spaces))
    if isinstance(space, _PER_ENV_TUPLES):
        return tuple(x for p in parts for x in p)
    return np.concatenate([np.asarray(p) for p in parts], axis=0)


def _empty_like(example: Any, n: int) -> Any:
    if isinstance(example, dict):
        return {k: _empty_like(v, n) for k, v in example.items()}
    if isinstance(example, tuple):
        return tuple(_empty_like(v, n) for v in example)
    example = np.asarray(example)
    if example.dtype == object:
        return np.full(n, None, dtype=object)
    return np.zeros((n, *example.shape[1:]), dtype=example.dtype)


class _Shard:
    """One server's slice of the batch."""

    def __init__(self, conn: Connection, start: int, count: int, server: Any = None) -> None:
        self.conn, self.start, self.count, self.server = conn, start, count, server
        self.session: str | None = None
        self.info: dict[str, Any] = {}
        self.last: dict[str, Any] = {}  # the latest obs (and state) of this shard's sub-envs

    @property
    def name(self) -> str:
        return f"{self.conn.host}:{self.conn.port}"


class RemoteVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` remote sub-envs behind Gymnasium's ``VectorEnv`` API.

    Args:
        num_envs: total sub-envs, split as evenly as possible over ``hosts``.
        host, port: one server; ``host=None`` (and no ``hosts``) starts a local one.
        hosts: ``["host:port", ...]`` to fan out over several servers.
        autoreset_mode: ``"next_step"`` (Gymnasium's default), ``"same_step"`` or ``"disabled"``.
        max_episode_steps: per sub-env time limit, enforced on the server.
        with_state: attach the batched state (``[num_envs, D]``) to each reply (``last_state``).
        Other keywords are those of :class:`gym_remote.env.RemoteEnv`.
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
        autoreset_mode: str | Any = "next_step",
        max_episode_steps: int | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 120.0,
        retries: int = 2,
        render_mode: str | None = None,
        with_state: bool = False,
        curve_server_key: bytes | str | None = None,
        curve_public_key: bytes | str | None = None,
        curve_secret_key: bytes | str | None = None,
        launch: bool | dict[str, Any] = False,
        backend: str = "gymnasium",
        **launch_options: Any,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        if launch_options and not launch:
            raise TypeError(f"unexpected keyword arguments {sorted(launch_options)} (launch options need launch=True)")
        check_render_mode(render_mode)
        mode = autoreset_mode.name.lower() if _AUTORESET and isinstance(autoreset_mode, _AUTORESET) else autoreset_mode
        if mode not in ("next_step", "same_step", "disabled"):
            raise ValueError(f"autoreset_mode must be next_step, same_step or disabled, got {autoreset_mode!r}")
        self.num_envs = num_envs
        self.task = task
        self.task_kwargs = dict(task_kwargs or {})
        self.render_mode = render_mode
        self.with_state = with_state
        self.last_state: np.ndarray | None = None
        self._closed = False
        self._shards: list[_Shard] = []
        endpoints = [parse_host_port(h, DEFAULT_PORT) for h in hosts] if hosts else [(host, port)]
        if len(endpoints) > num_envs:
            raise ValueError(f"{len(endpoints)} hosts for {num_envs} sub-envs: some would serve none")
        try:
            start = 0
            for (h, p), count in zip(endpoints, _split(num_envs, len(endpoints)), strict=True):
                server = start_server_for(
                    h,
                    launch=launch,
                    backend=backend,
                    task=task,
                    task_kwargs=task_kwargs,
                    launch_options=launch_options,
                )
                if server is not None:
                    h, p = server.local_host, server.local_port
                conn = Connection(
                    str(h),
                    int(p),
                    timeout=timeout,
                    retries=retries,
                    curve_server_key=curve_server_key,
                    curve_public_key=curve_public_key,
                    curve_secret_key=curve_secret_key,
                    diagnostics=getattr(server, "log_tail", None),
                    probe_timeout=None if server is not None else PROBE_TIMEOUT,  # ours: seen READY
                )
                self._shards.append(_Shard(conn, start, count, server))
                start += count
            self._hello(mode, max_episode_steps, connect_timeout)
        except BaseException:
            self.close()
            raise

    # --------------------------------------------------------------------------- handshake

    def _hello(self, mode: str, max_episode_steps: int | None, connect_timeout: float) -> None:
        replies = self._all(
            Kind.HELLO,
            [
                {
                    "protocol": PROTOCOL_VERSION,
                    "client": f"gym-remote/{__version__} RemoteVectorEnv ({platform.node()})",
                    "hello_id": uuid.uuid4().hex,
                    "task": self.task,
                    "task_kwargs": self.task_kwargs,
                    "num_envs": shard.count,
                    "autoreset_mode": mode,
                    "render_mode": self.render_mode,
                    "max_episode_steps": max_episode_steps,
                }
                for shard in self._shards
            ],
            timeout=connect_timeout,
            with_session=False,
        )
        first = replies[0]
        for shard, reply in zip(self._shards, replies, strict=True):
            shard.session, shard.info = reply["session"], reply
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
        self.metadata["autoreset_mode"] = _AUTORESET[mode.upper()] if _AUTORESET is not None else mode
        schema = first.get("state_schema")
        self.state_schema = StateSchema.from_dict(schema) if schema else None
        self.autoreset_mode = mode
        log.info("vector env of %d over %s", self.num_envs, [s.name for s in self._shards])

    def _all(
        self, kind: Kind, bodies: Sequence[Any], timeout: float | None = None, with_session: bool = True
    ) -> list[Any]:
        """Send to every shard, then collect every reply: the servers work concurrently."""
        sent: list[_Shard] = []
        try:
            for shard, body in zip(self._shards, bodies, strict=True):
                shard.conn.send(kind, body, shard.session if with_session else None, timeout)
                sent.append(shard)
            return [shard.conn.recv(timeout) for shard in sent]
        except RemoteEnvError as exc:
            # Drain the others so their sockets stay usable, then name the failing server.
            for shard in sent:
                if shard.conn.pending:
                    with contextlib.suppress(RemoteEnvError):
                        shard.conn.recv(timeout)
            if len(self._shards) > 1 and exc.host is not None:
                exc.message = f"server {exc.host}:{exc.port} failed: {exc.message}"
                exc.args = (exc.message,)
            raise

    # ------------------------------------------------------------------------------ gym API

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if isinstance(seed, (int, np.integer)):
            super().reset(seed=int(seed))  # seeds self.np_random, as Gymnasium's vector envs do
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(self.num_envs)]  # as SyncVectorEnv seeds them
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} sub-envs")
        mask = None if options is None else options.get("reset_mask")
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (self.num_envs,):
                raise ValueError(f"reset_mask must have shape ({self.num_envs},), got {mask.shape}")
        bodies: list[dict[str, Any]] = []
        for shard in self._shards:
            sl = slice(shard.start, shard.start + shard.count)
            shard_options: dict[str, Any] | None = None if options is None else {**options}
            if mask is not None and shard_options is not None:
                shard_options["reset_mask"] = mask[sl]
            shard_seeds = seeds[sl]
            bodies.append(
                {
                    "seed": None if all(s is None for s in shard_seeds) else shard_seeds,
                    "options": shard_options,
                    "with_state": self.with_state,
                }
            )
        if mask is not None:  # a shard whose mask is all False is not asked at all
            active = [bool(b["options"]["reset_mask"].any()) for b in bodies]
            if not all(active):
                return self._reset_some(bodies, active)
        replies = self._all(Kind.RESET, bodies)
        return self._merge(replies, ("obs", "info"))

    def _reset_some(self, bodies: list[dict[str, Any]], active: list[bool]) -> tuple[Any, dict[str, Any]]:
        # Gymnasium requires a reset_mask to have at least one True per call, so only those shards go.
        shards = self._shards
        try:
            self._shards = [s for s, a in zip(shards, active, strict=True) if a]
            replies = self._all(Kind.RESET, [b for b, a in zip(bodies, active, strict=True) if a])
        finally:
            self._shards = shards
        if not replies:
            raise ValueError("reset_mask has no True entry")
        it = iter(replies)
        full = [next(it) if a else None for a in active]
        # Sub-envs not reset keep their current observation, as in Gymnasium's own vector envs.
        filled = [r if r is not None else {**s.last, "info": {}} for r, s in zip(full, shards, strict=True)]
        return self._merge(filled, ("obs", "info"))

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = validate_action(self.action_space, actions)
        bodies = [
            {
                "action": slice_batch(self.single_action_space, actions, s.start, s.start + s.count),
                "with_state": self.with_state,
            }
            for s in self._shards
        ]
        replies = self._all(Kind.STEP, bodies)
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
        return tuple(merged)

    def get_state(self) -> np.ndarray:
        """Batched state ``[num_envs, D]`` (laid out by :attr:`state_schema`)."""
        replies = self._all(Kind.GET_STATE, [None] * len(self._shards))
        return concat_batches([r["state"] for r in replies], [s.count for s in self._shards])

    def set_state(self, state: Any) -> None:
        self._all(
            Kind.SET_STATE,
            [{"state": _slice_tree(np.asarray(state), s.start, s.start + s.count)} for s in self._shards],
        )

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Allow-listed attributes or methods of every sub-env (see the server's allow-list)."""
        replies = self._all(Kind.CALL, [{"name": name, "args": list(args), "kwargs": kwargs}] * len(self._shards))
        return tuple(v for r in replies for v in r["value"])

    def get_attr(self, name: str) -> tuple[Any, ...]:
        return self.call(name)

    def render(self) -> Any:
        if self.render_mode is None:
            return None
        replies = self._all(Kind.RENDER, [None] * len(self._shards))
        frames: list[Any] = []
        for reply in replies:  # a tuple per sub-env (Gymnasium vector envs) or one frame (a simulator's)
            frame = reply["frame"]
            if frame is not None:
                frames.extend(frame if isinstance(frame, (tuple, list)) else (frame,))
        return tuple(frames)

    def close_extras(self, **kwargs: Any) -> None:
        if self._closed:
            return
        self._closed = True
        for shard in self._shards:
            if shard.session is not None:
                try:
                    shard.conn.request(Kind.CLOSE, session=shard.session, timeout=2.0)
                except RemoteEnvError as exc:
                    log.debug("closing session on %s: %s", shard.name, exc)
            shard.conn.close()
            if shard.server is not None:
                shard.server.close()

    def close(self, **kwargs: Any) -> None:
        self.close_extras(**kwargs)
        self.closed = True

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self.close()
