"""``gym-remote serve`` checks what it was told to serve before it prints READY (issue 16, item 2).

A wrong id or a misspelled keyword is one clear paragraph with close matches, within seconds, and the
server never reports READY; the same mistakes made by a client are ``BadRequestError``s at HELLO.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import threading
import time

import pytest

from gym_remote import BadRequestError, RemoteEnv
from gym_remote.backends.gym import gymnasium_factory
from gym_remote.errors import ConfigError
from gym_remote.protocol import READY_PREFIX
from gym_remote.server import EnvServer

#: Generous: a serve process imports Gymnasium and MuJoCo on a loaded 2-core machine.
FAST = 30.0


def serve(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    cmd = [sys.executable, "-m", "gym_remote", "serve", "--address", "tcp://127.0.0.1:*", "--import", "tests.envs"]
    t0 = time.monotonic()
    out = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    return out, time.monotonic() - t0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--task", "CartPol-v1"], "Did you mean 'CartPole-v1'"),
        (["--task", "CartPole-v1", "--kwargs", json.dumps({"sutton_barto_rewad": True})], "'sutton_barto_reward'"),
        # Ant-v5 passes **kwargs up to MujocoEnv: only building one env finds the mistake.
        (["--task", "Ant-v5", "--kwargs", json.dumps({"frame_skp": 3})], "Did you mean 'frame_skip'"),
        (["--backend", "python", "--task", "tests.envs:make_old_styl"], "Did you mean 'make_old_style'"),
        (["--backend", "python", "--task", "tests.envs:make_old_style", "--kwargs", '{"limt": 3}'], "'limit'"),
    ],
    ids=["unknown-id", "misspelled-kwarg", "kwarg-of-a-base-class", "python-entry-point", "python-kwarg"],
)
def test_serve_refuses_what_it_cannot_serve_before_ready(args, expected):
    out, elapsed = serve(*args)
    assert out.returncode == 1, out.stderr
    assert elapsed < FAST, f"took {elapsed:.1f} s"
    assert READY_PREFIX not in out.stdout
    assert "Traceback" not in out.stderr
    # One paragraph, last; log lines of libraries imported on the way (INFO when serving) may precede it.
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("gym-remote serve: error:") and expected in lines[-1], out.stderr
    assert sum("error" in line.lower() for line in lines) == 1, out.stderr


def test_a_good_task_still_serves():
    proc = subprocess.Popen(
        [sys.executable, "-m", "gym_remote", "serve", "--address", "tcp://127.0.0.1:*", "--task", "CartPole-v1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith(READY_PREFIX)
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


def test_the_hook_runs_before_binding_and_plain_factories_are_not_checked():
    def refuse(opts):  # pragma: no cover - never called
        raise AssertionError

    def check() -> None:
        raise ConfigError("no simulator named 'X'")

    refuse.validate = check  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="no simulator"):
        EnvServer(refuse, "tcp://127.0.0.1:*")
    del refuse.validate  # type: ignore[attr-defined]
    EnvServer(refuse, "tcp://127.0.0.1:*").close()


def test_env_server_checks_its_admission_settings_as_serve_does():
    def factory(opts):  # pragma: no cover - never called
        raise AssertionError

    server = EnvServer(factory, "tcp://127.0.0.1:*", idle_timeout=0)  # 0: never, as serve --idle-timeout 0
    assert server.idle_timeout is None
    server.close()
    for bad, name in [
        ({"idle_timeout": -1}, "idle_timeout"),
        ({"idle_timeout": float("nan")}, "idle_timeout"),
        ({"max_sessions": 0}, "max_sessions"),
    ]:
        with pytest.raises(ValueError, match=f"ServerConfig.{name}"):
            EnvServer(factory, "tcp://127.0.0.1:*", **bad)


def test_client_mistakes_are_bad_requests_with_close_matches(serve):
    server = serve("CartPole-v1")
    with pytest.raises(BadRequestError, match="Did you mean 'CartPole-v1'"):
        RemoteEnv(server.local_host, server.local_port, task="CartPol-v1")
    with pytest.raises(BadRequestError, match="'sutton_barto_reward'"):
        RemoteEnv(server.local_host, server.local_port, task_kwargs={"sutton_barto_rewad": True})
    with pytest.raises(BadRequestError, match="Did you mean 'frame_skip'"):
        RemoteEnv(server.local_host, server.local_port, task="Ant-v5", task_kwargs={"frame_skp": 3})
    with RemoteEnv(server.local_host, server.local_port, task_kwargs={"sutton_barto_reward": True}) as env:
        env.reset(seed=0)


def test_a_curve_secret_key_others_may_read_is_refused_as_openssh_refuses_one(tmp_path):
    """Issue 22: zmq.auth writes certificates with the umask's mode (0644 here); a secret key its group or
    others may read is refused before READY, naming the file and the fix; chmod 600 makes it usable."""
    import os

    import zmq.auth

    _, secret = zmq.auth.create_certificates(str(tmp_path), "server")
    os.chmod(secret, 0o640)
    out, _ = serve("--task", "CartPole-v1", "--curve-secret", secret)
    assert out.returncode == 1 and READY_PREFIX not in out.stdout, out.stderr
    last = [line for line in out.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("gym-remote serve: error: CURVE secret key") and f"chmod 600 {secret}" in last, last
    assert "mode 0640" in last
    os.chmod(secret, 0o600)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gym_remote", "serve", "--address", "tcp://127.0.0.1:*", "--curve-secret", secret],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith(READY_PREFIX)
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


def test_an_embedded_server_leaves_the_processs_garbage_collector_alone():
    """``gc.freeze()`` after each HELLO acts on the whole process: only ``gym-remote serve``, which owns
    its process, asks for it; an ``EnvServer`` embedded in an application does not."""
    server = EnvServer(gymnasium_factory("CartPole-v1", {}), "tcp://127.0.0.1:*")
    thread = threading.Thread(target=server.serve_forever, kwargs={"ready": None, "install_signals": False})
    before = gc.get_freeze_count()
    thread.start()
    try:
        host, port = server.endpoint.removeprefix("tcp://").rsplit(":", 1)
        env = RemoteEnv(host, int(port), task="CartPole-v1")
        env.reset(seed=0)
        env.close()
        assert gc.get_freeze_count() == before
    finally:
        server.stop()
        thread.join(10)
