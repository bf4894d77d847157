"""Request kinds, error codes, limits and the request/reply records: what a message means.

No encoding here (see :mod:`gym_remote.protocol.codec`); nothing here knows of Gymnasium.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

PROTOCOL_VERSION = 1

#: The one line ``gym-remote serve`` prints on stdout when it is ready, followed by its endpoint.
READY_PREFIX = "GYM_REMOTE READY"


class Kind(str, enum.Enum):
    """Request kinds. The value is what travels on the wire."""

    HELLO = "hello"
    RESET = "reset"
    STEP = "step"
    GET_STATE = "get_state"
    SET_STATE = "set_state"
    RENDER = "render"
    PING = "ping"
    CLOSE = "close"
    CALL = "call"  # an allow-listed attribute or method of the remote env (see server)


_KINDS = {k.value: k for k in Kind}

#: What a CALL request may reach on the remote envs: read-only facts and well-known hooks, never
#: arbitrary attribute access over the network.
CALLABLE_ALLOWLIST = frozenset({"render_mode", "spec_id", "metadata", "np_random_seed", "get_state_schema"})

#: A goal-conditioned env's methods a CALL may run, with the client's arguments (goal batches and
#: infos): pure functions of what they are given, which SB3's HER needs on the client. A server lists
#: those its env has in the HELLO reply's ``methods``.
GOAL_METHODS = frozenset({"compute_reward", "compute_terminated", "compute_truncated"})

#: A batched session's episode clocks: ``set_episode_lengths(lengths)`` writes each sub-env's count of
#: steps since its reset (``(N,)`` ints in ``[0, max_episode_steps]``), as a trainer's random start
#: (rsl_rl's ``init_at_random_ep_len``) writes Isaac Lab's ``episode_length_buf`` in-process. The
#: simulator then ends those episodes inside its own step. Listed in the HELLO reply's ``methods`` by
#: the sessions whose simulator keeps such clocks.
CLOCK_METHODS = frozenset({"set_episode_lengths"})


class ObjectList(list):
    """Elements of a 1-D object array, each encoded like any other value (never pickled).

    Gymnasium's vector infos hold object arrays for values it cannot stack (strings, tuples).
    Raw object arrays are refused on the wire; a sender that means it wraps one explicitly with
    ``ObjectList(arr)`` and the receiver gets a numpy object array back.
    """


#: Requests that may be re-sent after a timeout without changing what the server did.
IDEMPOTENT = frozenset({Kind.HELLO, Kind.PING, Kind.GET_STATE})


class ErrorCode(str, enum.Enum):
    """Why a request failed; the client maps each to an exception class."""

    PROTOCOL = "protocol"  # the message itself was malformed
    BAD_REQUEST = "bad_request"  # well formed, but wrong for this env (e.g. action shape)
    SESSION_LOST = "session_lost"  # unknown or expired session id
    BUSY = "busy"  # max_sessions reached
    VERSION = "version"  # protocol version mismatch at HELLO
    ENV = "env"  # the env raised


@dataclass(frozen=True)
class Limits:
    """Bounds on what a peer may send; both ends check them before trusting a message."""

    inline_threshold: int = 1024
    max_frames: int = 1024
    max_header_bytes: int = 16 * 2**20
    max_array_bytes: int = 2**31
    max_depth: int = 64
    max_ndim: int = 32
    #: Bytes the compressed frames of one message may inflate to, all together (a server sets its
    #: ``--max-message-bytes``): a small frame that claims or expands past it is refused.
    max_inflated_bytes: int = 1 << 30

    def __post_init__(self) -> None:
        if self.inline_threshold < 0:
            raise ValueError("inline_threshold must be >= 0")


DEFAULT_LIMITS = Limits()


@dataclass
class Request:
    kind: Kind
    body: Any = None
    session: str | None = None
    seq: int = 0


@dataclass
class ErrorInfo:
    code: ErrorCode
    type: str
    message: str
    traceback: str = ""


@dataclass
class Reply:
    seq: int
    body: Any = None
    error: ErrorInfo | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None
