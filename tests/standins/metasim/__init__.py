"""STAND-IN for RoboVerse MetaSim (``metasim``), for tests on a CPU box.

The real package drives IsaacSim (GPU) and other simulators; this fake keeps only the module layout
and API surface ``gym_remote.backends.roboverse`` calls, over a toy CPU "simulator".
"""
