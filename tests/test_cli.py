"""The gym-remote command, run as a user runs it: real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

try:
    from tests.sshd import sshd
except ImportError:  # pragma: no cover - when tests/ is not a package on sys.path
    from sshd import sshd  # type: ignore  # noqa: F401

from gym_remote.cli import build_parser


def gym_remote(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gym_remote", *args], capture_output=True, text=True, timeout=timeout)


def test_every_command_has_help():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # the registered sub-commands
    assert {"serve", "ping", "bench", "launch", "status", "stop", "logs"} <= set(commands)
    for name in [None, *commands]:
        out = gym_remote(*([name] if name else []), "--help")
        assert out.returncode == 0 and "usage: gym-remote" in out.stdout, (name, out.stderr)


def test_ping_a_local_server(serve):
    server = serve("CartPole-v1")
    out = gym_remote("ping", f"127.0.0.1:{server.local_port}", "-n", "2")
    assert out.returncode == 0 and out.stdout.count("ms") == 2 and "0 sessions" in out.stdout


def test_ping_nobody_is_a_clear_error():
    out = gym_remote("ping", "127.0.0.1:9", "--timeout", "0.5")
    assert out.returncode == 1 and "error" in out.stderr and "127.0.0.1:9" in out.stderr


def test_bench_prints_the_floor_ratio(serve):
    server = serve("CartPole-v1")
    out = gym_remote("bench", f"127.0.0.1:{server.local_port}", "--steps", "200")
    assert out.returncode == 0, out.stderr
    assert "raw zmq REQ/REP" in out.stdout and "step p50 / raw zmq floor p50:" in out.stdout


def test_bench_images_splits_a_remote_step_into_transport_envs_and_framework(tmp_path: Path):
    figures = tmp_path / "images.json"
    out = gym_remote("bench", "--only", "images", "--seconds", "0.5", "--json", str(figures))
    assert out.returncode == 0, out.stderr
    assert "the raw transport" in out.stdout and "the sub-envs' own step in SyncVectorEnv" in out.stdout
    images = json.loads(figures.read_text())["images"]
    parts = images["raw_p50_us"] + images["envs_p50_us"] + images["framework_us"]
    assert images["envs_p50_us"] > 0 and abs(parts - images["remote_p50_us"]) < 1e-6


def test_launch_status_logs_stop_over_ssh(sshd, tmp_path: Path):
    config = tmp_path / "box.yaml"
    config.write_text(yaml.safe_dump(sshd.host_config()))
    out = gym_remote("launch", sshd.host, "--config", str(config), "--detach")
    assert out.returncode == 0, out.stderr
    port = int(out.stdout.split("remote port ")[1].split()[0])
    status = gym_remote("status", sshd.host, "--config", str(config))
    assert f"port {port}" in status.stdout and "alive" in status.stdout
    logs = gym_remote("logs", sshd.host, "--config", str(config), "--port", str(port))
    assert "GYM_REMOTE READY" in logs.stdout
    stop = gym_remote("stop", sshd.host, "--config", str(config), "--port", str(port))
    assert stop.returncode == 0 and "stopped" in stop.stdout
    status = gym_remote("status", sshd.host, "--config", str(config))
    assert "alive" not in status.stdout


@pytest.mark.parametrize("bad", [["serve", "--kwargs", "{nope"], ["ping", "host:notaport"]])
def test_bad_arguments_are_usage_errors(bad):
    out = gym_remote(*bad)
    assert out.returncode == 2 and "error" in out.stderr


def test_demo_then_replay_the_newcomers_first_commands(tmp_path: Path):
    """README's first command, end to end: local server, expert, recorded states, local video."""
    import imageio.v3 as iio
    import numpy as np

    out = gym_remote("demo", "--episodes", "1", "-o", str(tmp_path), "--width", "320", "--height", "240", timeout=300)
    assert out.returncode == 0, out.stderr
    assert "success rate      100% (1/1 episodes stacked)" in out.stdout
    video, traj = tmp_path / "stack_cube.mp4", tmp_path / "stack_cube.npz"
    frames = iio.imread(video)
    assert frames.shape[1:] == (240, 320, 3) and len(frames) > 20
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1  # the scene changed
    again = tmp_path / "again.mp4"
    out = gym_remote("replay", str(traj), "-o", str(again), "--width", "160", "--height", "120")
    assert out.returncode == 0, out.stderr
    assert iio.imread(again).shape == (len(frames), 120, 160, 3)

    # a trajectory of another task (as the Isaac Lab demo writes, its scene's MJCF beside it): the
    # built-in model would draw the wrong scene, so replay asks for --model in its own terms and names
    # the scene file it finds next to the trajectory
    with np.load(traj) as z:
        fields = {k: z[k] for k in z.files}
    other = tmp_path / "isaaclab_stack_cube.npz"
    np.savez(other, **{**fields, "task": np.array("IsaacContrib-Stack-Cube-Franka")})
    (tmp_path / "isaaclab_stack_cube.xml").write_text("<mujoco/>", encoding="utf-8")
    out = gym_remote("replay", str(other), "-o", str(tmp_path / "other.mp4"))
    assert out.returncode != 0 and "--model SCENE.xml" in out.stderr, out.stderr
    assert f"--model {tmp_path / 'isaaclab_stack_cube.xml'}" in out.stderr and "model=" not in out.stderr


def test_server_config_file_sets_admission_and_flags_win(serve, tmp_path: Path):
    from gym_remote import ConnectOptions, RemoteEnv
    from gym_remote.errors import ServerBusyError

    config = tmp_path / "small.yaml"
    config.write_text("max_sessions: 2\nmax_sessions_per_peer: 2\nidle_timeout: 0\n")
    server = serve("CartPole-v1", "gymnasium", "--server-config", str(config))
    options = ConnectOptions(timeout=10)
    envs = [RemoteEnv("127.0.0.1", server.local_port, options=options) for _ in range(2)]
    with pytest.raises(ServerBusyError, match="max_sessions=2"):
        RemoteEnv("127.0.0.1", server.local_port, options=options)
    for env in envs:
        env.close()
    # a flag given beside the file wins over it
    server = serve("CartPole-v1", "gymnasium", "--server-config", str(config), "--max-sessions", "3")
    envs = [RemoteEnv("127.0.0.1", server.local_port, options=options) for _ in range(2)]
    with pytest.raises(ServerBusyError, match=r"max_sessions_per_peer=2"):  # the file's, kept
        RemoteEnv("127.0.0.1", server.local_port, options=options)
    assert envs[0].ping()["sessions"] == 2
    for env in envs:
        env.close()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("max_sesions: 2\n", "unknown keys ['max_sesions'] in ServerConfig"),
        ("max_sessions: 0\n", "ServerConfig.max_sessions must be a positive integer, not 0"),
        ("idle_timeout: soon\n", "ServerConfig.idle_timeout must be seconds or null, not 'soon'"),
        ("- 1\n", "must be a YAML mapping"),
    ],
)
def test_a_bad_server_config_is_named_before_anything_binds(tmp_path: Path, text: str, error: str):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    out = gym_remote("serve", "--server-config", str(config), "--address", "tcp://127.0.0.1:*", timeout=60)
    assert out.returncode == 1 and error in out.stderr and "READY" not in out.stdout, out.stderr


def test_the_example_server_config_holds_the_defaults():
    """configs/servers/example.yaml documents every ServerConfig key with its default value."""
    import dataclasses

    from gym_remote.config import ServerConfig, load

    assert load(ServerConfig, "example", kind="servers") == ServerConfig()
    text = (Path(__file__).resolve().parent.parent / "configs" / "servers" / "example.yaml").read_text()
    assert all(f"\n{f.name}:" in text for f in dataclasses.fields(ServerConfig))
