"""Starting Isaac Lab in a server process, the 2.x way or the 3.x way, once per process.

- **Isaac Lab 2.x** needs Isaac Sim's Kit app running before ``isaaclab_tasks`` is imported:
  ``AppLauncher(headless=True)`` first, then the import, then ``parse_env_cfg`` and ``gym.make``.
- **Isaac Lab 3.x** reads the env cfg first and starts only what it needs:
  ``cfg = parse_env_cfg(id, device=..., num_envs=..., overrides=[...])``, then
  ``with isaaclab.app.launch_simulation(cfg, args): env = gym.make(id, cfg=cfg)``. Kit starts only
  when the cfg asks for it (PhysX, Kit cameras); Newton physics (MuJoCo-Warp, CPU or GPU) starts
  nothing. ``AppLauncher`` is a deprecated adapter in 3.0 that always starts Kit.

The simulation runtime lives as long as the server process: :class:`IsaacLabRuntime` enters
``launch_simulation`` for the first cfg and closes it at exit. A later session whose cfg needs a
runtime the process did not start (Kit, when the first task was kit-less) is refused with the reason.

Ids: 3.x dropped the ``-v0`` suffix and moved tutorial tasks to ``IsaacContrib-*`` (Isaac Lab's
``isaaclab_tasks`` CHANGELOG: ``Isaac-Lift-Cube-Franka-v0`` -> ``Isaac-Lift-Cube-Franka`` ->
``IsaacContrib-Lift-Cube-Franka``). :func:`resolve_task_id` maps an id in the other version's form,
with a log line, and names the close ids when nothing matches.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import importlib.metadata
import importlib.util
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from gym_remote.backends.isaaclab.physics import physics_name, runnable_physics, unpin_host_buffers_without_cuda
from gym_remote.errors import BadRequestError, did_you_mean

log = logging.getLogger(__name__)


def isaaclab_version() -> str | None:
    """Isaac Lab's version: the package metadata (no import: 2.x must not import before Kit runs)."""
    try:
        version = importlib.metadata.version("isaaclab")
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version and version != "0.0.0":
        return version
    module = sys.modules.get("isaaclab")
    if module is None:
        try:
            module = importlib.import_module("isaaclab")
        except ImportError:
            return None
    found = getattr(module, "__version__", None)
    return str(found) if found and found != "0.0.0" else version


def major_version(version: str | None) -> int | None:
    match = re.match(r"\s*v?(\d+)", version or "")
    return int(match.group(1)) if match else None


def default_device() -> str:
    """``cuda:0`` when torch sees a GPU, else ``cpu`` (Isaac Lab's own default is ``cuda:0``)."""
    try:
        import torch

        return "cuda:0" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def use_asset_root(asset_root: str | os.PathLike[str] | None) -> None:
    """Point Isaac Lab at a local mirror of NVIDIA's asset server (``ISAACSIM_ASSET_ROOT``).

    Must run before ``isaaclab.utils.assets`` is first imported: Isaac Lab reads the variable once.

    Raises:
        FileNotFoundError: ``asset_root`` is not a folder.
        RuntimeError: Isaac Lab's assets module was already imported with another root.
    """
    if asset_root is None:
        return
    root = os.path.abspath(os.path.expanduser(os.fspath(asset_root)))
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"asset_root {root!r} is not a folder; build one with "
            "`python -m gym_remote.backends.isaaclab.assets ROOT` in the Isaac Lab venv"
        )
    assets = sys.modules.get("isaaclab.utils.assets")
    current = getattr(assets, "NUCLEUS_ASSET_ROOT_DIR", None)
    if current is not None and current.rstrip("/") != root:
        raise RuntimeError(f"Isaac Lab already resolves assets under {current!r}; cannot switch to {root!r}")
    os.environ["ISAACSIM_ASSET_ROOT"] = root
    log.info("Isaac Lab assets from %s (ISAACSIM_ASSET_ROOT)", root)


def resolve_task_id(name: str, registry: Iterable[str], major: int | None) -> str:
    """The registered id meant by ``name``, accepting the other Isaac Lab version's form.

    Raises:
        BadRequestError: nothing matches; the message names the close registered ids.
    """
    known = set(registry)
    if name in known:
        return name
    base = re.sub(r"-v\d+$", "", name)
    contrib = "IsaacContrib-" + base.removeprefix("Isaac-") if base.startswith("Isaac-") else base
    core = "Isaac-" + base.removeprefix("IsaacContrib-")
    candidates = [f"{base}-v0", f"{core}-v0"] if major is not None and major < 3 else [base, contrib, core]
    for candidate in candidates:
        if candidate in known:
            log.info("task %r is %r in Isaac Lab %s", name, candidate, major)
            return candidate
    isaac = sorted(k for k in known if k.startswith("Isaac"))
    hint = did_you_mean(base, isaac) or f" ({len(isaac)} Isaac ids are registered)"
    raise BadRequestError(f"Isaac Lab {major}.x has no task {name!r}.{hint}")


class IsaacLabRuntime:
    """What one server process starts of Isaac Lab: Kit (2.x, or 3.x when a cfg needs it) or nothing."""

    def __init__(self, version: str | None) -> None:
        self.version = version
        self.major = major_version(version)
        self._stack = contextlib.ExitStack()
        self._started = False
        self._kit = False
        self._app: Any = None

    @property
    def is_3x(self) -> bool:
        return self.major is None or self.major >= 3

    def start_app(self, app_args: Mapping[str, Any]) -> None:
        """Isaac Lab 2.x: start Kit with ``AppLauncher`` (headless) before ``isaaclab_tasks`` is imported."""
        if self._started:
            return
        from isaaclab.app import AppLauncher

        args = {"headless": True, **dict(app_args)}
        log.info("starting Isaac Sim (AppLauncher %s)", args)
        self._app = AppLauncher(args)  # a dict works for Isaac Lab 2.x and 3.x alike
        self._started = self._kit = True
        atexit.register(self.close)

    def enter(self, cfg: Any, app_args: Mapping[str, Any]) -> None:
        """Isaac Lab 3.x: start what ``cfg`` needs (nothing for Newton) for the rest of the process.

        Raises:
            RuntimeError: ``cfg`` needs Isaac Sim's Kit but this process started kit-less, or this venv
                has no Isaac Sim, or Isaac Lab cannot launch the combination.
            ConfigError: ovphysx on a machine without CUDA, and Warp's allocators are not as expected.
        """
        if not self.is_3x:
            return
        from isaaclab.app import launch_simulation
        from isaaclab.app.sim_launcher import validate_launch

        args = dict(app_args)
        try:
            _, kit_sources = validate_launch(cfg, dict(args))  # also resolves physics=physx to a concrete engine
        except ValueError as exc:  # e.g. ovphysx or OVRTX together with Kit in one process
            raise RuntimeError(f"Isaac Lab cannot launch this cfg: {exc}") from exc
        if kit_sources and not self._kit and importlib.util.find_spec("isaacsim") is None:
            raise RuntimeError(
                f"this task needs Isaac Sim's Kit ({', '.join(kit_sources)}), and this server's venv has no Isaac "
                f"Sim (it runs {runnable_physics()} kit-less); for PhysX without Kit use the override physics=ovphysx"
            )
        if physics_name(cfg) == "ovphysx" and str(getattr(cfg.sim, "device", "cpu")).startswith("cpu"):
            unpin_host_buffers_without_cuda()
        if self._started:
            if kit_sources and not self._kit:
                raise RuntimeError(
                    f"this task needs Isaac Sim's Kit ({', '.join(kit_sources)}) but this server started "
                    "kit-less for its first task; start a server for this task"
                )
            return
        log.info("starting Isaac Lab's runtime: %s", f"Kit ({', '.join(kit_sources)})" if kit_sources else "kit-less")
        self._stack.enter_context(launch_simulation(cfg, args))
        self._started, self._kit = True, bool(kit_sources)
        atexit.register(self.close)

    def close(self) -> None:
        try:
            self._stack.close()
            app = getattr(self._app, "app", None)
            if app is not None and callable(getattr(app, "close", None)):
                app.close()
        except Exception:  # the process is exiting anyway
            log.debug("closing Isaac Lab's runtime failed", exc_info=True)
        self._app = None
