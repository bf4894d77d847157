"""Headless GL for local replay: MuJoCo's offscreen backend is chosen before mujoco is imported.

MuJoCo reads ``MUJOCO_GL`` once, at import, and its default (GLFW) needs a display. So nothing in
:mod:`gym_remote.replay` imports mujoco at module level: :func:`load_mujoco` settles the backend
first (:func:`configure_headless_gl`), then imports it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import Any

__all__ = ["configure_headless_gl", "load_mujoco"]

log = logging.getLogger(__name__)

_GL_PROBE = "import mujoco; c = mujoco.GLContext(8, 8); c.make_current(); c.free()"


def configure_headless_gl() -> str | None:
    """Pick MuJoCo's offscreen backend on a display-less Linux box; return ``MUJOCO_GL``.

    An explicit ``MUJOCO_GL`` or a display always wins. Otherwise EGL is tried first (fastest with
    Mesa), then OSMesa, each in a throw-away subprocess: a backend that fails to load cannot be
    unloaded from this process. Must run before anything imports mujoco.
    """
    chosen = os.environ.get("MUJOCO_GL")
    if chosen or not sys.platform.startswith("linux") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return chosen or None
    if "mujoco" in sys.modules:
        log.warning(
            "mujoco was imported before a headless GL backend was chosen; if rendering fails on this "
            "display-less machine, set MUJOCO_GL=egl before starting Python"
        )
        return None
    for backend in ("egl", "osmesa"):
        try:
            probe = subprocess.run(
                [sys.executable, "-c", _GL_PROBE],
                env={**os.environ, "MUJOCO_GL": backend},
                capture_output=True,
                timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.debug("MUJOCO_GL=%s probe failed: %s", backend, exc)
            continue
        if probe.returncode == 0:
            os.environ["MUJOCO_GL"] = backend
            log.info("no display: rendering with MUJOCO_GL=%s", backend)
            return backend
        log.debug("MUJOCO_GL=%s does not work here: %s", backend, probe.stderr.decode(errors="replace")[-500:])
    log.warning("neither EGL nor OSMesa works here; install libegl1 or libosmesa6 for headless rendering")
    return None


def load_mujoco() -> Any:
    """The mujoco module, imported only after the GL backend is settled."""
    configure_headless_gl()
    import mujoco

    return mujoco
