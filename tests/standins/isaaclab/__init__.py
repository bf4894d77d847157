"""STAND-IN for NVIDIA Isaac Lab's ``isaaclab`` package, for tests on a CPU box.

The real package needs IsaacSim and an RTX GPU and cannot be installed here. This fake reproduces
only the layout and API surface that ``gym_remote.backends.isaaclab`` calls. ``__version__`` decides
the quaternion order of the fake scene state, as in the real thing: 2.x w-first, 3.x x-y-z-w.
"""

__version__ = "2.3.0"
