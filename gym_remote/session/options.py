"""What a client asks for at HELLO (:class:`SessionOptions`, checked once there) and which task it gets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gym_remote.checks import AUTORESET_MODES, autoreset_mode_name
from gym_remote.errors import BadRequestError, clip
from gym_remote.session.limits import SessionLimits

__all__ = ["AUTORESET_MODES", "MAX_TASK_CHARS", "SessionOptions", "choose_task"]


#: Longest task id a client may name.
MAX_TASK_CHARS = 256


@dataclass
class SessionOptions:
    """What a client asked for at HELLO."""

    task: str | None = None
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    num_envs: int | None = None  # None: a single env (RemoteEnv); N: a batch (RemoteVectorEnv)
    autoreset_mode: str = "next_step"
    render_mode: str | None = None
    max_episode_steps: int | None = None
    #: The server's limits on what a client may ask for (checked by ``from_hello`` and ``choose_task``).
    limits: SessionLimits = field(default_factory=SessionLimits)

    @classmethod
    def from_hello(cls, body: dict[str, Any], limits: SessionLimits | None = None) -> SessionOptions:
        """The options of a HELLO body, checked for types and against ``limits``.

        Raises:
            BadRequestError: a field of the wrong type or value, or past a limit (named, with the
                serve option that raises it).
        """
        limits = limits or SessionLimits()
        task = body.get("task")
        if task is not None and not isinstance(task, str):
            raise BadRequestError(f"task must be a string, got {type(task).__name__}")
        if task is not None and len(task) > MAX_TASK_CHARS:
            raise BadRequestError(f"a task id of {len(task)} characters is longer than {MAX_TASK_CHARS}")
        kwargs = body.get("task_kwargs") or {}
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise BadRequestError("task_kwargs must be a map with string keys")
        num_envs = body.get("num_envs")
        if num_envs is not None and (type(num_envs) is not int or num_envs < 1):
            raise BadRequestError(f"num_envs must be a positive integer, got {clip(repr(num_envs), 100)}")
        # Gymnasium's values ("SameStep") are the wire names' synonyms, for clients other than ours.
        mode = autoreset_mode_name(body.get("autoreset_mode", "next_step"), BadRequestError)
        render_mode = body.get("render_mode")
        if render_mode is not None and not isinstance(render_mode, str):
            raise BadRequestError("render_mode must be a string or None")
        steps = body.get("max_episode_steps")
        if steps is not None and (type(steps) is not int or steps < 1):
            raise BadRequestError(f"max_episode_steps must be a positive integer, got {clip(repr(steps), 100)}")
        opts = cls(task, dict(kwargs), num_envs, mode, render_mode, steps, limits)
        limits.check_size(opts)
        return opts


def choose_task(
    opts: SessionOptions,
    default: str | None,
    allow_any_task: bool,
    server_keys: frozenset[str] = frozenset(),
    check_allowed: bool = True,
) -> str:
    """The task a HELLO asks for, checked against what this server serves and lets clients set.

    ``check_allowed=False``: the backend checks the allow-list itself, on what the keywords set
    (isaaclab: cfg paths, whichever way they are spelt).

    Raises:
        BadRequestError: no task, another task than a fixed one, a server setting among the
            keywords, or keywords the server's :class:`SessionLimits` refuse (fixed, not allowed, paths).
    """
    name = opts.task or default
    if not name:
        raise BadRequestError("no task: the client named none and the server has no default")
    if name != default and not allow_any_task:
        raise BadRequestError(
            f"this server only serves {default!r}, not {clip(repr(name), 300)} (it runs with --fixed-task)"
        )
    refused = server_keys & set(opts.task_kwargs)
    if refused:
        raise BadRequestError(f"task keywords {sorted(refused)} are server settings; clients may not set them")
    opts.limits.check_kwargs(opts.task_kwargs, check_allowed)
    return name
