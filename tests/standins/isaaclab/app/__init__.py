"""STAND-IN for ``isaaclab.app`` (the real one starts IsaacSim's SimulationApp, GPU only).

``EVENTS`` records the start-up order (AppLauncher, import isaaclab_tasks, parse_env_cfg,
gym.make) so tests can check that the adapter launches the app first.
"""

from __future__ import annotations

import argparse
from typing import Any

EVENTS: list[str] = []
LAUNCH_ARGS: list[dict[str, Any]] = []
_launched = False


def is_launched() -> bool:
    return _launched


class _SimulationApp:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class AppLauncher:
    """Like Isaac Lab 2.x: ``AppLauncher(launcher_args: Namespace | dict | None = None, **kwargs)``."""

    def __init__(self, launcher_args: argparse.Namespace | dict | None = None, **kwargs: Any) -> None:
        global _launched
        if isinstance(launcher_args, argparse.Namespace):
            launcher_args = vars(launcher_args)
        args = {**(launcher_args or {}), **kwargs}
        if _launched:
            raise RuntimeError("stand-in: SimulationApp already running in this process")
        EVENTS.append("AppLauncher")
        LAUNCH_ARGS.append(args)
        _launched = True
        self._app = _SimulationApp()

    @property
    def app(self) -> _SimulationApp:
        return self._app
