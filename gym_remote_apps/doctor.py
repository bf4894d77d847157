"""``gym-remote doctor``: what this machine can serve, and why not.

Each backend is probed in a throw-away subprocess, for two reasons: Isaac Lab's import rewrites
``sys.path`` and half-imported simulator packages cannot be unloaded, so a probe must not leave
traces in the caller; and a hanging import (a broken CUDA driver) is bounded by a timeout. Versions
come from package metadata, which needs no import at all.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)

#: Distribution names per package shown in the report (first match wins).
PACKAGES: dict[str, tuple[str, ...]] = {
    "gym-remote": ("gym-remote",),
    "gymnasium": ("gymnasium",),
    "numpy": ("numpy",),
    "torch": ("torch",),
    "pyzmq": ("pyzmq",),
    "msgpack": ("msgpack",),
    "mujoco": ("mujoco",),
    "stable-baselines3": ("stable-baselines3",),
    "isaacsim": ("isaacsim",),
    "isaaclab": ("isaaclab",),
    "isaaclab_tasks": ("isaaclab_tasks", "isaaclab-tasks"),
    "metasim": ("metasim", "roboverse"),
}
#: Import name of each package, to tell "importable, version unknown" from "absent".
_MODULES = {"gym-remote": "gym_remote", "pyzmq": "zmq", "stable-baselines3": "stable_baselines3"}

# Each probe prints one JSON line: {"ok": bool, "detail": str, ...}.
_PROBE_WRAPPER = """
import json, sys, traceback
def main():
{body}
try:
    out = main() or {{}}
    print(json.dumps({{"ok": True, **out}}))
except BaseException as exc:
    first = (str(exc).splitlines() or [""])[0]
    print(json.dumps({{"ok": False, "detail": type(exc).__name__ + (": " + first if first else "")}}))
"""

_PROBES: dict[str, str] = {
    "gymnasium": """
    import gymnasium
    return {"detail": "any registered Gymnasium id (gymnasium " + gymnasium.__version__ + ")"}
""",
    "python": """
    import gymnasium
    return {"detail": "pkg.module:factory entry points, old-style gym envs included"}
""",
    "isaaclab": """
    import importlib.util
    from gym_remote.backends.isaaclab import isaaclab_version, quat_order_for_version
    from gym_remote.backends.isaaclab.runtime import major_version
    version = isaaclab_version()
    major = major_version(version)
    # 3.x runs kit-less with Newton physics (isaaclab_newton, Warp); 2.x always needs Isaac Sim's Kit.
    kit_needed = major is not None and major < 3
    needed = ("isaaclab", "isaaclab_tasks", "isaacsim" if kit_needed else "isaaclab_newton")
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        raise ModuleNotFoundError("not installed: " + ", ".join(missing))
    try:
        order = quat_order_for_version(version)
    except RuntimeError:
        order = "unknown: pass quat_order"
    from gym_remote.backends.isaaclab.physics import runnable_physics
    physics = runnable_physics()
    kit = "Isaac Sim present" if importlib.util.find_spec("isaacsim") else "no Isaac Sim (kit-less tasks only)"
    return {"detail": "Isaac Lab " + str(version) + ", quaternions " + order + "; physics " + ", ".join(physics)
            + "; " + kit, "version": version, "physics": physics}
""",
    "roboverse": """
    import metasim.task.registry  # noqa: F401
    return {"detail": "RoboVerse MetaSim task registry importable"}
""",
}

#: The built-in tasks (served by the ``gymnasium`` backend), probed as the backends are.
_TASK_PROBES: dict[str, str] = {
    "gym_remote/StackCube-v0": """
    import gym_remote.tasks.stack_cube as sc
    sc.StackCubeEnv().close()
    return {"detail": "the MuJoCo stand-in of the stack-cube task (CPU): serve --task gym_remote/StackCube-v0"}
""",
}

#: The server venvs the build scripts make, by the backend whose servers run from them.
_VENV_OF_BACKEND = {"isaaclab": "isaaclab", "roboverse": "metasim"}

_TORCH_PROBE = """
    import torch
    cuda = torch.cuda.is_available()
    devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
    return {"detail": "torch " + torch.__version__, "cuda": cuda, "cuda_version": torch.version.cuda,
            "devices": devices}
"""


def _version(names: tuple[str, ...], module: str) -> str | None:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        if importlib.util.find_spec(module) is not None:
            return "present (version unknown)"
    except (ImportError, ValueError):
        pass
    return None


def _run_probe(body: str, timeout: float) -> dict[str, Any]:
    code = _PROBE_WRAPPER.format(body=body.rstrip())
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "detail": f"import did not finish within {timeout:.0f} s"}
    except OSError as exc:
        return {"ok": False, "detail": f"could not run {sys.executable}: {exc}"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
    return {"ok": False, "detail": tail}


def _nvidia_smi(timeout: float) -> dict[str, Any]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {"found": False, "detail": "nvidia-smi not found"}
    try:
        proc = subprocess.run(
            [exe, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"found": True, "gpus": [], "detail": f"nvidia-smi failed: {exc}"}
    if proc.returncode != 0:
        return {
            "found": True,
            "gpus": [],
            "detail": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or "",
        }
    gpus = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    return {"found": True, "gpus": gpus, "detail": f"{len(gpus)} GPU(s)"}


def doctor(timeout: float = 120.0) -> dict[str, Any]:
    """What this machine has: Python, package versions, GPUs, and which backends import (or why not)."""
    packages = {name: _version(dists, _MODULES.get(name, name)) for name, dists in PACKAGES.items()}
    jobs = {name: body for name, body in _PROBES.items()}
    jobs.update({f"task:{name}": body for name, body in _TASK_PROBES.items()})
    jobs["torch"] = _TORCH_PROBE
    with ThreadPoolExecutor(max_workers=len(jobs) + 1) as pool:
        futures = {name: pool.submit(_run_probe, body, timeout) for name, body in jobs.items()}
        smi = pool.submit(_nvidia_smi, min(timeout, 30.0))
        results = {name: f.result() for name, f in futures.items()}
        nvidia = smi.result()
    torch_info = results.pop("torch")
    tasks = {name.removeprefix("task:"): results.pop(name) for name in list(results) if name.startswith("task:")}
    venvs = _server_venvs()
    for backend, venv in _VENV_OF_BACKEND.items():
        where = venvs.get(venv)
        if not results[backend].get("ok") and where and where.get("python"):
            results[backend]["detail"] += f"; its server venv is built: {where['python']} -m gym_remote serve ..."
    hints = []
    if results["isaaclab"].get("ok") and os.environ.get("OMNI_KIT_ACCEPT_EULA", "").upper() not in (
        "YES",
        "Y",
        "1",
    ):
        hints.append("IsaacSim asks to accept its EULA on first start: set OMNI_KIT_ACCEPT_EULA=YES for servers")
    if (results["isaaclab"].get("ok") or results["roboverse"].get("ok")) and not torch_info.get("cuda"):
        hints.append("IsaacSim needs an NVIDIA RTX GPU, but torch sees no CUDA device here")
    return {
        "python": {
            "version": platform.python_version(),
            "executable": sys.executable,
            "platform": platform.platform(),
        },
        "packages": packages,
        "gpu": {"nvidia_smi": nvidia, "torch": torch_info},
        "backends": results,
        "tasks": tasks,
        "server_venvs": venvs,
        "hints": hints,
    }


def _server_venvs() -> dict[str, dict[str, Any]]:
    """The server venvs of ``scripts/build_*_venv.sh`` on this machine: their Python, or how to build them."""
    from gym_remote_apps.venvs import SERVER_VENVS, server_python

    found: dict[str, dict[str, Any]] = {}
    for name, (_, command) in SERVER_VENVS.items():
        try:
            found[name] = {"python": server_python(name)}
        except FileNotFoundError:
            found[name] = {"python": None, "build": command}
    return found


def format_report(report: dict[str, Any]) -> str:
    """The :func:`doctor` report as text for a terminal."""
    py = report["python"]
    lines = [f"python    {py['version']} ({py['executable']}) on {py['platform']}", "packages"]
    width = max(len(name) for name in report["packages"])
    for name, version in report["packages"].items():
        lines.append(f"  {name:<{width}}  {version or '-'}")
    smi, torch_info = report["gpu"]["nvidia_smi"], report["gpu"]["torch"]
    gpus = smi.get("gpus") or []
    lines.append("gpu")
    lines.append(f"  nvidia-smi  {'; '.join(gpus) if gpus else smi.get('detail', 'none')}")
    if torch_info.get("ok"):
        cuda = (
            f"CUDA {torch_info.get('cuda_version')}: {', '.join(torch_info.get('devices') or [])}"
            if torch_info.get("cuda")
            else "no CUDA device"
        )
        lines.append(f"  torch       {cuda}")
    else:
        lines.append(f"  torch       unavailable: {torch_info.get('detail')}")
    lines.append("backends")
    width = max(len(name) for name in report["backends"])
    for name, result in report["backends"].items():
        state = "ok         " if result.get("ok") else "unavailable"
        lines.append(f"  {name:<{width}}  {state}  {result.get('detail', '')}")
    tasks = report.get("tasks") or {}
    if tasks:
        lines.append("built-in tasks")
        width = max(len(name) for name in tasks)
        for name, result in tasks.items():
            state = "ok         " if result.get("ok") else "unavailable"
            lines.append(f"  {name:<{width}}  {state}  {result.get('detail', '')}")
    venvs = report.get("server_venvs") or {}
    if venvs:
        lines.append("server venvs (scripts/build_*_venv.sh)")
        width = max(len(name) for name in venvs)
        for name, info in venvs.items():
            where = info.get("python") or f"not built ({info.get('build')})"
            lines.append(f"  {name:<{width}}  {where}")
    for hint in report.get("hints") or []:
        lines.append(f"hint: {hint}")
    return "\n".join(lines)
