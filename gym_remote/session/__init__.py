"""What the server hosts for one client: a single env or a batch of sub-envs, behind one interface.

:class:`Session` is the seam between the server loop and a simulator. :class:`GymSession` adapts any
Gymnasium env or ``VectorEnv``; natively batched simulators (Isaac Lab, RoboVerse) subclass
:class:`Session` directly in :mod:`gym_remote.backends`.

Modules: ``limits`` (:class:`SessionLimits`, what one client may make a server build), ``options``
(:class:`SessionOptions` from a HELLO, :func:`choose_task`), ``base`` (:class:`Session`) and
``gym_session`` (:class:`GymSession`). Arrows run that way only; every name is re-exported here.
"""

from __future__ import annotations

from gym_remote.session.base import Session
from gym_remote.session.gym_session import GymSession, wrap_object_arrays
from gym_remote.session.limits import SessionLimits
from gym_remote.session.options import AUTORESET_MODES, MAX_TASK_CHARS, SessionOptions, choose_task

__all__ = [
    "AUTORESET_MODES",
    "MAX_TASK_CHARS",
    "GymSession",
    "Session",
    "SessionLimits",
    "SessionOptions",
    "choose_task",
    "wrap_object_arrays",
]
