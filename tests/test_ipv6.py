"""IPv6 endpoints, server and client: ``serve --address 'tcp://[::1]:PORT'`` (issue 13, item 4)."""

from __future__ import annotations

import socket
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from gym_remote import LaunchError, RemoteEnv
from gym_remote.local import LocalServer
from gym_remote.vector import RemoteVectorEnv


def free_ipv6_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(("::1", 0))
        return s.getsockname()[1]


def test_serve_binds_ipv6_loopback_and_every_client_reaches_it(serve):
    port = free_ipv6_port()
    server = serve("CartPole-v1", address=f"tcp://[::1]:{port}")
    assert server.endpoint == f"tcp://[::1]:{port}" and server.local_host == "::1"
    with RemoteEnv("::1", port, task="CartPole-v1") as env:
        local = gym.make("CartPole-v1")
        obs, _ = env.reset(seed=3)
        np.testing.assert_array_equal(obs, local.reset(seed=3)[0])
        np.testing.assert_array_equal(env.step(1)[0], local.step(1)[0])
    ipv4 = serve("CartPole-v1")  # fan-out over an IPv6 and an IPv4 server
    venv = RemoteVectorEnv(4, hosts=[f"[::1]:{port}", f"127.0.0.1:{ipv4.local_port}"])
    try:
        obs, _ = venv.reset(seed=0)
        reference = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 4)
        np.testing.assert_array_equal(obs, reference.reset(seed=0)[0])
    finally:
        venv.close()
    out = subprocess.run(
        [sys.executable, "-m", "gym_remote", "ping", f"[::1]:{port}"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and f"::1:{port} gym-remote" in out.stdout, out.stderr


def test_ipv6_wildcard_needs_curve_or_insecure_like_ipv4():
    with pytest.raises(LaunchError, match="reachable from other machines"):
        LocalServer("gymnasium", "CartPole-v1", address="tcp://[::]:*", startup_timeout=60)


def test_ipv4_endpoints_are_reported_as_before(serve):
    """IPv6 is enabled only for IPv6 addresses: an IPv4 server's READY line is not an IPv4-mapped address."""
    server = serve("CartPole-v1")
    assert server.endpoint.startswith("tcp://127.0.0.1:") and server.local_host == "127.0.0.1"
