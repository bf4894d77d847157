"""The SSH launcher against a real sshd on 127.0.0.1 (see tests/sshd.py).

Each test checks what a user of a GPU box would otherwise find out the hard way: that close()
leaves no server behind, that a broken server fails fast with its traceback, that a crashed run's
server is replaced but an unrelated process is never killed, and that SSH problems are named.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gym_remote.client import Connection
from gym_remote.config import CONFIG_ROOT, load
from gym_remote.errors import LaunchError
from gym_remote.launch import (
    HostConfig,
    RemoteLauncher,
    follow_log,
    launch_server,
    list_servers,
    read_log,
    resolve_config,
    stop_server,
)
from gym_remote.launch.ssh import SshClient
from gym_remote.launch.tunnels import FabricTunnel, OpenSshTunnel
from gym_remote.protocol import Kind

try:
    from tests.sshd import REPO_ROOT, SshServer, free_port, ssh_host, sshd
except ImportError:  # tests/ is not a package: pytest put it on sys.path itself
    from sshd import REPO_ROOT, SshServer, free_port, ssh_host, sshd  # type: ignore[no-redef]  # noqa: F401

pytestmark = pytest.mark.timeout(120)


def _process_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped by init) counts as gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def _wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _process_alive(pid):
            return True
        time.sleep(0.05)
    return False


def _roundtrip(host: str, port: int, diagnostics: Any = None) -> None:
    """HELLO, RESET, STEP with the raw client: the tunnel carries real requests."""
    conn = Connection(host, port, timeout=10, retries=0, diagnostics=diagnostics)
    try:
        hello = conn.request(Kind.HELLO, {"protocol": 1, "client": "test", "hello_id": "x"})
        session = hello["session"]
        reset = conn.request(Kind.RESET, {"seed": 3}, session=session)
        assert reset["obs"].shape == (4,)
        step = conn.request(Kind.STEP, {"action": 1}, session=session)
        assert step["reward"] == 1.0
        conn.request(Kind.CLOSE, session=session)
    finally:
        conn.close()


def _pid_file(cfg: dict[str, Any], port: int) -> Path:
    return Path(cfg["runtime_dir"]) / f"server-{port}.pid"


# ------------------------------------------------------------------------------------------ happy


@pytest.mark.parametrize("tunnel", ["openssh", "fabric", "none"])
def test_launch_step_close(ssh_host: dict[str, Any], tunnel: str) -> None:
    handle = launch_server(**ssh_host, tunnel=tunnel)
    pid, port = handle.pid, handle.remote_port
    assert pid is not None and port is not None
    try:
        assert _process_alive(pid)
        assert _pid_file(ssh_host, port).read_text().strip() == str(pid)
        if tunnel == "none":
            assert (handle.local_host, handle.local_port) == ("127.0.0.1", port)
        else:
            assert handle.local_host == "127.0.0.1" and handle.local_port != port
        _roundtrip(handle.local_host, handle.local_port, handle.log_tail)
        assert "GYM_REMOTE READY" in handle.log_tail()
    finally:
        handle.close()
    assert _wait_gone(pid), f"server PID {pid} still runs after close()"
    assert not _pid_file(ssh_host, port).exists()
    handle.close()  # idempotent
    if tunnel != "none":  # the tunnel is gone with it
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", handle.local_port), timeout=1):
            pass


def test_remote_env_launch(ssh_host: dict[str, Any], sshd: SshServer) -> None:
    """The user's path: gym.make(..., launch=...) starts the server over SSH and close() stops it."""
    import gymnasium as gym

    import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)

    # `port` and `connect_timeout` are RemoteEnv's own (server port, HELLO timeout): SSH ones go
    # in the launch mapping.
    options = {k: v for k, v in ssh_host.items() if k not in ("host", "port", "connect_timeout", "task", "backend")}
    env = gym.make(
        "Remote-IsaacSim-v0",
        host="127.0.0.1",
        task="CartPole-v1",
        launch={"port": sshd.port, "connect_timeout": 5},
        **options,
    )
    try:
        pid = env.unwrapped._server.pid
        obs, _ = env.reset(seed=0)
        assert obs.shape == (4,)
        assert env.step(env.action_space.sample())[1] == 1.0
    finally:
        env.close()
    assert _wait_gone(pid)


def test_launch_mapping_task_kwargs_are_the_servers_settings(ssh_host: dict[str, Any], sshd: SshServer) -> None:
    """``launch={"task_kwargs": ...}`` becomes the server's --kwargs (settings a client may not send)."""
    import gymnasium as gym

    import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)

    options = {k: v for k, v in ssh_host.items() if k not in ("host", "port", "connect_timeout", "task", "backend")}
    launch = {"port": sshd.port, "connect_timeout": 5, "task_kwargs": {"sutton_barto_reward": True}}
    env = gym.make("Remote-IsaacSim-v0", host="127.0.0.1", task="CartPole-v1", launch=launch, **options)
    try:
        env.reset(seed=0)
        assert env.step(0)[1] == 0.0  # Sutton and Barto's reward (0 while the pole stands): the server's setting
    finally:
        env.close()


def test_vector_env_launches_one_server_per_host(ssh_host: dict[str, Any], sshd: SshServer) -> None:
    """Fan-out with the launcher: each host of ``gym.make_vec(hosts=[...])`` gets its own server over SSH."""
    import gymnasium as gym

    import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)

    options = {k: v for k, v in ssh_host.items() if k not in ("host", "port", "connect_timeout", "task", "backend")}
    venv = gym.make_vec(
        "Remote-IsaacSim-v0",
        num_envs=3,
        hosts=["127.0.0.1", "127.0.0.1"],
        task="CartPole-v1",
        launch={"port": sshd.port, "connect_timeout": 5},
        **options,
    )
    try:
        pids = [shard.link.server.pid for shard in venv.unwrapped._shards]
        assert len(set(pids)) == 2
        obs, _ = venv.reset(seed=0)
        assert obs.shape == (3, 4)
        venv.step([0, 1, 0])
    finally:
        venv.close()
    assert all(_wait_gone(pid) for pid in pids)


def test_fabric_tunnel_carries_large_observations_on_several_connections(ssh_host: dict[str, Any]) -> None:
    """The paramiko forwarder (wide window, large packets and reads) moves 4 MiB observations intact,
    for two clients at once and for one that connects after the others closed."""
    from gym_remote.env import RemoteEnv

    kwargs = {"shape": [2048, 2048]}
    handle = launch_server(**{**ssh_host, "task": "gym_remote/Payload-v0", "task_kwargs": kwargs}, tunnel="fabric")
    try:
        envs = [RemoteEnv(handle.local_host, handle.local_port, task_kwargs=kwargs) for _ in range(2)]
        for env in envs:
            env.reset(seed=0)
        for t in range(1, 6):
            for env in envs:
                obs, reward, *_ = env.step(np.zeros(4, np.float32))
                assert obs.shape == (2048, 2048) and obs.flat[0] == t and reward == float(t)
                assert not obs.flat[1:].any()
        for env in envs:
            env.close()
        late = RemoteEnv(handle.local_host, handle.local_port, task_kwargs=kwargs)
        assert late.reset(seed=0)[0].shape == (2048, 2048)
        late.close()
    finally:
        handle.close()


@contextlib.contextmanager
def _echo_server() -> Iterator[int]:
    """A TCP echo server on 127.0.0.1 (the far end of a tunnel); yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(1 << 20):
                conn.sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(None)
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()


def _echo_through(port: int, size: int) -> None:
    """Send ``size`` random bytes to 127.0.0.1:``port`` and check they all come back, in order."""
    payload = os.urandom(size)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        sender = threading.Thread(target=s.sendall, args=(payload,), daemon=True)
        sender.start()
        back = bytearray()
        while len(back) < size and (data := s.recv(1 << 20)):
            back += data
        sender.join()
    assert back == payload


def _open_tunnel(kind: str, ssh_host: dict[str, Any], remote_port: int, local_port: int) -> Any:
    cfg = HostConfig(**ssh_host)
    if kind == "openssh":
        return OpenSshTunnel(cfg, remote_port, local_port, 10)
    return FabricTunnel(cfg, remote_port, local_port, 10)


@pytest.mark.parametrize("kind", ["openssh", "fabric", "fabric-in-process", "fabric-frozen"])
def test_tunnel_carries_bytes_and_its_process_ends_with_close(
    ssh_host: dict[str, Any], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3 MiB each way through each tunnel, twice at once; close() ends the tunnel's process (ssh, or
    the paramiko forwarder) and the local port; the in-process forwarder stops listening. A frozen
    app (no interpreter for ``-m``) forwards in-process on an SSH login of the tunnel's own."""
    with _echo_server() as remote_port:
        local_port = free_port()
        ssh = None
        if kind == "fabric-in-process":
            ssh = SshClient(HostConfig(**ssh_host))
            tunnel = FabricTunnel(ssh.connection, remote_port, local_port, 10)
            assert tunnel.proc is None
        elif kind == "fabric-frozen":
            monkeypatch.setattr(sys, "frozen", True, raising=False)
            tunnel = FabricTunnel(HostConfig(**ssh_host), remote_port, local_port, 10)
            assert tunnel.proc is None and tunnel._own_ssh is not None
        else:
            tunnel = _open_tunnel(kind, ssh_host, remote_port, local_port)
            assert tunnel.proc is not None
        pid = tunnel.proc.pid if tunnel.proc is not None else None
        try:
            with ThreadPoolExecutor(2) as pool:  # result() re-raises a thread's failed check here
                for echoed in [pool.submit(_echo_through, local_port, 3 << 20) for _ in range(2)]:
                    echoed.result(timeout=60)
            _echo_through(local_port, 16)
        finally:
            tunnel.close()
            if ssh is not None:
                ssh.disconnect()
        tunnel.close()  # idempotent
        if kind == "fabric-frozen":
            assert tunnel._own_ssh is not None and tunnel._own_ssh._conn is None, "close() left its SSH login open"
        if pid is not None:
            assert _wait_gone(pid), f"{kind} tunnel process {pid} outlived close()"
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", local_port), timeout=1):
            pass


@pytest.mark.parametrize("kind", ["openssh", "fabric"])
def test_tunnel_process_dies_with_its_parent(ssh_host: dict[str, Any], kind: str, tmp_path: Path) -> None:
    """A client killed with SIGKILL runs no cleanup: its tunnel process still ends (its stdin, a pipe
    only the client held, reaches EOF) and nothing is left listening."""
    with _echo_server() as remote_port:
        local_port = free_port()
        script = tmp_path / "client.py"
        script.write_text(
            textwrap.dedent(f"""
                import time
                from gym_remote.launch.config import HostConfig
                from gym_remote.launch.tunnels import FabricTunnel, OpenSshTunnel
                cls = {"OpenSshTunnel" if kind == "openssh" else "FabricTunnel"}
                tunnel = cls(HostConfig(**{ssh_host!r}), {remote_port}, {local_port}, 10)
                print(tunnel.proc.pid, flush=True)
                time.sleep(120)
            """)
        )
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        client = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
        try:
            assert client.stdout is not None
            line = client.stdout.readline()
            assert line.strip().isdigit(), f"the client did not open its tunnel (exit {client.poll()})"
            tunnel_pid = int(line)
            _echo_through(local_port, 1 << 20)
        finally:
            client.kill()  # by its PID: SIGKILL, no cleanup runs
            client.wait()
        assert _wait_gone(tunnel_pid, timeout=10), f"{kind} tunnel process {tunnel_pid} outlived its parent"
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", local_port), timeout=1):
            pass


def test_fabric_forwarder_failure_leaves_nothing(ssh_host: dict[str, Any], sshd: SshServer) -> None:
    """A forwarder that cannot log in (a refused key) fails the tunnel with its reason; no process stays."""
    with _echo_server() as remote_port:
        local_port = free_port()
        before = set(_children())
        with pytest.raises(LaunchError, match="forwarder ERROR"):
            FabricTunnel(HostConfig(**{**ssh_host, "key_filename": sshd.bad_key_filename}), remote_port, local_port, 10)
        assert all(_wait_gone(pid) for pid in set(_children()) - before)
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", local_port), timeout=1):
            pass


def test_ctrl_c_while_the_forwarder_starts_leaves_nothing(
    ssh_host: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the tunnel waits for its forwarder's READY: the forwarder process is gone and
    nothing listens on the local port."""
    started: list[int] = []
    original = FabricTunnel._answer

    def interrupted(self: FabricTunnel, timeout: float) -> str:
        assert self.proc is not None
        started.append(self.proc.pid)
        assert original(self, timeout) == "READY"  # the forwarder really listens...
        raise KeyboardInterrupt  # ...when the user presses Ctrl-C

    monkeypatch.setattr(FabricTunnel, "_answer", interrupted)
    with _echo_server() as remote_port:
        local_port = free_port()
        with pytest.raises(KeyboardInterrupt):
            FabricTunnel(HostConfig(**ssh_host), remote_port, local_port, 10)
        assert started and _wait_gone(started[0])
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", local_port), timeout=1):
            pass


def _children() -> list[int]:
    """PIDs of this process's children (to check that none is left, never to kill)."""
    found = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(pid) for pid in (task / "children").read_text().split()]
    return found


@pytest.mark.parametrize("tunnel", ["openssh", "fabric"])
def test_gateway(ssh_host: dict[str, Any], sshd: SshServer, tunnel: str) -> None:
    """A jump host: here the same sshd, which forwards to itself."""
    gateway: Any = {"host": "127.0.0.1", "user": sshd.user, "port": sshd.port}
    if tunnel == "openssh":  # the string form, as in a YAML file
        gateway = f"{sshd.user}@127.0.0.1:{sshd.port}"
    with launch_server(**ssh_host, tunnel=tunnel, gateway=gateway) as handle:
        pid = handle.pid
        assert pid is not None
        _roundtrip(handle.local_host, handle.local_port)
    assert _wait_gone(pid)


def test_setup_env_workdir_reach_the_server(ssh_host: dict[str, Any], tmp_path: Path) -> None:
    workdir = tmp_path / "work dir"  # a space: everything interpolated is quoted
    workdir.mkdir()
    options = {
        **ssh_host,
        "workdir": str(workdir),
        "setup": "export GR_FROM_SETUP=yes; cd .",
        "env": {**ssh_host["env"], "GR_VALUE": "it's $HOME; `x`"},
    }
    with launch_server(**options) as handle:
        assert handle.pid is not None
        environ = Path(f"/proc/{handle.pid}/environ").read_bytes().split(b"\0")
        assert b"GR_FROM_SETUP=yes" in environ
        assert b"GR_VALUE=it's $HOME; `x`" in environ
        assert os.readlink(f"/proc/{handle.pid}/cwd") == str(workdir)
    with pytest.raises(LaunchError, match="setup command failed"):
        launch_server(**{**ssh_host, "setup": "false"})


def test_handle_closed_at_interpreter_exit(ssh_host: dict[str, Any], tmp_path: Path) -> None:
    """A script that forgets close() does not leave a server behind."""
    script = tmp_path / "forgetful.py"
    script.write_text(
        textwrap.dedent(f"""
            from gym_remote.launch import launch_server
            handle = launch_server(**{ssh_host!r})
            print(handle.pid, flush=True)
        """)
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout.split()[0])
    assert _wait_gone(pid), f"server PID {pid} outlived its client"


# ---------------------------------------------------------------------------------------- failures


def test_bad_task_fails_fast(ssh_host: dict[str, Any]) -> None:
    """``serve`` refuses an unknown id before READY with one paragraph: the launch fails at once with it."""
    t0 = time.monotonic()
    with pytest.raises(LaunchError) as info:
        launch_server(**{**ssh_host, "task": "NoSuchEnv-v99", "ready_timeout": 60})
    elapsed = time.monotonic() - t0
    assert elapsed < 15, f"a failing server took {elapsed:.1f} s to be reported"
    err = info.value
    assert "the server exited before it was ready" in err.message
    assert "unknown Gymnasium id 'NoSuchEnv-v99'" in (err.log_tail or "")
    assert "NoSuchEnv" in str(err)
    assert list(Path(ssh_host["runtime_dir"]).glob("server-*.pid")) == []


def test_traceback_before_ready_fails_fast(ssh_host: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    """A server that crashes with a traceback: the launch names the exception and logs the traceback once."""
    caplog.set_level(logging.ERROR, logger="gym_remote.remote")
    t0 = time.monotonic()
    with pytest.raises(LaunchError) as info:
        launch_server(**{**ssh_host, "serve_args": ["--import", "no_such_module_gr"], "ready_timeout": 60})
    elapsed = time.monotonic() - t0
    assert elapsed < 15, f"a failing server took {elapsed:.1f} s to be reported"
    err = info.value
    assert "Traceback" in (err.log_tail or "")
    assert "ModuleNotFoundError: No module named 'no_such_module_gr'" in err.message
    assert any("Traceback" in r.getMessage() for r in caplog.records if r.name == "gym_remote.remote")
    assert list(Path(ssh_host["runtime_dir"]).glob("server-*.pid")) == []


def test_unreachable_host_fails_within_connect_timeout(ssh_host: dict[str, Any]) -> None:
    t0 = time.monotonic()
    with pytest.raises(LaunchError, match="connection refused"):
        launch_server(**{**ssh_host, "port": free_port(), "connect_timeout": 3})
    assert time.monotonic() - t0 < 3


def test_silent_port_times_out(ssh_host: dict[str, Any]) -> None:
    """A port that accepts TCP but never speaks SSH (a black hole) fails after connect_timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        t0 = time.monotonic()
        with pytest.raises(LaunchError, match=r"could not connect|Error reading SSH protocol banner"):
            launch_server(**{**ssh_host, "port": silent.getsockname()[1], "connect_timeout": 2})
        assert time.monotonic() - t0 < 6


@pytest.mark.parametrize("tunnel", ["openssh", "fabric"])
def test_local_port_taken(ssh_host: dict[str, Any], tunnel: str) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        with pytest.raises(LaunchError, match="in use"):
            launch_server(**ssh_host, tunnel=tunnel, local_port=squatter.getsockname()[1])
    assert list(Path(ssh_host["runtime_dir"]).glob("server-*.pid")) == []


def test_port_taken_before_bind_is_replaced(ssh_host: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The race between picking a free remote port and binding it: another port is picked."""
    original = RemoteLauncher._start_script
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        taken = squatter.getsockname()[1]
        scripts: list[str] = []

        def first_pick_is_taken(self: RemoteLauncher) -> str:
            script = original(self)
            if not scripts:  # comment out the pick, use the squatted port
                script = script.replace("PORT=$(", f"PORT={taken} # $(", 1)
            scripts.append(script)
            return script

        monkeypatch.setattr(RemoteLauncher, "_start_script", first_pick_is_taken)
        with launch_server(**ssh_host) as handle:
            assert len(scripts) == 2 and handle.remote_port != taken
            _roundtrip(handle.local_host, handle.local_port)


def test_refused_key(ssh_host: dict[str, Any], sshd: SshServer) -> None:
    t0 = time.monotonic()
    with pytest.raises(LaunchError, match="refused our SSH key"):
        launch_server(**{**ssh_host, "key_filename": sshd.bad_key_filename})
    assert time.monotonic() - t0 < 5


# -------------------------------------------------------------------------------- stale PID files


def test_stale_server_is_replaced(ssh_host: dict[str, Any]) -> None:
    """A server a crashed run left behind on the same port is stopped before the new one starts."""
    port = free_port()
    first = launch_server(**ssh_host, remote_port=port)
    old_pid = first.pid
    assert old_pid is not None
    first.detach()  # the client "crashed": the server runs on, recorded in its PID file
    assert _process_alive(old_pid)
    second = launch_server(**ssh_host, remote_port=port)
    try:
        assert second.launcher.stale_pid == old_pid
        assert _wait_gone(old_pid)
        assert second.pid != old_pid
        _roundtrip(second.local_host, second.local_port)
    finally:
        second.close()
    assert second.pid is not None and _wait_gone(second.pid)


def test_unrelated_pid_is_never_killed(ssh_host: dict[str, Any]) -> None:
    port = free_port()
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        pid_file = _pid_file(ssh_host, port)
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{bystander.pid}\n")
        assert stop_server(HostConfig(**ssh_host), port) is False
        assert bystander.poll() is None
        pid_file.write_text(f"{bystander.pid}\n")
        with launch_server(**ssh_host, remote_port=port) as handle:
            assert handle.launcher.stale_pid is None
            assert handle.pid != bystander.pid
            _roundtrip(handle.local_host, handle.local_port)
        assert bystander.poll() is None, "the launcher killed a process that was not its server"
    finally:
        bystander.kill()
        bystander.wait()


def test_keyboard_interrupt_during_start_leaves_nothing(
    ssh_host: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[int] = []
    original = RemoteLauncher._wait_ready

    def interrupted(self: RemoteLauncher) -> None:
        original(self)  # the server really runs...
        assert self.pid is not None
        started.append(self.pid)
        raise KeyboardInterrupt  # ...when the user presses Ctrl-C

    monkeypatch.setattr(RemoteLauncher, "_wait_ready", interrupted)
    with pytest.raises(KeyboardInterrupt):
        launch_server(**ssh_host)
    assert started and _wait_gone(started[0])
    assert list(Path(ssh_host["runtime_dir"]).glob("server-*.pid")) == []


# ----------------------------------------------------------------------------------- CLI functions


def test_status_logs_stop(ssh_host: dict[str, Any]) -> None:
    cfg = HostConfig(**ssh_host)
    handle = launch_server(config=cfg)
    pid, port = handle.pid, handle.remote_port
    assert pid is not None and port is not None
    handle.detach()  # what `gym-remote launch HOST` does
    try:
        records = list_servers(cfg)
        assert [(r.port, r.pid, r.alive) for r in records] == [(port, pid, True)]
        assert records[0].uptime is not None and records[0].uptime >= 0
        assert "GYM_REMOTE READY" in read_log(cfg, port)

        lines: list[str] = []
        stop = threading.Event()

        def collect(line: str) -> None:
            lines.append(line)
            if "GYM_REMOTE READY" in line:
                stop.set()

        follower = threading.Thread(target=follow_log, args=(cfg, port, collect, stop), daemon=True)
        follower.start()
        follower.join(timeout=15)
        assert not follower.is_alive() and any("GYM_REMOTE READY" in x for x in lines)

        assert stop_server(cfg, port) is True
        assert _wait_gone(pid)
        assert list_servers(cfg) == []
        assert stop_server(cfg, port) is False
    finally:
        if _process_alive(pid):
            os.kill(pid, signal.SIGKILL)


# ----------------------------------------------------------------------------------------- config


def test_example_config_loads() -> None:
    cfg = load(HostConfig, CONFIG_ROOT / "hosts" / "example.yaml", kind="hosts")
    assert cfg.host and cfg.python
    with pytest.raises(ValueError, match="unknown keys"):
        load(HostConfig, {"hostname": "x"}, kind="hosts")


def test_task_kwargs_given_at_launch_merge_over_the_host_configs() -> None:
    """A host config's server settings (Isaac Lab's asset_root) stay when a client adds its own."""
    cfg = resolve_config(
        config={"host": "gpu", "task_kwargs": {"asset_root": "/data", "device": "cpu"}},
        task_kwargs={"device": "cuda:1", "episode_length_s": 5},
    )
    assert cfg.task_kwargs == {"asset_root": "/data", "device": "cuda:1", "episode_length_s": 5}


def test_a_ray_pool_server_lets_its_one_client_key_hold_every_session(tmp_path: Path) -> None:
    from gym_remote.launch.ray_actor import sessions_per_peer_args

    assert sessions_per_peer_args([]) == ["--max-sessions-per-peer", "16"]
    assert sessions_per_peer_args(["--max-sessions=5"]) == ["--max-sessions-per-peer", "5"]
    assert sessions_per_peer_args(["--max-sessions", "4", "--max-sessions-per-peer", "2"]) == []
    big = tmp_path / "big.yaml"
    big.write_text("max_sessions: 64\n")
    assert sessions_per_peer_args(["--server-config", str(big)]) == ["--max-sessions-per-peer", "64"]
    big.write_text("max_sessions: 64\nmax_sessions_per_peer: 8\n")
    assert sessions_per_peer_args(["--server-config", str(big)]) == []


def test_resolve_config_parses_targets() -> None:
    cfg = resolve_config("alice@gpu.example.org:2222", tunnel="none")
    assert (cfg.host, cfg.user, cfg.port, cfg.tunnel) == ("gpu.example.org", "alice", 2222, None)
    assert cfg.effective_bind_host() == "0.0.0.0"
    assert resolve_config("127.0.0.1", tunnel="none").effective_bind_host() == "127.0.0.1"
    assert resolve_config("gpu", config=cfg, task="CartPole-v1").host == "gpu"
    with pytest.raises(ValueError, match="tunnel"):
        HostConfig(host="x", tunnel="carrier-pigeon")
