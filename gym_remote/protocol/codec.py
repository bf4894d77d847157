"""The codec: encode and decode a message, pack and unpack requests and replies as frames."""

from __future__ import annotations

import enum
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import msgpack
import numpy as np

from gym_remote.errors import ProtocolError
from gym_remote.protocol.compression import CODEC_IDS, compressor, inflate
from gym_remote.protocol.extensions import (
    _PREFIXES,
    _U32,
    EXT_ARRAY_FRAME,
    EXT_ARRAY_INLINE,
    EXT_ARRAY_PACKED,
    EXT_BIG_INT,
    EXT_OBJECT_LIST,
    EXT_SCALAR,
    EXT_TUPLE,
    MAX_BIG_INT_BYTES,
    _array_prefix,
    _as_buffer,
    _check_depth,
    _container_markers,
    _ext,
    _parse_prefix,
    _unpack,
)
from gym_remote.protocol.messages import (
    _KINDS,
    DEFAULT_LIMITS,
    ErrorCode,
    ErrorInfo,
    Kind,
    Limits,
    ObjectList,
    Reply,
    Request,
)

#: The compression threshold when compression is off: no frame is that large.
_OFF = sys.maxsize


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

    Compression (:mod:`gym_remote.protocol.compression`) is off until :meth:`compress` (what this end
    sends) and :meth:`accept` (what it decodes) turn it on; off, it costs one comparison per raw frame.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._buffers: list[Any] = []
        self._packer = msgpack.Packer(default=self._default, strict_types=True, use_bin_type=True, autoreset=True)
        self._frames: Sequence[Any] = ()
        self._used: set[int] = set()
        self._ext_depth = 0
        self._descriptors: dict[bytes, tuple[np.dtype, tuple[int, ...], int]] = {}
        self._squeeze_at = _OFF  # frames of at least this many bytes are compressed
        self._squeeze: Callable[[Any], bytes] | None = None
        self._squeeze_id = b""
        self._accepts: frozenset[int] = frozenset()
        self._inflated = 0  # bytes the current message's compressed frames inflated to

    # ------------------------------------------------------------------------------ compression

    def compress(self, codec: str | None, above: int = 0) -> None:
        """Compress the raw array frames of at least ``above`` bytes this codec encodes (``None``: stop).

        A frame that compression shrinks by less than an eighth travels raw.

        Raises:
            ValueError: an unknown codec; ImportError: its library is missing.
        """
        if codec is None:
            self._squeeze_at, self._squeeze, self._squeeze_id = _OFF, None, b""
            return
        self._squeeze = compressor(codec)
        self._squeeze_id = bytes([CODEC_IDS[codec]])
        self._squeeze_at = max(int(above), self.limits.inline_threshold, 1)

    def accept(self, codecs: Iterable[str]) -> None:
        """Decode compressed frames of these codecs (only); any other compressed frame is a ProtocolError."""
        self._accepts = frozenset(CODEC_IDS[name] for name in codecs)

    @property
    def compression(self) -> str | None:
        """The codec this end compresses its large frames with, or ``None``."""
        return next((k for k, v in CODEC_IDS.items() if bytes([v]) == self._squeeze_id), None)

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

    def _packed_frame(self, o: np.ndarray, prefix: bytes, nbytes: int) -> Any:
        """A compressed frame of ``o`` (raw when that saves less than an eighth)."""
        data = np.ascontiguousarray(o)
        packed = self._squeeze(data.reshape(-1).view(np.uint8))  # type: ignore[misc]
        buffers = self._buffers
        if len(packed) > nbytes - (nbytes >> 3):
            buffers.append(data)
            return _ext((EXT_ARRAY_FRAME, prefix + _U32.pack(len(buffers) - 1)))
        buffers.append(packed)
        return _ext((EXT_ARRAY_PACKED, prefix + _U32.pack(len(buffers) - 1) + self._squeeze_id))

    def _pack_nested(self, o: Any) -> bytes:
        # The shared packer is busy with the enclosing message: a nested one gets its own.
        return msgpack.packb(o, default=self._default, strict_types=True, use_bin_type=True)

    def _default(self, o: Any) -> Any:
        if isinstance(o, np.ndarray):
            prefix = _PREFIXES.get((o.dtype, o.shape)) or _array_prefix(o.dtype, o.shape)
            nbytes = o.nbytes
            if nbytes >= self.limits.inline_threshold and nbytes > 0:
                if nbytes >= self._squeeze_at:
                    return self._packed_frame(o, prefix, nbytes)
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
            self._used, self._inflated = set(), 0
        try:
            obj = _unpack(header, self._ext_hook)
        finally:
            self._frames = ()
        if buffers and len(self._used) != len(buffers):
            raise ProtocolError(f"message has {len(buffers)} array frames but its header names {len(self._used)}")
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
                raise ProtocolError(f"array of {nbytes} bytes exceeds max_array_bytes={self.limits.max_array_bytes}")
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
            buf = self._frame(index)
            if buf.nbytes != nbytes:
                raise ProtocolError(
                    f"array {dtype.str}{tuple(shape)} needs {nbytes} bytes but its data has {buf.nbytes}"
                )
            return np.frombuffer(buf, dtype=dtype).reshape(shape)
        if code == EXT_ARRAY_PACKED:
            return self._inflate_frame(data)
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

    def _frame(self, index: int) -> memoryview:
        """Array frame ``index`` of the message being decoded, each referred to once."""
        buffers = self._frames
        if index >= len(buffers):
            raise ProtocolError(f"array refers to frame {index} but the message has {len(buffers)}")
        if index in self._used:
            raise ProtocolError(f"array frame {index} is referred to twice")
        self._used.add(index)
        return _as_buffer(buffers[index])

    def _inflate_frame(self, data: bytes) -> np.ndarray:
        """A compressed frame's array: its codec agreed, its size the descriptor's, within the message's budget."""
        dtype, shape, nbytes, start = self._descriptor(data)
        if len(data) != start + 5:
            raise ProtocolError("malformed compressed array reference")
        (index,) = _U32.unpack_from(data, start)
        codec_id = data[start + 4]
        if codec_id not in self._accepts:
            raise ProtocolError(
                f"a frame compressed with codec id {codec_id}, which this end did not agree to at HELLO "
                f"(agreed: {sorted(self._accepts) or 'none'})"
            )
        self._inflated += nbytes
        if self._inflated > self.limits.max_inflated_bytes:
            raise ProtocolError(
                f"compressed frames inflating to {self._inflated} bytes exceed max_inflated_bytes="
                f"{self.limits.max_inflated_bytes} (the server's --max-message-bytes)"
            )
        out = inflate(codec_id, self._frame(index), nbytes)
        return np.frombuffer(out, dtype=dtype).reshape(shape)

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


def decode(header: Any, buffers: Sequence[Any] = (), limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode a header and its array frames. Every malformation is a :class:`ProtocolError`."""
    return Codec(limits).decode(header, buffers)


def pack_request(request: Request, limits: Limits = DEFAULT_LIMITS) -> list[Any]:
    """Frames of a request: header then array buffers."""
    return Codec(limits).pack_request(request.kind, request.body, request.session, request.seq)


def unpack_request(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> Request:
    return Codec(limits).unpack_request(frames)


def pack_reply(reply: Reply, limits: Limits = DEFAULT_LIMITS) -> list[Any]:
    return Codec(limits).pack_reply(reply)


def unpack_reply(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> Reply:
    return Codec(limits).unpack_reply(frames)
