"""The env server: a ZeroMQ ROUTER socket that hosts one env (or batch of envs) per client session.

One thread serves every session in turn: simulators are rarely thread-safe, and a GPU simulator is
one batched env anyway. Every failure inside a request becomes an ERROR reply carrying the remote
traceback; the server itself only stops on SIGINT/SIGTERM or :meth:`EnvServer.stop`.

Modules, each importing only the ones before it: ``startup`` (:data:`SessionFactory`,
:func:`validate_factory`, :func:`is_loopback_address`), ``sessions`` (the session table: HELLO,
per-peer limits, idle expiry), ``requests`` (one request to one reply, dispatched by kind) and
``guard`` (:class:`~gym_remote.server.guard.MessageGuard`: the whole-message bound, on a thread of its
own) and ``loop`` (:class:`EnvServer`: the socket and the serving loop; it holds one session table and
one request handler). Every name is re-exported here.
"""

from __future__ import annotations

from gym_remote.server.guard import MessageGuard
from gym_remote.server.loop import EnvServer
from gym_remote.server.requests import LOG_CLIP, REPLY_CLIP, TRACEBACK_CLIP
from gym_remote.server.startup import SessionFactory, is_loopback_address, validate_factory

__all__ = [
    "LOG_CLIP",
    "REPLY_CLIP",
    "TRACEBACK_CLIP",
    "EnvServer",
    "MessageGuard",
    "SessionFactory",
    "is_loopback_address",
    "validate_factory",
]
