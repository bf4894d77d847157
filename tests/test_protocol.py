"""The wire format on its own: exact round trips and refusal of everything malformed."""

from __future__ import annotations

import itertools

import msgpack
import numpy as np
import pytest

from gym_remote.errors import ProtocolError
from gym_remote.protocol import (
    EXT_ARRAY_FRAME,
    Kind,
    Limits,
    Reply,
    Request,
    decode,
    encode,
    pack_reply,
    pack_request,
    unpack_reply,
    unpack_request,
)

DTYPES = [
    np.bool_,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.complex64,
    np.complex128,
    ">f4",
    ">i8",
]


def roundtrip(obj, limits: Limits | None = None):
    limits = limits or Limits()
    header, buffers = encode(obj, limits)
    return decode(header, [memoryview(b).cast("B") for b in buffers], limits)


def assert_same(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and (a == b or (a != a and b != b))
    else:
        assert a == b


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("ndim", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("threshold", [0, 1 << 30], ids=["frames", "inline"])
def test_arrays_of_every_dtype_and_rank_round_trip(dtype, ndim, threshold):
    rng = np.random.default_rng(ndim)
    shape = tuple(rng.integers(1, 5, ndim))
    a = (rng.normal(size=shape) * 100).astype(dtype)
    out = roundtrip(a, Limits(inline_threshold=threshold))
    assert_same(a, out)


@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 2, 5)])
def test_empty_arrays_round_trip(shape):
    assert_same(np.zeros(shape, np.float32), roundtrip(np.zeros(shape, np.float32)))


def test_non_contiguous_and_strided_inputs_round_trip():
    base = np.arange(4096, dtype=np.float64).reshape(64, 64)
    for view in (base.T, base[::3, 1::2], base[:, 5], np.asfortranarray(base)):
        for threshold in (0, 1 << 30):
            out = roundtrip(view, Limits(inline_threshold=threshold))
            np.testing.assert_array_equal(out, view)
            assert out.dtype == view.dtype and out.shape == view.shape


def test_nested_structures_keep_types_dtypes_and_shapes():
    msg = {
        "obs": {"image": np.ones((84, 84, 3), np.uint8), "vec": np.arange(3, dtype=np.float32)},
        "pair": (np.int64(3), [np.float32(1.5), (1, "x")]),
        "none": None,
        "bytes": b"\x00\x01",
        "text": "héllo",
        5: np.bool_(True),
        "big": 2**63 - 1,
        "strs": np.array(["ab", "c"]),
        "list": [np.zeros((2, 2), np.int16)],
    }
    assert_same(msg, roundtrip(msg))


def test_large_arrays_travel_as_frames_and_decode_zero_copy():
    a = np.arange(1 << 18, dtype=np.float32)
    header, buffers = encode({"a": a})
    assert len(buffers) == 1 and len(header) < 100
    frame = bytearray(memoryview(buffers[0]).cast("B"))
    out = decode(header, [frame])["a"]
    frame[0:4] = np.float32(7).tobytes()  # the decoded array is a view on the received frame
    assert out[0] == 7


def test_object_arrays_are_refused_both_ways():
    with pytest.raises(ProtocolError, match="object"):
        encode({"x": np.array([{"a": 1}], dtype=object)})
    for descr in (b"|O", b"O"):
        data = bytes([len(descr)]) + descr + bytes([1]) + (1).to_bytes(8, "little") + b"\0" * 8
        header = msgpack.packb({"x": msgpack.ExtType(2, data)})
        with pytest.raises(ProtocolError, match="dtype"):
            decode(header)


def test_msgpack_numpy_object_payload_is_never_unpickled(tmp_path):
    """msgpack-numpy's own decoder would run this pickle; ours must treat it as inert data."""
    import msgpack_numpy

    target = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(target), "w"))

    payload = msgpack.packb({"b": np.array([Evil()], dtype=object)}, default=msgpack_numpy.encode)
    assert b"pwned" in payload  # the pickle, with its target path, is really in there
    out = decode(payload)  # a dict with bytes in it, nothing more
    assert isinstance(out["b"][b"data"] if b"data" in out["b"] else out["b"]["data"], bytes)
    assert not target.exists()


@pytest.mark.parametrize(
    "frames, match",
    [
        ([np.random.default_rng(0).bytes(64)], "malformed|request|unknown"),  # fixed: a few random inputs decode
        ([b""], "malformed"),
        ([msgpack.packb({"k": "teleport"})], "unknown request kind"),
        ([msgpack.packb([1, 2, 3])], "map"),
        ([msgpack.packb({"k": "step", "b": msgpack.ExtType(9, b"")})], "unknown msgpack extension"),
        (
            [
                msgpack.packb(
                    {
                        "k": "step",
                        "b": msgpack.ExtType(
                            EXT_ARRAY_FRAME,
                            b"\x03<f4\x01" + (2).to_bytes(8, "little") + (0).to_bytes(4, "little"),
                        ),
                    }
                )
            ],
            "frame 0 but the message has 0",
        ),
        ([msgpack.packb({"k": "step"}), b"extra"], "1 array frames but its header names 0"),
        ([msgpack.packb({"k": "step", "s": 5})], "session"),
    ],
)
def test_malformed_requests_are_protocol_errors(frames, match):
    with pytest.raises(ProtocolError, match=match):
        unpack_request(frames)


def test_truncated_frame_list_and_wrong_sizes():
    frames = pack_request(Request(Kind.STEP, {"action": np.zeros(1024, np.float32)}, "s", 1))
    assert len(frames) == 2
    with pytest.raises(ProtocolError, match="frame 0 but the message has 0"):
        unpack_request(frames[:1])
    with pytest.raises(ProtocolError, match="needs 4096 bytes but its data has 4092"):
        unpack_request([frames[0], bytes(memoryview(frames[1]).cast("B"))[:-4]])


def test_depth_and_size_limits():
    deep: list = []
    cur = deep
    for _ in range(40):
        cur.append([])
        cur = cur[0]
    with pytest.raises(ProtocolError, match="max_depth"):
        roundtrip(deep, Limits(max_depth=32))
    with pytest.raises(ProtocolError, match="max_header_bytes"):
        decode(msgpack.packb("x" * 2000), limits=Limits(max_header_bytes=1000))
    with pytest.raises(ProtocolError, match="max_array_bytes"):
        roundtrip(np.zeros(1000), Limits(max_array_bytes=100))
    with pytest.raises(ProtocolError, match="max_frames"):
        decode(msgpack.packb(None), [b""] * 5, Limits(max_frames=4))


def test_request_and_reply_envelopes():
    req = Request(Kind.RESET, {"seed": 3, "options": None}, "abc", 7)
    assert unpack_request(pack_request(req)) == req
    rep = unpack_reply(pack_reply(Reply(7, {"obs": np.arange(3)})))
    assert rep.ok and rep.seq == 7 and list(rep.body["obs"]) == [0, 1, 2]


def test_unencodable_values_name_their_type():
    with pytest.raises(ProtocolError, match="set"):
        encode({"x": {1, 2}})
    with pytest.raises(ProtocolError, match="structured|dtype"):
        encode(np.zeros(2, dtype=[("a", "f4")]))


def test_every_combination_of_small_shapes_is_exact():
    for shape in itertools.product([1, 2], repeat=3):
        a = np.random.default_rng(0).random(shape)
        np.testing.assert_array_equal(roundtrip(a), a)


def test_container_marker_count_bounds_the_nesting_depth():
    """The cheap pre-check that lets decode skip its depth walk must never under-count."""
    from gym_remote.protocol.extensions import _container_markers

    rng = np.random.default_rng(0)

    def nested(depth: int):
        if depth == 0:
            return rng.normal(size=int(rng.integers(0, 4)))
        kind = int(rng.integers(0, 3))
        inner = nested(depth - 1)
        return {"k": inner, "x": 1.5} if kind == 0 else [inner, 2] if kind == 1 else (inner, "t")

    for depth in range(0, 30):
        header, _ = encode(nested(depth), Limits(inline_threshold=1 << 20))
        assert _container_markers(header) >= depth


def test_ints_past_64_bits_travel_and_giants_are_refused():
    """Gymnasium's seeds are 128-bit ints (np_random_seed of an unseeded env): they travel exactly."""
    from gym_remote.protocol import EXT_BIG_INT, MAX_BIG_INT_BYTES

    for value in (2**64, 2**128 - 1, -(2**100), {"seeds": (2**127, 5, -1)}):
        header, buffers = encode(value)
        assert decode(header, buffers) == value
    with pytest.raises(ProtocolError, match="cannot travel"):
        encode(2 ** (8 * MAX_BIG_INT_BYTES))
    for data in (b"", b"\x01" * (MAX_BIG_INT_BYTES + 1)):  # a peer's malformed big int
        with pytest.raises(ProtocolError, match="big int"):
            decode(msgpack.packb(msgpack.ExtType(EXT_BIG_INT, data)))
