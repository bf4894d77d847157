"""Compression of large array frames (gym_remote.protocol.compression): negotiated at HELLO, lossless,
bounded on inflation, and worth it on a capped link. Real servers, real sockets, a real capped link."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import lz4.block
import numpy as np
import pytest
import zmq
import zmq.auth
import zstandard

import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)
from gym_remote.bench.links import CappedLink
from gym_remote.client_session import ConnectOptions
from gym_remote.errors import ProtocolError
from gym_remote.local import LocalServer
from gym_remote.protocol import Codec, Kind, Limits, recv_frames, send_frames

REPO = Path(__file__).resolve().parent.parent
TASK = "gym_remote/Payload-v0"
CAMERA = {"shape": [256, 256, 3], "content": "camera"}


def _make(server: LocalServer, compression: str | None, **kw: Any) -> gym.Env:
    return gym.make(
        "Remote-IsaacSim-v0",
        host=server.local_host,
        port=server.local_port,
        task=TASK,
        task_kwargs=CAMERA,
        compression=compression,
        **kw,
    )


def _rollout(env: gym.Env, steps: int = 5) -> list[np.ndarray]:
    obs, _ = env.reset(seed=0)
    out = [obs.copy()]
    for _ in range(steps):
        obs, *_ = env.step(env.action_space.sample())
        out.append(obs.copy())
    return out


@pytest.fixture(scope="module")
def server() -> Any:
    with LocalServer("gymnasium", TASK, extra_args=["--max-message-bytes", str(2**20)]) as srv:
        yield srv


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_round_trip_is_bit_identical_to_raw(server: LocalServer, codec: str) -> None:
    plain, packed = _make(server, None), _make(server, codec)
    try:
        assert plain.unwrapped.compression is None
        assert packed.unwrapped.compression == codec
        for a, b in zip(_rollout(plain), _rollout(packed), strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert a.tobytes() == b.tobytes()
    finally:
        plain.close()
        packed.close()


def _request(server: LocalServer, frames: list[Any]) -> Any:
    """Send raw request frames on a fresh REQ socket; the decoded reply header (plain codec)."""
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 20000)
    sock.connect(f"tcp://{server.local_host}:{server.local_port}")
    try:
        send_frames(sock, frames)
        reply = recv_frames(sock)
        return Codec().decode(reply[0], reply[1:])
    finally:
        sock.close()


def _ping_frames(codec: str, array: np.ndarray) -> list[Any]:
    c = Codec()
    c.compress(codec, 0)
    return c.pack_request(Kind.PING, {"payload": array}, None, 7)


def test_compressed_requests_decode_and_bombs_are_refused(server: LocalServer) -> None:
    """The server (max message 1 MiB) inflates a good request, refuses three bombs, and keeps serving."""
    good = _request(server, _ping_frames("zstd", np.zeros(2**19, np.uint8)))
    assert good["ok"] is True and good["n"] == 7
    # 1. An honest frame whose array is past the server's limit: 2 MiB of zeros in ~100 bytes.
    frames = _ping_frames("zstd", np.zeros(2**21, np.uint8))
    assert len(bytes(frames[1])) < 1000
    reply = _request(server, frames)
    assert reply["ok"] is False and reply["e"]["code"] == "protocol"
    assert re.search(r"max_array_bytes|max_inflated_bytes", reply["e"]["message"])
    # 2. A small array whose zstd frame states (and holds) 64 MiB: refused before any allocation.
    frames = _ping_frames("zstd", np.zeros(4096, np.uint8))
    frames[1] = zstandard.ZstdCompressor(level=1).compress(b"\0" * 2**26)
    reply = _request(server, frames)
    assert reply["ok"] is False and "states 67108864 bytes" in reply["e"]["message"]
    # 3. The same with an lz4 block that expands past the array's 4096 bytes.
    frames = _ping_frames("lz4", np.zeros(4096, np.uint8))
    frames[1] = lz4.block.compress(b"\0" * 2**26, store_size=False)
    reply = _request(server, frames)
    assert reply["ok"] is False and "cannot decompress" in reply["e"]["message"]
    # The server is still serving, compressed or not.
    env = _make(server, "zstd")
    try:
        assert env.unwrapped.compression == "zstd"
        assert env.unwrapped.ping()["sessions"] >= 1
    finally:
        env.close()


def test_a_codec_nobody_agreed_to_is_refused() -> None:
    """Compression stays off unless both ends agree: a decoder that accepted nothing refuses a packed frame."""
    frames = _ping_frames("zstd", np.zeros(2**16, np.uint8))
    with pytest.raises(ProtocolError, match="did not agree to"):
        Codec().unpack_request(frames)
    inflating = Codec(Limits(max_inflated_bytes=2**16 - 1))
    inflating.accept(["zstd"])
    with pytest.raises(ProtocolError, match="max_inflated_bytes"):
        inflating.unpack_request(frames)


def test_server_with_compression_disabled_answers_plain() -> None:
    with LocalServer("gymnasium", TASK, extra_args=["--no-compression"]) as srv:
        env = _make(srv, "zstd")
        try:
            assert env.unwrapped.compression is None  # the client then sends raw frames too
            assert env.unwrapped._link.info["compression"] is None
            _rollout(env, 2)
            # and it refuses compressed frames outright
            reply = _request(srv, _ping_frames("zstd", np.zeros(2**16, np.uint8)))
            assert reply["ok"] is False and "did not agree to" in reply["e"]["message"]
        finally:
            env.close()


def test_server_without_the_library_answers_plain(tmp_path: Path) -> None:
    # The server's Python cannot import zstandard (as where it is not installed); lz4 it has.
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['zstandard'] = None\n")
    path = os.pathsep.join([str(tmp_path), str(REPO), os.environ.get("PYTHONPATH", "")])
    with LocalServer("gymnasium", TASK, env={"PYTHONPATH": path}) as srv:
        zstd, lz4_env = _make(srv, "zstd"), _make(srv, "lz4")
        try:
            assert zstd.unwrapped.compression is None
            assert lz4_env.unwrapped.compression == "lz4"
            for a, b in zip(_rollout(zstd, 2), _rollout(lz4_env, 2), strict=True):
                assert a.tobytes() == b.tobytes()
        finally:
            zstd.close()
            lz4_env.close()


def test_curve_with_compression(tmp_path: Path) -> None:
    """Compression rides inside CURVE's encryption: same observations, agreed codec, encrypted link."""
    _, secret = zmq.auth.create_certificates(str(tmp_path), "server")
    os.chmod(secret, 0o600)
    public, _ = zmq.auth.load_certificate(secret)
    with LocalServer("gymnasium", TASK, extra_args=["--curve-secret", secret]) as srv:
        envs = [_make(srv, codec, curve_server_key=public) for codec in (None, "zstd")]
        try:
            assert [e.unwrapped.compression for e in envs] == [None, "zstd"]
            for a, b in zip(*(_rollout(e, 3) for e in envs), strict=True):
                assert a.tobytes() == b.tobytes()
        finally:
            for e in envs:
                e.close()


def test_connect_options_check_the_fields() -> None:
    assert ConnectOptions(compression="lz4", compress_above=0).compress_above == 0
    with pytest.raises(ValueError, match=r"compression=\.\.\.\) takes None or one of 'zstd', 'lz4'"):
        ConnectOptions(compression="gzip")
    with pytest.raises(ValueError, match="compress_above"):
        ConnectOptions(compress_above=-1)


_CLIENT = """
import json, sys, time, hashlib
import gymnasium as gym, gym_remote
from gym_remote.bench.links import tx_bytes
host, port, counter = sys.argv[1], int(sys.argv[2]), tuple(sys.argv[3:5])
out = {}
for codec in (None, "zstd"):
    env = gym.make("Remote-IsaacSim-v0", host=host, port=port, task="gym_remote/Payload-v0",
                   task_kwargs={"shape": [4, 512, 512], "content": "camera"}, compression=codec, timeout=60)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    before, t0 = tx_bytes(counter), time.perf_counter()
    for _ in range(5):
        obs, *_ = env.step(env.action_space.sample())
    out[str(codec)] = {"bytes": (tx_bytes(counter) - before) / 5, "s": (time.perf_counter() - t0) / 5,
                       "digest": hashlib.sha256(obs.tobytes()).hexdigest(), "agreed": env.unwrapped.compression}
    env.close()
print(json.dumps(out))
"""


def test_compression_pays_on_a_capped_link() -> None:
    """A camera-like batch (4 x 512x512, flat regions) over 100 Mbit/s: the server's replies shrink on the wire."""
    with CappedLink("100mbit") as link:
        port = 5601
        server = subprocess.Popen(
            [*link.prefix("server"), sys.executable, "-m", "gym_remote", "serve", "--backend", "gymnasium",
             "--task", TASK, "--address", f"tcp://{link.server_addr}:{port}", "--insecure"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                line = server.stdout.readline() if server.stdout else ""
                if "GYM_REMOTE READY" in line or not line:
                    break
            assert "GYM_REMOTE READY" in line, f"the server did not start: {line!r}"
            done = subprocess.run(
                [*link.prefix("client"), sys.executable, "-c", _CLIENT, link.server_addr, str(port),
                 *link.counter("server")],
                capture_output=True, text=True, timeout=300, cwd=REPO,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr[-3000:]
            out = json.loads(done.stdout.strip().splitlines()[-1])
        finally:
            server.terminate()
            server.wait(10)
    plain, packed = out["None"], out["zstd"]
    print(f"capped link, 1 MiB camera batch per step: raw {plain}, zstd {packed}")
    assert packed["agreed"] == "zstd" and plain["agreed"] is None
    assert packed["digest"] == plain["digest"]  # lossless
    assert plain["bytes"] > 2**20  # the raw batch crossed the link...
    assert plain["bytes"] / packed["bytes"] > 3  # ...compressed ~8x (camera-like); 3x cannot happen uncompressed
    assert not subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.count(
        link.namespaces["server"]
    )
