"""The wire format: msgpack headers with numpy arrays as raw ZeroMQ frames.

A message is a ZeroMQ multipart message. Frame 0 is a msgpack header; every numpy array at or
above ``Limits.inline_threshold`` bytes travels as its own raw frame after it (sent without a copy,
received as a read-only ``np.frombuffer`` view), and the header refers to it by index. Smaller arrays,
numpy scalars and tuples travel inline as msgpack extension types, so nested dicts, lists and tuples
of arrays round-trip with dtype and shape exact.

Nothing received is ever unpickled or evaluated: the only extension types are the seven in
``extensions``, dtypes with Python objects are refused in both directions, and every count, size and
depth is checked against :class:`Limits` before it is trusted. This package knows nothing of Gymnasium.

Modules, each importing only the ones before it: ``messages`` (versions, :class:`Kind`,
:class:`ErrorCode`, :class:`Limits`, :class:`Request`, :class:`Reply`), ``extensions`` (extension
type codes, array descriptors, dtype and depth checks), ``compression`` (the codecs negotiated at
HELLO, bounded inflation), ``codec`` (:class:`Codec`, :func:`encode`,
:func:`decode`, pack/unpack of requests and replies) and ``frames`` (send and receive on a socket).
Every public name is re-exported here.
"""

from __future__ import annotations

from gym_remote.protocol.codec import (
    Codec,
    decode,
    encode,
    pack_reply,
    pack_request,
    reply_from_header,
    unpack_reply,
    unpack_request,
)
from gym_remote.protocol.compression import CODECS, DEFAULT_COMPRESS_ABOVE, available_codecs
from gym_remote.protocol.extensions import (
    EXT_ARRAY_FRAME,
    EXT_ARRAY_INLINE,
    EXT_ARRAY_PACKED,
    EXT_BIG_INT,
    EXT_OBJECT_LIST,
    EXT_SCALAR,
    EXT_TUPLE,
    MAX_BIG_INT_BYTES,
)
from gym_remote.protocol.frames import message_nbytes, recv_frames, send_frames
from gym_remote.protocol.messages import (
    CALLABLE_ALLOWLIST,
    CLOCK_METHODS,
    DEFAULT_LIMITS,
    GOAL_METHODS,
    IDEMPOTENT,
    PROTOCOL_VERSION,
    READY_PREFIX,
    ErrorCode,
    ErrorInfo,
    Kind,
    Limits,
    ObjectList,
    Reply,
    Request,
)

__all__ = [
    "CALLABLE_ALLOWLIST",
    "CLOCK_METHODS",
    "CODECS",
    "DEFAULT_COMPRESS_ABOVE",
    "DEFAULT_LIMITS",
    "EXT_ARRAY_FRAME",
    "EXT_ARRAY_INLINE",
    "EXT_ARRAY_PACKED",
    "EXT_BIG_INT",
    "EXT_OBJECT_LIST",
    "EXT_SCALAR",
    "EXT_TUPLE",
    "GOAL_METHODS",
    "IDEMPOTENT",
    "MAX_BIG_INT_BYTES",
    "PROTOCOL_VERSION",
    "READY_PREFIX",
    "Codec",
    "ErrorCode",
    "ErrorInfo",
    "Kind",
    "Limits",
    "ObjectList",
    "Reply",
    "Request",
    "available_codecs",
    "decode",
    "encode",
    "message_nbytes",
    "pack_reply",
    "pack_request",
    "recv_frames",
    "reply_from_header",
    "send_frames",
    "unpack_reply",
    "unpack_request",
]
