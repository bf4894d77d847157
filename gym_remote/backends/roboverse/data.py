"""MetaSim's data folder, generated from gym-remote's own stack-cube model (no hub download).

RoboVerse MetaSim fetches its robot models and start-pose trajectories from a Hugging Face dataset
at run time, unless they already sit under ``roboverse_data/`` in the server's working directory.
This module writes the two files its ``stack_cube`` task needs with the MuJoCo handler:

- ``roboverse_data/robots/franka/mjcf/panda.xml``: the Franka of ``gym_remote/assets/stack_cube.xml``
  (same bodies, joint names ``panda_joint1..7``/``panda_finger_joint1..2``, position actuators named
  like their joints, which MetaSim's MuJoCo handler requires), without the scene around it and
  without ``gravcomp`` (MetaSim compensates the robot's gravity itself, as ``FrankaCfg`` asks).
- ``roboverse_data/trajs/maniskill/stack_cube/v2/franka_v2.pkl.gz``: ``count`` start poses in
  MetaSim's v2 trajectory format, read by ``metasim.utils.demo_util.get_traj``::

      {"franka": [{"init_state": {"franka": {"pos": [3], "rot": [4] (w, x, y, z), "dof_pos": {joint: rad}},
                                  "cube": {"pos": [3], "rot": [4]}, "base": {"pos": [3], "rot": [4]}},
                   "actions": [], "states": [the init_state again]}, ...]}

  The robot starts in gym-remote's default pose (fingers open); the cube and the base are drawn as
  ``StackCubeEnv`` draws them (same spawn area, minimum separation, yaw) from ``seed``. Both of
  MetaSim's boxes are 4 cm cubes, so both rest at z = 0.02 m on its ground plane.

The file is a gzipped pickle because that is the format MetaSim reads at that path. It is a local
file written here for MetaSim; nothing gym-remote sends or receives is ever pickled.

Usage: ``python -m gym_remote.backends.roboverse.data --out DIR`` (then serve with
``--kwargs '{"simulator": "mujoco", "data_dir": "DIR"}'``). It needs numpy and the stack-cube task's
constants (hence MuJoCo), so it runs in either the client's or the server's Python.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import logging
import os
import pickle
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "PANDA_XML",
    "ROBOT_NAME",
    "STACK_CUBE_TRAJ",
    "panda_mjcf",
    "stack_cube_start_poses",
    "write_data_folder",
]

log = logging.getLogger(__name__)

ASSET = Path(__file__).resolve().parent.parent.parent / "assets" / "stack_cube.xml"
#: Paths MetaSim looks up relative to its working directory (``FrankaCfg.mjcf_path``, the task's file).
PANDA_XML = Path("roboverse_data/robots/franka/mjcf/panda.xml")
STACK_CUBE_TRAJ = Path("roboverse_data/trajs/maniskill/stack_cube/v2/franka_v2.pkl.gz")
#: MetaSim's name of the robot (``FrankaCfg.name``): the key of the trajectory file and of the state.
ROBOT_NAME = "franka"
#: Half the edge of MetaSim's stack_cube boxes (``PrimitiveCubeCfg(size=(0.04, 0.04, 0.04))``), m.
METASIM_CUBE_HALF = 0.02


def panda_mjcf(asset: str | Path = ASSET) -> str:
    """The Franka of ``asset`` as a stand-alone MJCF document for MetaSim (text).

    Kept: the compiler settings, the default classes, the materials the robot uses, the robot's body
    tree (rooted at body ``franka``), contact exclusions between robot bodies, and the actuators.
    Dropped: lights, cameras, floor, table, cube, base, visual settings, and ``gravcomp``.

    Raises:
        ValueError: ``asset`` has no body named ``franka``, or an actuator that drives no robot joint.
    """
    src = ET.parse(asset).getroot()
    robot = next((b for b in src.iter("body") if b.get("name") == ROBOT_NAME), None)
    if robot is None:
        raise ValueError(f"{asset}: no body named {ROBOT_NAME!r}")
    robot = copy.deepcopy(robot)
    for body in robot.iter("body"):
        body.attrib.pop("gravcomp", None)
    joints = {j.get("name") for j in robot.iter("joint")}
    bodies = {b.get("name") for b in robot.iter("body")}
    used_materials = {g.get("material") for g in robot.iter("geom")} | {
        g.get("material") for d in src.iter("default") for g in d.iter("geom")
    }

    out = ET.Element("mujoco", model="panda")
    for tag in ("compiler", "default"):
        node = src.find(tag)
        if node is not None:
            out.append(copy.deepcopy(node))
    asset_node = ET.SubElement(out, "asset")
    for material in src.iter("material"):
        if material.get("name") in used_materials and material.get("texture") is None:
            asset_node.append(copy.deepcopy(material))
    ET.SubElement(out, "worldbody").append(robot)
    contact = ET.SubElement(out, "contact")
    for exclude in src.iter("exclude"):
        if exclude.get("body1") in bodies and exclude.get("body2") in bodies:
            contact.append(copy.deepcopy(exclude))
    actuators = ET.SubElement(out, "actuator")
    source_actuators = src.find("actuator")
    for act in [] if source_actuators is None else list(source_actuators):
        if act.get("joint") not in joints:
            raise ValueError(f"{asset}: actuator {act.get('name')!r} drives {act.get('joint')!r}, not a robot joint")
        if act.get("name") != act.get("joint"):
            raise ValueError(f"{asset}: MetaSim needs actuator names equal to joint names ({act.get('name')!r})")
        actuators.append(copy.deepcopy(act))
    ET.indent(out)
    header = f"<!-- Generated by gym_remote.backends.roboverse.data from {Path(asset).name}; do not edit. -->\n"
    return header + ET.tostring(out, encoding="unicode") + "\n"


def _yaw_quat(yaw: float) -> list[float]:
    return [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))]


def stack_cube_start_poses(count: int = 100, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """``count`` stack_cube start poses in MetaSim's v2 trajectory format (see the module docstring).

    Positions are metres in the robot base frame, quaternions w-first, joint positions radians.
    The same ``seed`` always gives the same poses.
    """
    from gym_remote.tasks.stack_cube import (
        ARM_JOINTS,
        DEFAULT_ARM_QPOS,
        FINGER_JOINTS,
        FINGER_OPEN,
        MIN_SEPARATION,
        SPAWN_HIGH,
        SPAWN_LOW,
    )

    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    rng = np.random.default_rng(seed)
    dof_pos = {j: float(q) for j, q in zip(ARM_JOINTS, DEFAULT_ARM_QPOS, strict=True)}
    dof_pos.update({j: FINGER_OPEN for j in FINGER_JOINTS})
    demos = []
    while len(demos) < count:
        cube_xy, base_xy = rng.uniform(SPAWN_LOW, SPAWN_HIGH, size=(2, 2))
        if np.linalg.norm(cube_xy - base_xy) < MIN_SEPARATION:
            continue
        cube_yaw, base_yaw = rng.uniform(-np.pi, np.pi, size=2)
        init = {
            ROBOT_NAME: {"pos": [0.0, 0.0, 0.0], "rot": [1.0, 0.0, 0.0, 0.0], "dof_pos": dict(dof_pos)},
            "cube": {"pos": [*map(float, cube_xy), METASIM_CUBE_HALF], "rot": _yaw_quat(cube_yaw)},
            "base": {"pos": [*map(float, base_xy), METASIM_CUBE_HALF], "rot": _yaw_quat(base_yaw)},
        }
        # A one-state trajectory: MetaSim logs an error for a demo without states.
        demos.append({"init_state": init, "actions": [], "states": [copy.deepcopy(init)]})
    return {ROBOT_NAME: demos}


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_data_folder(out: str | Path, count: int = 100, seed: int = 0, asset: str | Path = ASSET) -> list[Path]:
    """Write MetaSim's ``roboverse_data`` files under ``out`` (created if missing); return their paths.

    ``out`` becomes the MetaSim server's working directory, so it must hold no ``.py`` files: MetaSim
    imports every non-underscore ``.py`` file of its working directory when it looks up a robot.

    Raises:
        ValueError: ``out`` holds ``.py`` files, or the model cannot be converted.
    """
    out = Path(out)
    stray = sorted(p.name for p in out.glob("*.py")) if out.is_dir() else []
    if stray:
        raise ValueError(f"{out} holds Python files {stray}: MetaSim would import them; use an empty folder")
    xml = out / PANDA_XML
    _write_atomic(xml, panda_mjcf(asset).encode())
    traj = out / STACK_CUBE_TRAJ
    # mtime=0: the same poses always give the same bytes.
    packed = gzip.compress(pickle.dumps(stack_cube_start_poses(count, seed), protocol=4), compresslevel=6, mtime=0)
    _write_atomic(traj, packed)
    log.info("wrote %s and %s (%d start poses, seed %d)", xml, traj, count, seed)
    return [xml, traj]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gym_remote.backends.roboverse.data",
        description="Write RoboVerse MetaSim's data folder (Franka MJCF and stack_cube start poses) from "
        "gym-remote's stack-cube model, for a MetaSim server run with that folder as its working directory.",
    )
    parser.add_argument("--out", required=True, type=Path, help="folder to write roboverse_data/ into")
    parser.add_argument("--count", type=int, default=100, help="start poses to draw (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the start poses (default 0)")
    args = parser.parse_args(argv)
    for path in write_data_folder(args.out, args.count, args.seed):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
