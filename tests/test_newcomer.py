"""A newcomer's first session, as a test: a fresh venv, the README's first command, the first snippet.

Everything runs in a new virtual environment with nothing but what ``scripts/setup.sh`` installs, so
a missing dependency or a README line that no longer works fails here. The timings are printed
(``pytest -s``) as the budget a newcomer sees; no assertion is made on them.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _python_blocks(section: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def _run(cmd: list[str], timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.timeout(2400)  # two pip installs from the registry: setup.cfg's 300 s is for one test's own work
def test_fresh_venv_readme_first_command_and_first_snippet(tmp_path: Path) -> None:
    budget: dict[str, float] = {}
    venv = tmp_path / "venv"
    t0 = time.monotonic()
    _run([sys.executable, "-m", "venv", str(venv)], 120)
    py = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"PYTHON": py, "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", "MUJOCO_GL": "egl"}

    # A client-only install is small: no MuJoCo, no Fabric, no moviepy.
    _run(["bash", "scripts/setup.sh", "client"], 600, cwd=ROOT, env=env)
    budget["setup.sh client"] = time.monotonic() - t0
    installed = _run([py, "-m", "pip", "list", "--format=freeze"], 60, env=env).stdout.lower()
    for heavy in ("mujoco", "fabric", "moviepy", "torch", "stable-baselines3"):
        assert f"\n{heavy}==" not in f"\n{installed}", f"a client install pulled {heavy}"

    # The README's first command: setup (demo), then the demo itself.
    t1 = time.monotonic()
    _run(["bash", "scripts/setup.sh"], 900, cwd=ROOT, env=env)
    budget["setup.sh (demo)"] = time.monotonic() - t1
    t2 = time.monotonic()
    out = _run([py, "-m", "gym_remote", "demo", "--episodes", "1", "-o", str(tmp_path / "demo-out")], 600, env=env)
    budget["gym-remote demo --episodes 1"] = time.monotonic() - t2
    assert "success rate" in out.stdout and list((tmp_path / "demo-out").glob("*.mp4"))

    # The first lines of "Using it", verbatim, up to the ones that need an SSH host, then its last lines.
    block = _python_blocks("Using it")[0]
    lines = block.splitlines()
    cut = next(i for i, line in enumerate(lines) if line.startswith("# Start the server over SSH"))
    tail = [line for line in lines[cut:] if line.startswith(("obs", "env.close"))]
    script = "\n".join(lines[:cut] + tail)
    port = 5555 if _port_free(5555) else 0
    server = subprocess.Popen(  # the README's own server command, in the fresh venv
        [py, "-m", "gym_remote", "serve", "--task", "CartPole-v1"]
        + ([] if port else ["--address", "tcp://127.0.0.1:*"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        ready = server.stdout.readline()
        assert ready.startswith("GYM_REMOTE READY"), ready
        if not port:  # 5555 is taken on this machine: the same lines against the port the server chose
            script = script.replace("port=5555", f"port={int(ready.rsplit(':', 1)[1])}")
        t3 = time.monotonic()
        _run([py, "-c", script], 300, env=env, cwd=tmp_path)
        budget["README snippet"] = time.monotonic() - t3
    finally:
        server.terminate()
        server.wait(30)
    print("\nnewcomer time budget: " + ", ".join(f"{k} {v:.0f} s" for k, v in budget.items()))
