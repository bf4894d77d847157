"""Moved to :mod:`gym_remote.backends.roboverse.runtime`; this name stays importable."""

from gym_remote.backends.roboverse.runtime import *  # noqa: F403
from gym_remote.backends.roboverse.runtime import __all__  # noqa: F401
