"""Moved to :mod:`gym_remote.backends.roboverse.state`; this name stays importable."""

from gym_remote.backends.roboverse.state import *  # noqa: F403
from gym_remote.backends.roboverse.state import __all__  # noqa: F401
