"""The Ray server pool and RLlib, on a real local Ray cluster (2 CPUs, ``sim_gpu`` standing in for GPUs).

Ray 2.60's RLlib pins Gymnasium 1.2, so the driver (tests/ray_pool_driver.py) runs in the venv that
``scripts/build_ray_venv.sh`` builds, as a user's would; when that venv is missing these tests fail
and name the command. Everything the driver starts (Ray's own processes, the actors, the servers)
carries an environment variable with a tag of this module, or Ray's temp dir on its command line,
so leftovers are looked for in /proc from the outside, after the driver is gone.

Measured here (2 shared cores): the PPO test ~40 s (Ray ~8 s, PPO build ~14 s, 3 iterations of 512
steps ~2 s), the others ~15 s each, plus the wait for Ray's agents after the SIGKILL test.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gym_remote_apps.venvs import server_python

ROOT = Path(__file__).resolve().parent.parent
DRIVER = ROOT / "tests" / "ray_pool_driver.py"
TAG = f"gym-remote-ray-test-{uuid.uuid4().hex[:8]}"

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def python() -> str:
    try:
        return server_python("ray")
    except FileNotFoundError as exc:  # CI builds it first (scripts/test.sh): missing is a failure
        pytest.fail(str(exc), pytrace=False)


def _tagged() -> dict[int, str]:
    """Live processes started by this module's drivers: the tag in their environment, one of the
    drivers' Ray temp dirs on their command line, or a file open in one (Ray's dashboard and
    runtime-env agents neither inherit the environment nor keep their command line)."""
    marker = f"/{TAG}-"
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if "State:\tZ" in (proc / "status").read_text():
                continue
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ours = TAG.encode() in (proc / "environ").read_bytes() or marker in cmdline
            if not ours:
                for fd in (proc / "fd").iterdir():
                    with contextlib.suppress(OSError):
                        if marker in os.readlink(fd):
                            ours = True
                            break
        except OSError:
            continue
        if ours:
            found[int(proc.name)] = cmdline[:160]
    return found


def _wait_untagged(timeout: float) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    left = _tagged()
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = _tagged()
    return left


@pytest.fixture(scope="module", autouse=True)
def nothing_left_behind() -> Iterator[None]:
    """After every test of the module: no process any driver started still runs.

    Ray's dashboard and runtime-env agents notice a SIGKILLed driver's raylet is gone only after
    about a minute, so the wait is long; it overlaps the other tests' run time.
    """
    yield
    left = _wait_untagged(120)
    for pid in left:  # do not leave them to the next test session; then fail
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for folder in Path("/tmp").glob(f"{TAG}-*"):  # Ray's logs and sockets
        shutil.rmtree(folder, ignore_errors=True)
    assert not left, f"processes outlived their Ray driver: {left}"


def _driver(python: str, mode: str, *args: str) -> subprocess.Popen[str]:
    temp_dir = tempfile.mkdtemp(prefix=f"{TAG}-", dir="/tmp")  # short: Ray puts sockets in it
    env = {**os.environ, "GYM_REMOTE_TEST_TAG": TAG, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [python, str(DRIVER), mode, "--temp-dir", temp_dir, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )


def _run(python: str, mode: str, *args: str, timeout: float = 400) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the driver to its end; its POOL and RESULT lines."""
    proc = _driver(python, mode, *args)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"the {mode} driver did not finish in {timeout} s:\n{out[-4000:]}")
    lines = {
        line.split(" ", 1)[0]: line.split(" ", 1)[1]
        for line in out.splitlines()
        if line.startswith(("POOL ", "RESULT "))
    }
    assert proc.returncode == 0 and "RESULT" in lines, f"driver exit {proc.returncode}:\n{out[-6000:]}"
    return json.loads(lines["POOL"]), json.loads(lines["RESULT"])


def _gone(pid: int) -> bool:
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


def test_servers_die_with_a_killed_driver(python: str) -> None:
    """SIGKILL the driver (no atexit, no pool.close()): Ray kills its actors, each server follows its actor."""
    proc = _driver(python, "hang")
    try:
        deadline = time.monotonic() + 180
        line, seen = "", []
        while not line.startswith("POOL ") and time.monotonic() < deadline:
            line = proc.stdout.readline() if proc.stdout else ""
            seen.append(line)
            assert line or proc.poll() is None, (
                f"the driver exited ({proc.returncode}) before its pool was up:\n{''.join(seen)[-6000:]}"
            )
        pool = json.loads(line.split(" ", 1)[1])
        pids = pool["server_pids"] + pool["actor_pids"]
        assert not any(_gone(p) for p in pids)
        assert all(h.startswith("127.0.0.1:") for h in pool["hosts"])  # loopback only, with CURVE
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 60  # Ray notices its driver is gone, kills the actors, their servers follow
    while time.monotonic() < deadline and not all(_gone(p) for p in pids):
        time.sleep(0.1)
    left = [p for p in pids if not _gone(p)]
    assert not left, f"servers/actors {left} outlived their killed driver"


def test_rllib_ppo_on_a_pool_of_two_servers(python: str) -> None:
    """PPO, 2 EnvRunners x 4 sub-envs in vector-entry-point mode, each runner on its own pool server."""
    t0 = time.monotonic()
    pool, result = _run(python, "train", "--iterations", "3")
    elapsed = time.monotonic() - t0
    assert all(h.startswith("127.0.0.1:") for h in pool["hosts"])
    # The documented mapping: runner 1 -> server 0, runner 2 -> server 1; one session each.
    assert result["sessions_during"] == [1, 1]
    assert result["sessions_after_stop"] == [0, 0], "algo.stop() left sessions open"
    assert len(result["results"]) == 3
    steps = [r["env_steps"] for r in result["results"]]
    assert steps[0] >= 512 and steps[-1] >= 3 * 512 and steps == sorted(steps)
    assert all(r["return_mean"] is not None and r["return_mean"] > 5 for r in result["results"])
    # Keys: no key folder left on the node; strangers (no keys, or another client key) get nothing.
    assert result["key_dirs_left"] == []
    assert result["strangers_refused"] == {"no_keys": True, "foreign_client_key": True}
    # pool.close(): the actors answer no more and the servers and actor processes are gone.
    assert result["handles_alive_after_close"] == [False, False]
    assert result["processes_gone_after_close"] is True
    print(
        f"\nRay PPO test: {elapsed:.1f} s in all (Ray {pool['ray_s']:.1f} s, pool {pool['pool_s']:.1f} s, "
        f"PPO build {result['build_s']:.1f} s, 3 iterations {result['train_s']:.1f} s)"
    )


def test_rllib_ppo_in_sync_mode(python: str) -> None:
    """PPO in RLlib's default ``sync`` mode: each runner's 4 ``RemoteEnv`` sub-envs (4 sessions) on
    the server its ``EnvContext.worker_index`` maps to, with no ``PoolEnvRunner``; all closed by stop()."""
    _, result = _run(python, "train_sync", "--iterations", "2")
    assert result["mode"] == "train_sync"
    assert result["sessions_during"] == [4, 4]
    assert result["sessions_after_stop"] == [0, 0], "algo.stop() left sessions open"
    steps = [r["env_steps"] for r in result["results"]]
    assert steps[0] >= 512 and steps[-1] >= 2 * 512 and steps == sorted(steps)
    assert all(r["return_mean"] is not None and r["return_mean"] > 5 for r in result["results"])
    assert result["processes_gone_after_close"] is True


def test_fanout_and_a_lost_server_names_its_node(python: str) -> None:
    """A vector env fans out over the pool; killing one actor (as a lost node would) fails the next
    step like a dead server, and the server handle's diagnostics name the node."""
    _, result = _run(python, "fanout")
    assert result["obs_shape"] == [6, 4]
    assert result["steps"] == 50
    assert result["sessions"] == [1, 1]
    assert result["server_gone"] is True
    assert f"127.0.0.1:{result['victim_port']} failed" in result["error"]
    diagnostics = result["diagnostics"]
    assert f"on Ray node {result['victim_node']}" in diagnostics
    assert re.search(r"Ray actor is unreachable \(\w+Error\)", diagnostics), diagnostics  # ActorDied, or not yet marked


def test_make_vec_with_launch_ray_places_its_own_servers(python: str) -> None:
    """The issue's form: ``gym.make_vec(..., launch="ray", servers=2)``; the servers go with the env."""
    _, result = _run(python, "make_vec")
    assert result["obs_shape"] == [6, 4]
    assert len(result["hosts"]) == 2 and all(h.startswith("127.0.0.1:") for h in result["hosts"])
    assert result["curve"] is True
    assert result["gone_after_close"] is True


@pytest.mark.isaaclab
@pytest.mark.timeout(1200)
def test_a_pool_of_real_isaac_lab_physx_servers_serves_one_vector_env(
    python: str, isaaclab_python: str, isaaclab_assets: Path
) -> None:
    """Each actor runs its server from the Isaac Lab venv (``start_pool(python=...)``) on its node;
    the Ray driver's own venv has no Isaac Lab. One vector env of 8 fans out 4 + 4 over the two."""
    pool, result = _run(
        python, "isaaclab", "--isaaclab-python", isaaclab_python, "--asset-root", str(isaaclab_assets), timeout=1100
    )
    assert len(pool["hosts"]) == 2
    assert result["obs_shape"] == [8, 4]
    assert result["physics"] == "ovphysx"
    assert result["seeded"] is True and result["finite"] is True
    assert result["sessions"] == [1, 1]


def test_cli_launch_ray_prints_endpoints_and_a_private_key_file(python: str) -> None:
    """``gym-remote launch --ray 2``: endpoints on stdout, the pool's client keys in a 0600 file in a
    0700 folder, a client connects with them; SIGTERM stops the servers and deletes the keys."""
    import numpy as np

    from gym_remote.client_session import ConnectOptions
    from gym_remote.errors import RemoteEnvError
    from gym_remote.vector import RemoteVectorEnv

    env = {**os.environ, "GYM_REMOTE_TEST_TAG": TAG, "PYTHONPATH": str(ROOT), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    env.pop("RAY_ADDRESS", None)
    cmd = [python, "-m", "gym_remote", "launch", "--ray", "2", "--task", "CartPole-v1"]
    cmd += ["--resources", json.dumps({"CPU": 0.5})]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        hosts, keys_path = [], None
        deadline = time.monotonic() + 180
        while keys_path is None and time.monotonic() < deadline:
            line = proc.stdout.readline() if proc.stdout else ""
            assert line or proc.poll() is None, "gym-remote launch --ray exited early"
            if line.startswith("GYM_REMOTE ENDPOINT "):
                hosts.append(line.split()[-1])
            elif line.startswith("GYM_REMOTE KEYS "):
                keys_path = Path(line.split(" ", 2)[2].strip())
        assert keys_path is not None and len(hosts) == 2
        assert all(h.startswith("127.0.0.1:") for h in hosts)
        assert keys_path.stat().st_mode & 0o777 == 0o600 and keys_path.parent.stat().st_mode & 0o777 == 0o700
        keys = json.loads(keys_path.read_text())
        venv = RemoteVectorEnv(4, hosts=hosts, task="CartPole-v1", options=ConnectOptions(**keys))
        try:
            obs, _ = venv.reset(seed=0)
            venv.step(np.zeros(4, dtype=np.int64))
            assert obs.shape == (4, 4)
        finally:
            venv.close()
        with pytest.raises(RemoteEnvError):  # without the pool's client key: refused
            RemoteVectorEnv(
                2, hosts=hosts[:1], task="CartPole-v1", options=ConnectOptions(connect_timeout=3, retries=0)
            )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not keys_path.parent.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
