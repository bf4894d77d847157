"""Moved to :mod:`gym_remote.backends.roboverse.actions`; this name stays importable."""

from gym_remote.backends.roboverse.actions import *  # noqa: F403
from gym_remote.backends.roboverse.actions import __all__  # noqa: F401
