"""Sending and receiving a message's frames on a ZeroMQ socket."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import zmq

from gym_remote.protocol.extensions import _as_buffer

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
