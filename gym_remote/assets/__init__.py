"""MuJoCo models shipped with gym-remote, by path (MJCF files beside this module).

- :data:`STACK_CUBE_XML`: the built-in stack-cube scene (a Franka Panda, a table, two cubes), the
  model of ``gym_remote/StackCube-v0`` and the replay model of the Isaac Lab and RoboVerse Franka scenes;
- :data:`ISAACLAB_CARTPOLE_XML`: Isaac Lab's Cartpole, for replaying ``Isaac-Cartpole`` states
  (name map ``configs/maps/isaaclab_cartpole.yaml``).
"""

from pathlib import Path

__all__ = ["ASSETS_DIR", "ISAACLAB_CARTPOLE_XML", "STACK_CUBE_XML"]

ASSETS_DIR = Path(__file__).resolve().parent
STACK_CUBE_XML = ASSETS_DIR / "stack_cube.xml"
ISAACLAB_CARTPOLE_XML = ASSETS_DIR / "isaaclab_cartpole.xml"
