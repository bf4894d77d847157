"""What a client sends is bounded: where it reaches a log line or an error reply (issue 13, item 5),
and in what it can make a server build: sub-envs, keyword sizes, worker processes, sessions per peer
(item 6). Every refusal names the limit and the serve option that raises it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
import zmq.auth

from gym_remote import BadRequestError, ConnectOptions, RemoteEnv, ServerBusyError, ServerError
from gym_remote.client import Connection
from gym_remote.client_session import hello_body
from gym_remote.protocol import Kind
from gym_remote.vector import RemoteVectorEnv


def test_a_huge_hello_does_not_come_back_huge_nor_fill_the_log(serve):
    server = serve("CartPole-v1")
    size_before = os.path.getsize(server.log_path)
    huge = "x" * 2**20
    for task, kwargs, error in [
        ("Ant-v5", {"frame_skp": huge}, BadRequestError),  # quoted by the build error
        ("CartPole-v1", {huge[:5000]: 1}, BadRequestError),  # a huge keyword name
        ("tests/Raising-v0", {}, None),
    ]:
        if error is None:
            with RemoteEnv(server.local_host, server.local_port, task=task) as env:
                env.reset(seed=0)
                with pytest.raises(ServerError) as info:
                    env.step(2)  # the env raises; its message is short, the reply stays small
                assert len(str(info.value)) < 30_000
            continue
        with pytest.raises(error) as info:
            RemoteEnv(server.local_host, server.local_port, task=task, task_kwargs=kwargs)
        assert len(str(info.value)) < 30_000, len(str(info.value))
    assert os.path.getsize(server.log_path) - size_before < 50_000


# ------------------------------------------------------------------ client-chosen sizes (item 6)


def raw_hello(server, **fields):
    """A HELLO as any client could send it (no client-side checks): the reply or the error."""
    conn = Connection(server.local_host, server.local_port, timeout=20.0, retries=0)
    try:
        return conn.request(Kind.HELLO, {**hello_body("test"), "hello_id": "h", **fields})
    finally:
        conn.close()


def test_sub_envs_per_session_are_capped_and_the_refusal_names_the_option(serve):
    server = serve("CartPole-v1", "gymnasium", "--max-envs", "8")
    t0 = time.monotonic()
    for n in (9, 5000, 2**62):  # 2**62 must not even be tried
        with pytest.raises(BadRequestError, match=r"num_envs=\d+ exceeds .* 8 sub-envs .*serve --max-envs"):
            raw_hello(server, task="CartPole-v1", num_envs=n)
    assert time.monotonic() - t0 < 10
    with pytest.raises(BadRequestError, match="serve --max-envs"):
        RemoteVectorEnv(9, server.local_host, server.local_port)
    venv = RemoteVectorEnv(8, server.local_host, server.local_port)  # the limit itself is fine
    venv.reset(seed=0)
    venv.close()
    default = serve("CartPole-v1")  # a safe default without the option
    with pytest.raises(BadRequestError, match="limit of 1024 sub-envs"):
        raw_hello(default, task="CartPole-v1", num_envs=5000)


def test_task_kwargs_size_is_capped(serve):
    server = serve("CartPole-v1", "gymnasium", "--max-kwargs-bytes", "1000")
    with pytest.raises(BadRequestError, match="exceed this server's limit of 1000 .*serve --max-kwargs-bytes"):
        RemoteEnv(server.local_host, server.local_port, task_kwargs={"sutton_barto_reward": True, "pad": "x" * 2000})
    with RemoteEnv(server.local_host, server.local_port, task_kwargs={"sutton_barto_reward": True}) as env:
        env.reset(seed=0)


def test_async_worker_processes_are_capped_over_all_sessions(serve):
    server = serve("CartPole-v1", "gymnasium", "--vectorization", "async", "--max-processes", "3")
    endpoint = (server.local_host, server.local_port)
    with pytest.raises(BadRequestError, match="4 worker processes, past this server's limit of 3 .*--max-processes"):
        RemoteVectorEnv(4, *endpoint)
    first = RemoteVectorEnv(2, *endpoint)
    first.reset(seed=0)
    with pytest.raises(ServerBusyError, match="2 of 3 worker processes.*--max-processes"):
        RemoteVectorEnv(2, *endpoint)
    first.close()  # its workers end with its session: room again
    second = RemoteVectorEnv(3, *endpoint)
    second.reset(seed=0)
    second.step(np.zeros(3, np.int64))
    second.close()


def test_one_peer_cannot_lock_the_others_out(serve, tmp_path):
    """A peer is a client key when the server admits keys one by one: alice filling her share leaves bob room."""
    for folder in ("server", "clients"):
        (tmp_path / folder).mkdir()
    _, server_secret = zmq.auth.create_certificates(str(tmp_path / "server"), "server")
    os.chmod(server_secret, 0o600)  # a secret key others may read is refused
    keys = {}
    for name in ("alice", "bob"):
        _, secret_file = zmq.auth.create_certificates(str(tmp_path / "clients"), name)
        keys[name] = zmq.auth.load_certificate(secret_file)
    server = serve(
        "CartPole-v1",
        "gymnasium",
        "--curve-secret",
        server_secret,
        "--curve-clients",
        str(tmp_path / "clients"),
        "--max-sessions",
        "4",
    )
    server_public, _ = zmq.auth.load_certificate(server_secret)

    def env(name):
        public, secret = keys[name]
        return RemoteEnv(
            server.local_host,
            server.local_port,
            options=ConnectOptions(curve_server_key=server_public, curve_public_key=public, curve_secret_key=secret),
        )

    alice = [env("alice"), env("alice")]  # half of --max-sessions 4
    with pytest.raises(ServerBusyError, match=r"holds 2 sessions .*max_sessions_per_peer=2.*--max-sessions-per-peer"):
        env("alice")
    bob = env("bob")
    bob.reset(seed=0)
    bob.step(0)
    alice[0].close()
    alice.append(env("alice"))  # a closed session frees her share
    for e in (*alice, bob):
        e.close()


def test_sessions_per_peer_by_address_and_the_option_that_raises_it(serve):
    server = serve("CartPole-v1", "gymnasium", "--max-sessions", "6", "--max-sessions-per-peer", "3")
    envs = [RemoteEnv(server.local_host, server.local_port) for _ in range(3)]
    with pytest.raises(ServerBusyError, match=r"server busy for 127\.0\.0\.1: it already holds 3 sessions"):
        RemoteEnv(server.local_host, server.local_port)
    for e in envs:
        e.close()


# ------------------------------------------------------ what a client can make a server do (item 8)


def test_client_keywords_cannot_name_server_files_by_default(serve, tmp_path):
    """Ant-v5's xml_file opens any path it is given: a client may not name one, and learns nothing of it."""
    server = serve("CartPole-v1")
    secret = tmp_path / "secret.xml"
    secret.write_text("<mujoco/>")
    for path in (str(secret), "/nonexistent.xml", "~/x.xml", "./x.xml", "sub/../../../x.xml"):
        with pytest.raises(BadRequestError, match="names a file on the server") as info:
            RemoteEnv(server.local_host, server.local_port, task="Ant-v5", task_kwargs={"xml_file": path})
        assert "does not exist" not in info.value.message  # the same answer whether the file exists or not
    with pytest.raises(BadRequestError, match="names a file"):  # nested, and in Hydra-style overrides
        RemoteEnv(server.local_host, server.local_port, task_kwargs={"overrides": ["env.asset=/etc/passwd"]})
    allowing = serve("CartPole-v1", "gymnasium", "--allow-client-paths")
    with pytest.raises(BadRequestError, match="nonexistent.xml") as info:  # the operator's choice: it reaches Ant
        RemoteEnv(allowing.local_host, allowing.local_port, task="Ant-v5", task_kwargs={"xml_file": "/nonexistent.xml"})
    assert "names a file" not in str(info.value)


def test_fixed_task_fixes_the_servers_keywords_and_allow_kwargs_lists_the_clients(serve):
    server = serve(
        "CartPole-v1",
        "gymnasium",
        "--fixed-task",
        "--kwargs",
        '{"sutton_barto_reward": true}',
        "--allow-kwargs",
        "render_mode",
    )
    endpoint = (server.local_host, server.local_port)
    with pytest.raises(BadRequestError, match=r"\['sutton_barto_reward'\] are fixed by this server"):
        RemoteEnv(*endpoint, task_kwargs={"sutton_barto_reward": False})
    with pytest.raises(BadRequestError, match=r"not allowed by this server; it allows: render_mode .*--allow-kwargs"):
        RemoteEnv(*endpoint, task_kwargs={"max_episode_steps": 3})
    with pytest.raises(BadRequestError, match="only serves 'CartPole-v1'"):
        RemoteEnv(*endpoint, task="Acrobot-v1")
    with RemoteEnv(*endpoint, task_kwargs={"sutton_barto_reward": True}) as env:  # the fixed value itself is fine
        env.reset(seed=0)
        assert env.step(0)[1] == 0.0  # Sutton and Barto's reward: 0 while the pole stands


def test_a_task_config_fixes_and_allow_lists_keywords(serve, tmp_path):
    config = tmp_path / "cartpole.yaml"
    config.write_text("backend: gymnasium\ntask: CartPole-v1\nfixed_task: true\nallow_kwargs: []\n")
    server = serve(None, "gymnasium", "--config", str(config))
    with pytest.raises(BadRequestError, match="it allows: none"):
        RemoteEnv(server.local_host, server.local_port, task_kwargs={"sutton_barto_reward": True})
    with RemoteEnv(server.local_host, server.local_port) as env:
        env.reset(seed=0)


def test_a_task_configs_num_envs_caps_a_session_and_max_envs_wins(serve, tmp_path):
    config = tmp_path / "cartpole.yaml"
    config.write_text("backend: gymnasium\ntask: CartPole-v1\nnum_envs: 2\n")
    server = serve(None, "gymnasium", "--config", str(config))
    with pytest.raises(BadRequestError, match=r"num_envs=3 exceeds .* 2 sub-envs"):
        RemoteVectorEnv(3, server.local_host, server.local_port)
    RemoteVectorEnv(2, server.local_host, server.local_port).close()
    server = serve(None, "gymnasium", "--config", str(config), "--max-envs", "3")
    RemoteVectorEnv(3, server.local_host, server.local_port).close()


def test_a_bad_num_envs_in_a_task_config_is_named(tmp_path):
    from gym_remote.config import TaskConfig, load

    config = tmp_path / "cartpole.yaml"
    config.write_text("task: CartPole-v1\nnum_envs: -4\n")
    with pytest.raises(
        ValueError,
        match=r"TaskConfig.num_envs must be a positive integer or null, not -4 \(from config .*cartpole.yaml\)",
    ):
        load(TaskConfig, config)


# ------------------------------------------------------ the whole message is bounded (issue 22, item 3)


def _peak_rss_mb(pid: int) -> float:
    """The peak resident memory of process ``pid`` (VmHWM), in MB."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def test_a_message_of_many_frames_is_bounded_as_a_whole_before_it_is_buffered(serve):
    """libzmq's MAXMSGSIZE bounds each frame, and libzmq holds every frame of a multipart message until
    the last arrives: 4 clients x 200 frames of 1 MB against a 1 MiB limit grew the server by ~730 MB.
    The server now closes a connection that sends more than one message's worth before a reply; a
    client that keeps to the limit is served as before, request after request."""
    server = serve("CartPole-v1", "gymnasium", "--max-message-bytes", str(2**20))
    # a client within the limit: 20 requests of 4 x 200 kB arrays each on one connection (16 MB in all)
    conn = Connection(server.local_host, server.local_port, timeout=30.0, retries=0)
    try:
        for _ in range(20):
            conn.request(Kind.PING, {"pad": [np.full(25_000, i, np.float64) for i in range(4)]})
    finally:
        conn.close()
    before = _peak_rss_mb(server.pid)
    ctx = zmq.Context()
    blob = b"x" * 10**6
    floods = []
    try:
        for _ in range(4):
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(f"tcp://{server.local_host}:{server.local_port}")
            floods.append(sock)
        for sock in floods:
            sock.send_multipart([b"", *[blob] * 200], copy=False)
        time.sleep(8.0)  # 800 MB reach a server on loopback well within this, if it reads them
        grown = _peak_rss_mb(server.pid) - before
    finally:
        for sock in floods:
            sock.close(linger=0)
        ctx.term()
    print(f"server peak RSS {before:.0f} MB -> {before + grown:.0f} MB (+{grown:.0f} MB) under 4 x 200 x 1 MB")
    assert grown < 120, f"the server's peak RSS grew by {grown:.0f} MB"
    with RemoteEnv(server.local_host, server.local_port) as env:  # and it serves on
        env.reset(seed=0)
        env.step(0)
    assert "without a reply in between" in Path(server.log_path).read_text()


def test_allow_kwargs_takes_fnmatch_patterns_and_repeats(serve):
    server = serve("CartPole-v1", "gymnasium", "--allow-kwargs", "sutton_*", "--allow-kwargs", "render_mode")
    endpoint = (server.local_host, server.local_port)
    with RemoteEnv(*endpoint, task_kwargs={"sutton_barto_reward": True}) as env:
        env.reset(seed=0)
    with pytest.raises(BadRequestError, match=r"\['max_episode_steps'\] are not allowed .*render_mode, sutton_\*"):
        RemoteEnv(*endpoint, task_kwargs={"max_episode_steps": 3})


def test_a_client_string_that_reads_the_servers_environment_is_refused(serve):
    server = serve("CartPole-v1")
    with pytest.raises(BadRequestError, match="names a file on the server"):
        RemoteEnv(server.local_host, server.local_port, task_kwargs={"sutton_barto_reward": "${oc.env:HOME}"})
