"""The wire format: msgpack headers with numpy arrays as raw ZeroMQ frames.

A message is a ZeroMQ multipart message. Frame 0 is a msgpack header; every numpy array at or
above ``Limits.inline_threshold`` bytes travels as its own raw frame after it (sent without a copy,
received as a read-only ``np.frombuffer`` view), and the header refers to it by index. Smaller arrays,
numpy scalars and tuples travel inline as msgpack extension types, so nested dicts, lists and tuples
of arrays round-trip with dtype and shape exact.

Nothing received is ever unpickled or evaluated: the only extension types are the six below, dtypes
with Python objects are refused in both directions, and every count, size and depth is checked
against :class:`Limits` before it is trusted. This module knows nothing of Gymnasium.
"""

from __future__ import annotations

import enum
import functools
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import msgpack
import numpy as np
import zmq

from gym_remote.errors import ProtocolError

PROTOCOL_VERSION = 1

#: The one line ``gym-remote serve`` prints on stdout when it is ready, followed by its endpoint.
READY_PREFIX = "GYM_REMOTE READY"

# msgpack extension type codes. Anything else on the wire is refused. Array and scalar payloads
# are a compact binary prefix, "<u8 len><dtype str><u8 ndim><u64 dims...>", followed by either a
# u32 frame index (EXT_ARRAY_FRAME) or the raw bytes (EXT_ARRAY_INLINE, EXT_SCALAR with ndim 0).
EXT_ARRAY_FRAME = 1  # the bytes are a frame of their own
EXT_ARRAY_INLINE = 2  # the bytes follow the prefix
EXT_SCALAR = 3  # a numpy scalar such as np.float32(1.5)
EXT_TUPLE = 4  # a msgpack list that decodes to a tuple
EXT_OBJECT_LIST = 5  # a msgpack list that decodes to a 1-D numpy object array (see ObjectList)
EXT_BIG_INT = 6  # a Python int past msgpack's 64 bits (Gymnasium's 128-bit seeds): signed big-endian bytes

#: Bytes of the largest int that travels (a 128-bit seed needs 17; a bigger one is refused).
MAX_BIG_INT_BYTES = 64

_ALLOWED_KINDS = frozenset("biufcSUMm")  # bool, ints, floats, complex, bytes, str, datetimes


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


# --------------------------------------------------------------------------------------- encoding


def _check_dtype(dtype: np.dtype) -> None:
    if dtype.hasobject or dtype.names is not None or dtype.kind not in _ALLOWED_KINDS:
        raise ProtocolError(
            f"arrays of dtype {dtype!s} cannot travel: only plain numeric, bool, bytes and str "
            "dtypes are allowed (object dtypes would need pickle)"
        )


def encode(obj: Any, limits: Limits = DEFAULT_LIMITS) -> tuple[bytes, list[Any]]:
    """Encode ``obj`` into a msgpack header and the list of raw array buffers it refers to."""
    return Codec(limits).encode(obj)


class Codec:
    """One end's encoder and decoder, built once per connection or server and reused every message.

    The hot path of a session is a message per step each way, so what can be made once is made once:
    one msgpack ``Packer`` (whose ``default`` hook is a bound method, not a closure per message),
    one ``ext_hook``, and a cache of parsed array descriptors (a session's shapes repeat). Behaviour
    and checks are those of :func:`encode` and :func:`decode`, which build a fresh codec per call.
    A codec is not thread-safe: each thread (each connection, the server loop) owns its own.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._buffers: list[Any] = []
        self._packer = msgpack.Packer(default=self._default, strict_types=True, use_bin_type=True, autoreset=True)
        self._frames: Sequence[Any] = ()
        self._used: set[int] = set()
        self._ext_depth = 0
        self._descriptors: dict[bytes, tuple[np.dtype, tuple[int, ...], int]] = {}

    # ------------------------------------------------------------------------------ encoding

    def encode(self, obj: Any) -> tuple[bytes, list[Any]]:
        """Encode ``obj`` into a msgpack header and the list of raw array buffers it refers to."""
        self._buffers = buffers = []
        try:
            header = self._packer.pack(obj)
        except ProtocolError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            raise ProtocolError(f"cannot encode message: {exc}") from exc
        if len(header) > self.limits.max_header_bytes:
            raise ProtocolError(
                f"header of {len(header)} bytes exceeds max_header_bytes {self.limits.max_header_bytes}"
            )
        return header, buffers

    def _pack_nested(self, o: Any) -> bytes:
        # The shared packer is busy with the enclosing message: a nested one gets its own.
        return msgpack.packb(o, default=self._default, strict_types=True, use_bin_type=True)

    def _default(self, o: Any) -> Any:
        if isinstance(o, np.ndarray):
            prefix = _PREFIXES.get((o.dtype, o.shape)) or _array_prefix(o.dtype, o.shape)
            nbytes = o.nbytes
            if nbytes >= self.limits.inline_threshold and nbytes > 0:
                self._buffers.append(np.ascontiguousarray(o))
                return _ext((EXT_ARRAY_FRAME, prefix + _U32.pack(len(self._buffers) - 1)))
            return _ext((EXT_ARRAY_INLINE, prefix + o.tobytes()))
        if isinstance(o, np.generic):
            return _ext((EXT_SCALAR, _array_prefix(o.dtype, ()) + o.tobytes()))
        if isinstance(o, tuple):
            return msgpack.ExtType(EXT_TUPLE, self._pack_nested(list(o)))
        if isinstance(o, ObjectList):
            return msgpack.ExtType(EXT_OBJECT_LIST, self._pack_nested(list(o)))
        if isinstance(o, enum.Enum):
            return o.value
        if type(o) is int:  # msgpack calls here only for ints past 64 bits
            size = (o.bit_length() + 8) // 8
            if size > MAX_BIG_INT_BYTES:
                bits = 8 * MAX_BIG_INT_BYTES - 1
                raise ProtocolError(f"an int of {o.bit_length()} bits cannot travel (at most {bits})")
            return msgpack.ExtType(EXT_BIG_INT, o.to_bytes(size, "big", signed=True))
        # Subclasses of the plain types (OrderedDict, user str subclasses).
        for plain in (bool, int, float, str, bytes, dict, list):
            if isinstance(o, plain):
                return cast(Any, plain)(o)
        raise ProtocolError(f"cannot encode a {type(o).__module__}.{type(o).__qualname__} on the wire")

    # ------------------------------------------------------------------------------ decoding

    def decode(self, header: Any, buffers: Sequence[Any] = ()) -> Any:
        """Decode a header and its array frames. Every malformation is a :class:`ProtocolError`."""
        limits = self.limits
        if not isinstance(header, bytes):
            header = _as_buffer(header)
        size = len(header) if isinstance(header, bytes) else header.nbytes
        if size > limits.max_header_bytes:
            raise ProtocolError(f"header of {size} bytes exceeds max_header_bytes={limits.max_header_bytes}")
        if len(buffers) > limits.max_frames:
            raise ProtocolError(f"{len(buffers)} array frames exceed max_frames={limits.max_frames}")
        self._frames, self._ext_depth = buffers, 0
        if buffers:
            self._used = set()
        try:
            obj = _unpack(header, self._ext_hook)
        finally:
            self._frames = ()
        if buffers and len(self._used) != len(buffers):
            raise ProtocolError(
                f"message has {len(buffers)} array frames but its header names {len(self._used)}"
            )
        # A header shorter than max_depth cannot nest that deep; else count markers before the walk.
        if size > limits.max_depth and _container_markers(header) > limits.max_depth:
            _check_depth(obj, limits.max_depth)
        return obj

    def _descriptor(self, data: bytes) -> tuple[np.dtype, tuple[int, ...], int, int]:
        """dtype, shape, byte size and payload offset of an array extension; cached per codec."""
        try:
            n = data[0]
            start = 2 + n + 8 * data[1 + n]
        except IndexError as exc:
            raise ProtocolError(f"malformed array descriptor: {exc}") from exc
        key = data[:start]
        known = self._descriptors.get(key)
        if known is None:
            dtype, shape, _ = _parse_prefix(data, self.limits)
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes > self.limits.max_array_bytes:
                raise ProtocolError(
                    f"array of {nbytes} bytes exceeds max_array_bytes={self.limits.max_array_bytes}"
                )
            known = (dtype, shape, nbytes)
            if len(self._descriptors) < 1024:
                self._descriptors[key] = known
        return (*known, start)

    def _ext_hook(self, code: int, data: bytes) -> Any:
        if code in (EXT_ARRAY_INLINE, EXT_SCALAR):
            # The descriptor cache inlined: a step reply holds several small arrays, each one call.
            try:
                n = data[0]
                start = 2 + n + 8 * data[1 + n]
            except IndexError as exc:
                raise ProtocolError(f"malformed array descriptor: {exc}") from exc
            known = self._descriptors.get(data[:start])
            if known is None:
                dtype, shape, nbytes, start = self._descriptor(data)
            else:
                dtype, shape, nbytes = known
            if len(data) - start != nbytes:
                raise ProtocolError(
                    f"array {dtype.str}{tuple(shape)} needs {nbytes} bytes but its data has {len(data) - start}"
                )
            if code == EXT_SCALAR:
                if shape:
                    raise ProtocolError("a scalar must have no dimensions")
                return np.frombuffer(data, dtype, 1, start)[0]
            if nbytes:  # a read-only view of the bytes, as np.frombuffer(...).reshape(shape) gives
                return np.ndarray(shape, dtype, data, start)
            return np.frombuffer(memoryview(data)[start:], dtype=dtype).reshape(shape)
        if code == EXT_ARRAY_FRAME:
            dtype, shape, nbytes, start = self._descriptor(data)
            if len(data) != start + 4:
                raise ProtocolError("malformed array reference")
            (index,) = _U32.unpack_from(data, start)
            buffers = self._frames
            if index >= len(buffers):
                raise ProtocolError(f"array refers to frame {index} but the message has {len(buffers)}")
            if index in self._used:
                raise ProtocolError(f"array frame {index} is referred to twice")
            self._used.add(index)
            buf = _as_buffer(buffers[index])
            if buf.nbytes != nbytes:
                raise ProtocolError(
                    f"array {dtype.str}{tuple(shape)} needs {nbytes} bytes but its data has {buf.nbytes}"
                )
            return np.frombuffer(buf, dtype=dtype).reshape(shape)
        if code == EXT_BIG_INT:
            if not 0 < len(data) <= MAX_BIG_INT_BYTES:
                raise ProtocolError(f"a big int of {len(data)} bytes (at most {MAX_BIG_INT_BYTES})")
            return int.from_bytes(data, "big", signed=True)
        if code in (EXT_TUPLE, EXT_OBJECT_LIST):
            if self._ext_depth >= self.limits.max_depth:
                raise ProtocolError(f"message nests deeper than max_depth={self.limits.max_depth}")
            self._ext_depth += 1
            try:
                inner = _unpack(data, self._ext_hook)
            finally:
                self._ext_depth -= 1
            if not isinstance(inner, list):
                raise ProtocolError("tuple and object-list extensions must hold a list")
            if code == EXT_TUPLE:
                return tuple(inner)
            array = np.empty(len(inner), dtype=object)
            for i, value in enumerate(inner):  # one by one: numpy would broadcast nested lists
                array[i] = value
            return array
        raise ProtocolError(f"unknown msgpack extension type {code}")

    # ------------------------------------------------------------------------------ messages

    def pack_request(self, kind: Kind, body: Any, session: str | None, seq: int) -> list[Any]:
        """Frames of a request: header then array buffers."""
        header, buffers = self.encode({"k": kind.value, "s": session, "n": seq, "b": body})
        return [header, *buffers] if buffers else [header]

    def unpack_request(self, frames: Sequence[Any]) -> Request:
        if not frames:
            raise ProtocolError("empty message")
        msg = self.decode(frames[0], frames[1:])
        if not isinstance(msg, dict) or "k" not in msg:
            raise ProtocolError("a request header must be a map with a kind")
        kind = _KINDS.get(msg["k"]) if isinstance(msg["k"], str) else None
        if kind is None:
            raise ProtocolError(f"unknown request kind {msg['k']!r}; expected one of {sorted(_KINDS)}")
        session, seq = msg.get("s"), msg.get("n", 0)
        if session is not None and not isinstance(session, str):
            raise ProtocolError("session id must be a string")
        if not isinstance(seq, int):
            raise ProtocolError("sequence number must be an integer")
        return Request(kind, msg.get("b"), session, seq)

    def pack_reply(self, reply: Reply) -> list[Any]:
        msg: dict[str, Any] = {"n": reply.seq, "ok": reply.error is None}
        if reply.error is None:
            msg["b"] = reply.body
        else:
            e = reply.error
            msg["e"] = {"code": e.code.value, "type": e.type, "message": e.message, "traceback": e.traceback}
        if reply.extra:
            msg.update(reply.extra)
        header, buffers = self.encode(msg)
        return [header, *buffers] if buffers else [header]

    def unpack_reply(self, frames: Sequence[Any]) -> Reply:
        if not frames:
            raise ProtocolError("empty reply")
        return reply_from_header(self.decode(frames[0], frames[1:]))


def reply_from_header(msg: Any) -> Reply:
    """The :class:`Reply` a decoded reply header describes; a ProtocolError if it describes none."""
    if not isinstance(msg, dict) or "ok" not in msg:
        raise ProtocolError("a reply header must be a map with an ok flag")
    seq = msg.get("n", 0)
    if msg["ok"]:
        return Reply(seq, msg.get("b"))
    e = msg.get("e")
    if not isinstance(e, Mapping):
        raise ProtocolError("an error reply must carry an error map")
    try:
        code = ErrorCode(e.get("code"))
    except ValueError:
        code = ErrorCode.ENV
    return Reply(
        seq,
        error=ErrorInfo(code, str(e.get("type", "")), str(e.get("message", "")), str(e.get("traceback", ""))),
    )


_U32 = struct.Struct("<I")

#: ``msgpack.ExtType(code, data)`` without its Python-level type checks (the codes above and
#: ``bytes`` data, always): a step reply holds several arrays, each one ExtType.
_ext = functools.partial(tuple.__new__, msgpack.ExtType)
_PREFIXES: dict[tuple[np.dtype, tuple[int, ...]], bytes] = {}


def _array_prefix(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    key = (dtype, shape)
    prefix = _PREFIXES.get(key)
    if prefix is None:
        _check_dtype(dtype)
        name = dtype.str.encode()
        prefix = bytes([len(name)]) + name + bytes([len(shape)]) + struct.pack(f"<{len(shape)}Q", *shape)
        if len(_PREFIXES) < 4096:  # shapes of a session repeat; don't grow without bound
            _PREFIXES[key] = prefix
    return prefix


def _parse_prefix(data: bytes, limits: Limits) -> tuple[np.dtype, tuple[int, ...], int]:
    """dtype, shape and the offset where the payload starts; ProtocolError if malformed."""
    try:
        n = data[0]
        dtype = _parse_dtype(bytes(data[1 : 1 + n]))
        ndim = data[1 + n]
        if ndim > limits.max_ndim:
            raise ProtocolError(f"array of {ndim} dimensions exceeds max_ndim={limits.max_ndim}")
        shape = struct.unpack_from(f"<{ndim}Q", data, 2 + n)
    except (IndexError, struct.error) as exc:
        raise ProtocolError(f"malformed array descriptor: {exc}") from exc
    return dtype, shape, 2 + n + 8 * ndim


# --------------------------------------------------------------------------------------- decoding


def _as_buffer(frame: Any) -> memoryview:
    # zmq.Frame (copy=False) exposes .buffer; bytes and memoryviews pass through.
    buf = getattr(frame, "buffer", frame)
    return memoryview(buf)


def decode(header: Any, buffers: Sequence[Any] = (), limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode a header and its array frames. Every malformation is a :class:`ProtocolError`."""
    return Codec(limits).decode(header, buffers)


def _unpack(data: Any, ext_hook: Any) -> Any:
    try:
        return msgpack.unpackb(
            data,
            ext_hook=ext_hook,
            raw=False,
            strict_map_key=False,
            use_list=True,
        )
    except ProtocolError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError, UnicodeDecodeError) as exc:
        # ExtraData, FormatError, StackError and OutOfData are ValueError subclasses.
        raise ProtocolError(f"malformed msgpack header: {type(exc).__name__}: {exc}") from exc


_DTYPES: dict[bytes, np.dtype] = {}


def _parse_dtype(name: bytes) -> np.dtype:
    dtype = _DTYPES.get(name)
    if dtype is not None:
        return dtype
    try:
        if len(name) > 16:
            raise TypeError("too long")
        dtype = np.dtype(name.decode("ascii"))
    except (TypeError, ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"bad dtype descriptor {name!r}: {exc}") from None
    _check_dtype(dtype)
    if len(_DTYPES) < 256:
        _DTYPES[name] = dtype
    return dtype


# Bytes that can open a msgpack container: fixmap, fixarray, array16/32, map16/32, and the ext
# families (tuples and object lists are extensions). Nesting N deep needs at least N of them.
_CONTAINER_MARKERS = bytes([*range(0x80, 0xA0), 0xDC, 0xDD, 0xDE, 0xDF, 0xC7, 0xC8, 0xC9, *range(0xD4, 0xD9)])


def _container_markers(header: Any) -> int:
    """An upper bound on the nesting depth of a header, counted at C speed."""
    data = header if isinstance(header, bytes) else bytes(_as_buffer(header))
    return len(data) - len(data.translate(None, _CONTAINER_MARKERS))


def _check_depth(obj: Any, max_depth: int) -> None:
    containers = (dict, list, tuple)
    level = [obj] if isinstance(obj, containers) else []
    depth = 0
    while level:  # breadth first, one list per nesting level; scalars are never visited twice
        depth += 1
        if depth > max_depth:
            raise ProtocolError(f"message nests deeper than max_depth={max_depth}")
        nxt = []
        for item in level:
            for v in item.values() if isinstance(item, dict) else item:
                if isinstance(v, containers):
                    nxt.append(v)
        level = nxt


# ------------------------------------------------------------------------------------- messages


def pack_request(request: Request, limits: Limits = DEFAULT_LIMITS) -> list[Any]:
    """Frames of a request: header then array buffers."""
    return Codec(limits).pack_request(request.kind, request.body, request.session, request.seq)


def unpack_request(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> Request:
    return Codec(limits).unpack_request(frames)


def pack_reply(reply: Reply, limits: Limits = DEFAULT_LIMITS) -> list[Any]:
    return Codec(limits).pack_reply(reply)


def unpack_reply(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> Reply:
    return Codec(limits).unpack_reply(frames)


_SNDMORE = int(zmq.SNDMORE)
_RCVMORE = int(zmq.RCVMORE)  # plain ints: pyzmq's attribute and enum helpers cost microseconds a call


def send_frames(sock: zmq.Socket, frames: Sequence[Any], prefix: Sequence[bytes] = ()) -> None:
    """Send ``prefix`` (routing envelope) and the message frames as one multipart message.

    Small leading frames are copied (cheaper than pyzmq's zero-copy bookkeeping); array frames go
    without a copy. Plain int flags avoid pyzmq's enum arithmetic on the per-step path.
    """
    parts = [*prefix, *frames]
    last = len(parts) - 1
    for i, part in enumerate(parts):
        sock.send(part, 0 if i == last else _SNDMORE, copy=i < len(prefix) + 1)


def recv_frames(sock: zmq.Socket) -> list[Any]:
    """Receive a message: the msgpack header as bytes, then the array frames without a copy.

    Raises ``zmq.Again`` when the socket's RCVTIMEO expires before the first frame.
    """
    frames: list[Any] = [sock.recv(0)]
    while sock.get(_RCVMORE):
        frames.append(sock.recv(0, copy=False))
    return frames


def message_nbytes(frames: Sequence[Any]) -> int:
    """Total size of a frame list, for logging and benchmarks."""
    return sum(_as_buffer(f).nbytes for f in frames)
