"""See a remote simulation on the laptop: record its states, pose a local MuJoCo model, render there.

The remote simulator (IsaacSim on a GPU box) need not render at all: every reset/step reply
carries the flat scene state (``RemoteEnv.with_state``, no extra round trip), and a local MuJoCo
model of the same scene is posed from it kinematically and rendered offscreen. The same
:class:`Replayer` serves the live :class:`MujocoReplayWrapper` and offline :func:`replay` of a saved
:class:`Trajectory`, so a video made during the run and one made later from the ``.npz`` agree.

Modules, arrows one way: :mod:`~gym_remote.replay.gl` (headless GL, the lazy MuJoCo import) <-
:mod:`~gym_remote.replay.replayer` (models, name maps, :class:`Replayer`) <-
:mod:`~gym_remote.replay.trajectory` (:class:`Trajectory`, its file, :func:`replay`) <-
:mod:`~gym_remote.replay.wrappers` (the two wrappers and their :class:`ReplayOptions`). What uses
them lives above the library: ``gym-remote demo`` in :mod:`gym_remote_apps.demo`, the render
benchmark in :mod:`gym_remote.bench.render`.

MuJoCo is imported lazily, after :func:`configure_headless_gl` picked a GL backend: MuJoCo reads
``MUJOCO_GL`` once, at import, and its default (GLFW) needs a display. Importing this package does
not import mujoco.
"""

from __future__ import annotations

from gym_remote.replay.gl import configure_headless_gl
from gym_remote.replay.replayer import BUILTIN_TASK, NameMapSource, Replayer, resolve_model
from gym_remote.replay.trajectory import Trajectory, load_trajectory, replay
from gym_remote.replay.wrappers import MujocoReplayVectorWrapper, MujocoReplayWrapper, ReplayOptions, VideoError

__all__ = [
    "BUILTIN_TASK",
    "MujocoReplayVectorWrapper",
    "MujocoReplayWrapper",
    "NameMapSource",
    "ReplayOptions",
    "Replayer",
    "Trajectory",
    "VideoError",
    "configure_headless_gl",
    "load_trajectory",
    "replay",
    "resolve_model",
]

#: Names that left this package, forwarded with a DeprecationWarning for one release.
_MOVED = {"run_demo": "gym_remote_apps.demo", "render_benchmark": "gym_remote.bench.render"}


def __getattr__(name: str) -> object:
    if name in _MOVED:
        from gym_remote._moved import moved_attribute

        value = globals()[name] = moved_attribute(__name__, _MOVED[name], name)  # warned once
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
