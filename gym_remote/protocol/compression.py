"""Opt-in lossless compression of large array frames: the codecs, their wire ids, and bounded inflation.

Compression is negotiated at HELLO and is off unless both ends agree: the client asks for one codec
and a threshold (``ConnectOptions(compression="zstd", compress_above=65536)``), the server answers
the codec it accepts (or none: it lacks the library, or ``serve --no-compression``). Both ends then
compress each raw array frame of at least the threshold's bytes, and send it raw when compression
saves less than an eighth. A compressed frame is named in the header by ``EXT_ARRAY_PACKED``: the
array's descriptor (dtype and shape: its uncompressed size), the frame index and the codec's id.

A receiver never trusts a compressed frame's own idea of its size. :func:`inflate` produces exactly
the descriptor's byte count, which the decoder has already held against ``Limits.max_array_bytes``
and, summed over the message, ``Limits.max_inflated_bytes`` (the server's ``--max-message-bytes``):
zstd's frame header must state that size (a frame that states another or none is refused before
anything is allocated), lz4 blocks are decoded into a buffer of exactly that size, and an output of
any other length is refused. Nothing is unpickled or evaluated; the libraries are ``zstandard`` and
``lz4`` (``pip install gym-remote[compress]``), imported only when a codec is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from gym_remote.errors import ProtocolError

__all__ = [
    "CODECS",
    "CODEC_IDS",
    "DEFAULT_COMPRESS_ABOVE",
    "available_codecs",
    "compressor",
    "inflate",
]

#: Codec names and the module each needs, in the order a server prefers them.
CODECS = {"zstd": "zstandard", "lz4": "lz4"}
#: The id of each codec in an ``EXT_ARRAY_PACKED`` descriptor (one byte on the wire).
CODEC_IDS = {"zstd": 1, "lz4": 2}
_NAMES = {v: k for k, v in CODEC_IDS.items()}
#: Frames smaller than this many bytes travel raw unless the client asks for a lower threshold.
DEFAULT_COMPRESS_ABOVE = 64 * 1024


def available_codecs() -> tuple[str, ...]:
    """The codecs whose library this Python imports."""
    found = []
    for name, module in CODECS.items():
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        found.append(name)
    return tuple(found)


def compressor(name: str) -> Callable[[memoryview], bytes]:
    """A function compressing one frame's bytes with codec ``name`` (fast settings: a step's latency counts).

    Raises:
        ValueError: an unknown codec; ImportError: its library is not installed.
    """
    if name == "zstd":
        import zstandard

        # Level 1 with the content size written: the receiver checks that size before allocating.
        return zstandard.ZstdCompressor(level=1, write_content_size=True).compress
    if name == "lz4":
        import lz4.block

        def lz4_compress(data: memoryview) -> bytes:
            return lz4.block.compress(data, store_size=False)  # the size travels in the descriptor

        return lz4_compress
    raise ValueError(f"unknown compression codec {name!r}; choose from {', '.join(CODECS)}")


def _zstd_inflate() -> Callable[[bytes | memoryview, int], bytes]:
    import zstandard

    decompressor = zstandard.ZstdDecompressor()
    frame_content_size = zstandard.frame_content_size

    def inflate_zstd(data: bytes | memoryview, nbytes: int) -> bytes:
        # zstd allocates what the frame header states, whatever max_output_size says: check it first.
        stated = frame_content_size(data)
        if stated != nbytes:
            raise ProtocolError(f"a zstd frame states {stated} bytes where its array needs {nbytes}")
        return decompressor.decompress(data, max_output_size=nbytes)

    return inflate_zstd


def _lz4_inflate() -> Callable[[bytes | memoryview, int], bytes]:
    import lz4.block

    def inflate_lz4(data: bytes | memoryview, nbytes: int) -> bytes:
        return lz4.block.decompress(data, uncompressed_size=nbytes)  # fails rather than write past nbytes

    return inflate_lz4


_INFLATERS: dict[int, Callable[[bytes | memoryview, int], bytes]] = {}


def inflate(codec_id: int, data: bytes | memoryview, nbytes: int) -> bytes:
    """Decompress one frame into exactly ``nbytes`` bytes (the array descriptor's size, already bounded).

    Raises:
        ProtocolError: an unknown codec id, a corrupt frame, or one that inflates to any other size.
    """
    fn = _INFLATERS.get(codec_id)
    if fn is None:
        name = _NAMES.get(codec_id)
        if name is None:
            raise ProtocolError(f"unknown compression codec id {codec_id}")
        try:
            fn = _zstd_inflate() if name == "zstd" else _lz4_inflate()
        except ImportError as exc:
            raise ProtocolError(f"a {name} frame arrived but {CODECS[name]} is not installed") from exc
        _INFLATERS[codec_id] = fn
    try:
        out = fn(data, nbytes)
    except ProtocolError:
        raise
    except Exception as exc:  # each library's own error type: a corrupt or hostile frame
        raise ProtocolError(f"cannot decompress a {_NAMES[codec_id]} frame: {exc}") from exc
    if len(out) != nbytes:
        raise ProtocolError(f"a {_NAMES[codec_id]} frame inflated to {len(out)} bytes where its array needs {nbytes}")
    return out
