"""The msgpack extension types and their checks: array descriptors, dtypes, nesting depth.

Nothing received is ever unpickled or evaluated: the only extension types are the seven below, and
dtypes with Python objects are refused in both directions.
"""

from __future__ import annotations

import functools
import struct
from typing import Any

import msgpack
import numpy as np

from gym_remote.errors import ProtocolError
from gym_remote.protocol.messages import Limits

# msgpack extension type codes. Anything else on the wire is refused. Array and scalar payloads
# are a compact binary prefix, "<u8 len><dtype str><u8 ndim><u64 dims...>", followed by either a
# u32 frame index (EXT_ARRAY_FRAME) or the raw bytes (EXT_ARRAY_INLINE, EXT_SCALAR with ndim 0).
EXT_ARRAY_FRAME = 1  # the bytes are a frame of their own
EXT_ARRAY_INLINE = 2  # the bytes follow the prefix
EXT_SCALAR = 3  # a numpy scalar such as np.float32(1.5)
EXT_TUPLE = 4  # a msgpack list that decodes to a tuple
EXT_OBJECT_LIST = 5  # a msgpack list that decodes to a 1-D numpy object array (see ObjectList)
EXT_BIG_INT = 6  # a Python int past msgpack's 64 bits (Gymnasium's 128-bit seeds): signed big-endian bytes
#: A compressed frame (negotiated at HELLO): the prefix, the u32 frame index, then a u8 codec id
#: (:data:`gym_remote.protocol.compression.CODEC_IDS`). The prefix's dtype and shape give the
#: uncompressed size, the only one the receiver trusts.
EXT_ARRAY_PACKED = 7

#: Bytes of the largest int that travels (a 128-bit seed needs 17; a bigger one is refused).
MAX_BIG_INT_BYTES = 64

_ALLOWED_KINDS = frozenset("biufcSUMm")  # bool, ints, floats, complex, bytes, str, datetimes


def _check_dtype(dtype: np.dtype) -> None:
    if dtype.hasobject or dtype.names is not None or dtype.kind not in _ALLOWED_KINDS:
        raise ProtocolError(
            f"arrays of dtype {dtype!s} cannot travel: only plain numeric, bool, bytes and str "
            "dtypes are allowed (object dtypes would need pickle)"
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


def _as_buffer(frame: Any) -> memoryview:
    # zmq.Frame (copy=False) exposes .buffer; bytes and memoryviews pass through.
    buf = getattr(frame, "buffer", frame)
    return memoryview(buf)


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
