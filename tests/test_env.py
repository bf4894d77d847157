"""RemoteEnv against real server processes on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import gymnasium as gym
import numpy as np
import pytest
import zmq
from gymnasium.utils.env_checker import check_env
from gymnasium.utils.env_match import check_environments_match

import gym_remote
from gym_remote import ConnectOptions, RemoteEnv
from gym_remote.errors import (
    BadRequestError,
    LaunchError,
    ProtocolError,
    RemoteEnvError,
    RemoteTimeoutError,
    ServerBusyError,
    ServerError,
    SessionLostError,
    VersionMismatchError,
)
from gym_remote.protocol import Kind, Request, pack_request, unpack_reply


def connect(server, **kwargs) -> RemoteEnv:
    return RemoteEnv(server.local_host, server.local_port, **kwargs)


def test_check_env_passes_on_a_remote_deterministic_env(serve):
    server = serve("tests/DictObs-v0")
    with connect(server) as env:
        check_env(env, skip_render_check=True)


def test_remote_cartpole_matches_local_over_hundreds_of_steps(serve):
    server = serve("CartPole-v1")
    remote = gym.make("Remote-IsaacSim-v0", host=server.local_host, port=server.local_port)
    local = gym.make("CartPole-v1")
    assert remote.observation_space == local.observation_space
    assert remote.action_space == local.action_space
    for seed in (0, 1, 2):
        check_environments_match(local, remote, num_steps=300, seed=seed)
    remote.close()


def test_dict_observations_match_local(serve):
    server = serve("tests/DictObs-v0")
    remote = RemoteEnv(server.local_host, server.local_port)
    local = gym.make("tests/DictObs-v0")
    assert remote.observation_space == local.observation_space
    check_environments_match(local, remote, num_steps=200, seed=7)
    obs, _ = remote.reset(seed=3)
    _lobs, _ = local.reset(seed=3)
    assert obs["image"].dtype == np.uint8 and isinstance(obs["pair"], tuple)
    assert remote.observation_space.contains(obs)
    remote.close()


def test_types_returned_are_gymnasiums(serve):
    server = serve("tests/DictObs-v0")
    with connect(server) as env:
        env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
        assert isinstance(info, dict) and info["tag"] == "step" and info["dist"].dtype == np.float32
        obs2, *_ = env.step(env.action_space.sample())
        assert obs2["pos"] is not obs["pos"]


def test_wrong_actions_are_value_errors_before_sending(serve):
    server = serve("CartPole-v1")
    with connect(server) as env:
        env.reset(seed=0)
        for bad in (np.array([1, 0]), 2, 0.5, "left"):
            with pytest.raises(ValueError):
                env.step(bad)
        env.step(1)  # still fine


def test_server_side_validation_and_env_errors_keep_the_server_serving(serve):
    server = serve("tests/Raising-v0")
    good = connect(server)
    good.reset(seed=0)
    victim = connect(server)
    victim.reset(seed=0)
    with pytest.raises(ServerError, match="boom") as info:
        victim.step(2)
    assert info.value.remote_type == "RuntimeError" and "Traceback" in info.value.remote_traceback
    assert info.value.port == server.local_port and info.value.request == "step"
    # the action check on the server, bypassing the client's own check
    with pytest.raises(BadRequestError, match="shape"):
        victim._conn.request(Kind.STEP, {"action": np.zeros(3)}, session=victim.session)
    with pytest.raises(BadRequestError, match="dtype|integral"):
        victim._conn.request(Kind.STEP, {"action": np.float64(1.5)}, session=victim.session)
    assert good.step(1)[0].tolist() == [1.0, 1.0]
    good.close()
    victim.close()


def raw_socket(server) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(f"tcp://{server.local_host}:{server.local_port}")
    return sock


def test_bad_bytes_get_error_replies_and_others_keep_working(serve, tmp_path):
    import msgpack
    import msgpack_numpy

    server = serve("CartPole-v1")
    before = connect(server)
    before.reset(seed=0)
    target = tmp_path / "created-by-pickle"

    class Evil:
        def __reduce__(self):
            return (open, (str(target), "w"))

    evil = np.array([Evil()], dtype=object)
    attacks = [
        [os.urandom(100)],
        [b""],
        [msgpack.packb({"k": "self_destruct", "n": 1})],
        [msgpack.packb({"k": "step", "s": before.session, "b": {"action": evil}}, default=msgpack_numpy.encode)],
        [msgpack.packb({"k": "hello", "b": evil}, default=msgpack_numpy.encode)],
        pack_request(Request(Kind.STEP, {"action": np.zeros(512, np.float32)}, before.session, 1))[:1],
        [*pack_request(Request(Kind.PING)), b"unexpected extra frame"],
    ]
    for frames in attacks:
        sock = raw_socket(server)
        sock.send_multipart(frames)
        reply = unpack_reply(sock.recv_multipart())
        assert not reply.ok and reply.error.message, frames
        sock.close()
    assert not target.exists()
    after = connect(server)
    after.reset(seed=0)
    before.step(0)
    after.step(1)
    before.close()
    after.close()


def test_oversized_message_is_dropped_and_the_server_stays_up(serve):
    server = serve("CartPole-v1", "gymnasium", "--max-message-bytes", "100000")
    with connect(server, options=ConnectOptions(timeout=1.0, retries=0)) as env:
        env.reset(seed=0)
        with pytest.raises(RemoteTimeoutError, match="no reply"):
            env._conn.request(Kind.PING, {"blob": np.zeros(1 << 20, np.uint8)})
        assert env.ping()["sessions"] == 1  # a fresh socket after the timeout works
        env.step(0)


def test_version_mismatch_names_both_versions(serve):
    server = serve("CartPole-v1")
    env = connect(server)
    with pytest.raises(VersionMismatchError, match=r"client speaks 999, server speaks 1"):
        env._conn.request(Kind.HELLO, {"protocol": 999})
    env.close()


def test_max_sessions_gives_server_busy(serve):
    server = serve("CartPole-v1", "gymnasium", "--max-sessions", "2", "--max-sessions-per-peer", "2")
    a, b = connect(server), connect(server)
    with pytest.raises(ServerBusyError, match="max_sessions=2"):
        connect(server)
    a.close()
    c = connect(server)  # a closed session frees its slot
    b.close()
    c.close()


def test_unknown_task_is_refused_at_hello(serve):
    server = serve("CartPole-v1")
    with pytest.raises(BadRequestError, match="NoSuchEnv"):
        RemoteEnv(server.local_host, server.local_port, task="NoSuchEnv-v9")
    with pytest.raises(BadRequestError, match="module-qualified"):  # would import `os` on the server
        RemoteEnv(server.local_host, server.local_port, task="os:CartPole-v1")


def test_server_killed_mid_episode_then_back(serve):
    server = serve("CartPole-v1")
    port = server.local_port
    env = RemoteEnv(server.local_host, port, options=ConnectOptions(timeout=1.5, retries=1))
    env.reset(seed=0)
    env.step(0)
    os.kill(server.pid, signal.SIGKILL)
    server.proc.wait()
    t0 = time.monotonic()
    with pytest.raises(RemoteTimeoutError) as info:
        env.step(0)
    assert time.monotonic() - t0 < 1.5 + 1.0
    assert info.value.port == port and "step" in str(info.value)
    serve("CartPole-v1", address=f"tcp://127.0.0.1:{port}")
    with pytest.raises(SessionLostError):
        env.step(0)  # a new server does not know the old session
    obs, _ = env.reset(seed=0)  # ...and reset opens a new one transparently
    assert env.observation_space.contains(obs)
    env.step(1)
    env.close()


def test_no_server_at_all_fails_within_the_connect_timeout():
    t0 = time.monotonic()
    with pytest.raises(gym_remote.ConnectError):  # refused at once (tests/test_connect_failures.py)
        RemoteEnv("127.0.0.1", 9, options=ConnectOptions(timeout=0.5, connect_timeout=0.5, retries=0))
    assert time.monotonic() - t0 < 3


def test_eight_concurrent_clients_get_independent_results(serve):
    server = serve("tests/DictObs-v0")
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            env = connect(server)
            rng = np.random.default_rng(i)
            actions = rng.uniform(-0.2, 0.2, (60, 3)).astype(np.float32)
            obs, _ = env.reset(seed=i)
            trace = [obs["pos"]]
            for a in actions:
                obs, _r, term, trunc, _ = env.step(a)
                trace.append(obs["pos"])
                if term or trunc:
                    break
            env.close()
            results[i] = trace
        except BaseException as exc:  # surface thread failures in the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for i in range(8):  # each equals the same env run alone, locally
        local = gym.make("tests/DictObs-v0")
        obs, _ = local.reset(seed=i)
        expected = [obs["pos"]]
        for a in np.random.default_rng(i).uniform(-0.2, 0.2, (60, 3)).astype(np.float32):
            obs, _r, term, trunc, _ = local.step(a)
            expected.append(obs["pos"])
            if term or trunc:
                break
        np.testing.assert_array_equal(np.array(results[i]), np.array(expected))


def test_state_render_and_close(serve):
    server = serve("tests/DictObs-v0")
    env = RemoteEnv(server.local_host, server.local_port, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    frame = env.render()
    assert frame.shape == (16, 16, 3) and frame[0, 0, 0] == 1
    with pytest.raises(ServerError, match="does not expose its state"):
        env.get_state()
    env.close()
    env.close()  # idempotent


def test_python_backend_adapts_old_style_envs(serve):
    server = serve("tests.envs:make_old_style", "python", "--kwargs", '{"limit": 4}')
    env = RemoteEnv(server.local_host, server.local_port)
    obs, info = env.reset(seed=5)
    obs2, _ = env.reset(seed=5)
    assert obs == obs2 and info == {}
    state = env.get_state()
    assert state == {"x": float(obs[0]), "t": 0}
    flags = [env.step(1)[2:4] for _ in range(4)]
    assert flags[-1] == (False, True)  # done with TimeLimit.truncated -> truncated, not terminated
    env.set_state(state)
    assert env.step(0)[0][0] == state["x"] - 1
    env.close()


def test_with_state_attaches_mujoco_state_to_each_reply(serve):
    server = serve("gym_remote/StackCube-v0")
    env = RemoteEnv(server.local_host, server.local_port, with_state=True)
    assert env.state_schema is not None and [e.name for e in env.state_schema.entities] == [
        "franka",
        "cube",
        "base",
    ]
    env.reset(seed=1)
    s0 = env.last_state
    env.step(env.action_space.sample())
    s1 = env.last_state
    assert s0.shape == (env.state_schema.size,) and not np.array_equal(s0, s1)
    np.testing.assert_array_equal(env.get_state(), s1)
    env.set_state(s0)
    np.testing.assert_array_equal(env.get_state(), s0)
    env.close()


def test_make_without_host_starts_and_stops_a_local_server():
    env = gym.make("gym_remote:Remote-IsaacSim-v0", task="CartPole-v1")
    server = env.unwrapped._server
    assert server.alive
    env.reset(seed=0)
    env.step(0)
    env.close()
    assert server.proc.returncode == 0 and not server.alive


def test_local_server_that_cannot_start_reports_its_stderr():
    with pytest.raises(LaunchError, match="exited") as info:
        gym_remote.local.LocalServer("gymnasium", "NoSuchEnv-v1")
    assert "NoSuchEnv" in str(info.value)


def serve_command(address: str) -> list[str]:
    return [sys.executable, "-m", "gym_remote", "serve", "--task", "CartPole-v1", "--address", address]


def test_serve_prints_one_ready_line_and_exits_zero_on_sigterm():
    proc = subprocess.Popen(
        serve_command("tcp://127.0.0.1:*"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("GYM_REMOTE READY tcp://127.0.0.1:")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and out == "" and "closed" in err


def test_non_loopback_bind_needs_curve_or_insecure():
    proc = subprocess.run(
        serve_command("tcp://0.0.0.0:*"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "refusing to bind" in proc.stderr and "SSH tunnel" in proc.stderr


def test_curve_encrypts_and_authenticates_the_server(serve, tmp_path):
    import zmq.auth

    public_file, secret_file = zmq.auth.create_certificates(str(tmp_path), "server")
    os.chmod(secret_file, 0o600)  # a secret key others may read is refused
    server_public, _ = zmq.auth.load_certificate(public_file)
    server = serve("CartPole-v1", "gymnasium", "--curve-secret", secret_file)
    with RemoteEnv(server.local_host, server.local_port, options=ConnectOptions(curve_server_key=server_public)) as env:
        env.reset(seed=0)
        env.step(1)
    wrong_public, _ = zmq.curve_keypair()
    with pytest.raises(RemoteTimeoutError):
        RemoteEnv(
            server.local_host,
            server.local_port,
            options=ConnectOptions(curve_server_key=wrong_public, connect_timeout=1.0, retries=0),
        )
    with pytest.raises(RemoteEnvError):
        RemoteEnv(  # a plaintext client
            server.local_host, server.local_port, options=ConnectOptions(connect_timeout=1.0, retries=0)
        )


def test_curve_clients_folder_admits_only_listed_client_keys(serve, tmp_path):
    import zmq.auth

    (tmp_path / "server").mkdir()
    (tmp_path / "clients").mkdir()
    (tmp_path / "others").mkdir()
    public_file, secret_file = zmq.auth.create_certificates(str(tmp_path / "server"), "server")
    os.chmod(secret_file, 0o600)  # a secret key others may read is refused
    _, client_secret_file = zmq.auth.create_certificates(str(tmp_path / "clients"), "alice")
    _, stranger_secret_file = zmq.auth.create_certificates(str(tmp_path / "others"), "mallory")
    server_public, _ = zmq.auth.load_certificate(public_file)
    server = serve(
        "CartPole-v1", "gymnasium", "--curve-secret", secret_file, "--curve-clients", str(tmp_path / "clients")
    )
    alice_public, alice_secret = zmq.auth.load_certificate(client_secret_file)
    with RemoteEnv(
        server.local_host,
        server.local_port,
        options=ConnectOptions(
            curve_server_key=server_public, curve_public_key=alice_public, curve_secret_key=alice_secret
        ),
    ) as env:
        env.reset(seed=0)
    mallory_public, mallory_secret = zmq.auth.load_certificate(stranger_secret_file)
    with pytest.raises(RemoteTimeoutError):
        RemoteEnv(
            server.local_host,
            server.local_port,
            options=ConnectOptions(
                curve_server_key=server_public,
                curve_public_key=mallory_public,
                curve_secret_key=mallory_secret,
                connect_timeout=1.0,
                retries=0,
            ),
        )


def test_a_client_cannot_make_the_server_start_servers(serve, tmp_path):
    """Remote-IsaacSim-v0 inside a server could launch a python-backend server: code from the network."""
    server = serve("CartPole-v1")
    marker = tmp_path / "executed"
    with pytest.raises(BadRequestError, match="does not serve clients"):
        RemoteEnv(
            server.local_host,
            server.local_port,
            task="Remote-IsaacSim-v0",
            task_kwargs={"backend": "python", "task": "os:system", "task_kwargs": {"command": f"touch {marker}"}},
        )
    assert not marker.exists()


def test_idle_sessions_expire(serve):
    server = serve("CartPole-v1", "gymnasium", "--idle-timeout", "0.5")
    env = connect(server)
    env.reset(seed=0)
    # the server sweeps idle sessions about once a second; PING does not touch a session, so poll it
    deadline = time.monotonic() + 15
    while env.ping()["sessions"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert env.ping()["sessions"] == 0, "the idle session was not closed within 15 s"
    with pytest.raises(SessionLostError):
        env.step(0)
    env.reset()
    env.step(0)
    env.close()
    assert ProtocolError  # imported for the hierarchy


def test_local_server_exits_when_its_client_is_killed(tmp_path):
    """A client SIGKILLed (no exit handlers) must not leave its local server running."""
    script = tmp_path / "client.py"
    script.write_text(
        "import sys, time\n"
        "from gym_remote.local import LocalServer\n"
        "s = LocalServer('gymnasium', 'CartPole-v1')\n"
        "print(s.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    client = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    server_pid = int(client.stdout.readline())
    os.kill(client.pid, signal.SIGKILL)
    client.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            break
        try:
            with open(f"/proc/{server_pid}/stat") as f:  # a zombie waiting for init counts as gone
                if f.read().split(") ")[1].startswith("Z"):
                    break
        except FileNotFoundError:
            break
        time.sleep(0.2)
    else:
        os.kill(server_pid, signal.SIGKILL)
        pytest.fail("the local server outlived its killed client")


def test_an_env_that_prints_a_lot_does_not_stall_its_local_server(serve):
    """stdout of a local server is not a pipe nobody reads: 200 KiB of prints must not block it."""
    server = serve("tests/Chatty-v0")
    with connect(server, options=ConnectOptions(timeout=5.0)) as env:
        env.reset(seed=0)
        for _ in range(200):
            env.step(0)


def test_a_request_the_server_cannot_decode_leaves_the_client_usable(serve):
    server = serve("CartPole-v1")
    with connect(server) as env:
        env.reset(seed=0)
        deep: dict = {}
        cur = deep
        for _ in range(80):  # past the server's max_depth=64
            cur["x"] = {}
            cur = cur["x"]
        with pytest.raises(ProtocolError, match="max_depth"):
            env.reset(options=deep)
        env.reset(seed=0)
        env.step(1)
