"""Offline Isaac Lab assets: a local folder that mirrors the part of NVIDIA's asset server a task loads.

Isaac Lab resolves every asset under one root, ``ISAACSIM_ASSET_ROOT`` (read once, when
``isaaclab.utils.assets`` is imported), e.g. ``{root}/Isaac/IsaacLab/Robots/Classic/Cartpole/cartpole.usd``.
A GPU box behind a firewall, like these CPU machines, cannot reach the server; pointing the root at
a local mirror makes the tasks build with no code change (the ``isaaclab`` backend's ``asset_root``
setting does exactly that). Copy NVIDIA's real files into such a folder when you have them; this
module writes small stand-ins for the files the tested tasks need:

- the Cartpole robot, cut out of the golden test stage ``isaaclab_tasks/test/golden_stages/cartpole``
  that the installed ``isaaclab`` wheel ships (NVIDIA's own prims: bodies ``slider``/``cart``/``pole``,
  joints ``slider_to_cart`` and ``cart_to_pole``, masses and limits as shipped);
- the default ground plane: a 100 m x 100 m collision ``Plane`` under ``Environment`` plus the
  ``Looks/theGrid/Shader`` prim that ``GroundPlaneCfg(color=...)`` writes to. It is flat grey, not
  NVIDIA's checker texture;
- the Franka cube-stacking scene of ``IsaacContrib-Stack-Cube-Franka``: ``franka_panda.usda``,
  ``{blue,red,green}_block.usd`` and ``table_instanceable.usd``, written by
  :mod:`~gym_remote.backends.isaaclab.stack_scene` from gym-remote's own Franka MJCF
  (``gym_remote/assets/stack_cube.xml``), with the real Franka's body and joint names, prim layout
  and kinematics, so the task's frame transformer, actions and observations work unchanged.

What the stand-ins are not (details in :mod:`~gym_remote.backends.isaaclab.stack_scene`): the Franka
weighs 9.9 kg (NVIDIA's is reported at ~18 kg; not checked here), has primitive shapes, colliders
only on the hand and finger pads (NVIDIA's arm collides too), drive gains of its own and no variant
sets (Isaac Lab logs that it cannot select the ``Physics``/``Colliders`` variants and carries on);
the blocks are plain 4.06 cm boxes of 50 g; the table is one box; the ground is grey. Physics results
(grasps, contacts) are therefore Newton's on these shapes, not on NVIDIA's.

Run it inside the Isaac Lab venv (it needs ``pxr``)::

    python -m gym_remote.backends.isaaclab.assets /path/to/assets   # then serve with asset_root

Files are USD ASCII layers; Isaac Lab loads an ASCII layer under a ``.usd`` name. Each carries the
marker ``gym-remote stand-in v{STANDIN_VERSION}`` in its documentation; an existing file is left alone
unless ``--force`` is given or it is a stand-in of another version (a user's copy of NVIDIA's file has
no marker and is never overwritten).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from gym_remote.backends.isaaclab import stack_scene

log = logging.getLogger(__name__)

#: Paths under the asset root, as Isaac Lab 3.0's configs name them (``ISAACLAB_NUCLEUS_DIR`` is
#: ``{root}/Isaac/IsaacLab``; see ``isaaclab_assets/robots/cartpole.py`` and ``GroundPlaneCfg``).
CARTPOLE_USD = "Isaac/IsaacLab/Robots/Classic/Cartpole/cartpole.usd"
GROUND_PLANE_USD = "Isaac/IsaacLab/Environments/Grid/default_ground_plane_checker_v1/default_ground_plane.usda"
#: The stack scene's files (``isaaclab_assets/robots/franka.py``, ``contrib/stack/stack_env_cfg.py``;
#: ``ISAAC_NUCLEUS_DIR`` is ``{root}/Isaac``).
FRANKA_USD = "Isaac/IsaacLab/Robots/FrankaEmika/franka_panda.usda"
BLOCK_USD = "Isaac/Props/Blocks/{color}_block.usd"
TABLE_USD = "Isaac/Props/Mounts/SeattleLabTable/table_instanceable.usd"
#: Version of the stand-ins written here; files of another version are rewritten.
STANDIN_VERSION = 2  # 2: the Franka stack scene (the Cartpole and ground-plane files before it carry no marker)
_MARKER = "gym-remote stand-in v"
_WRITER = "gym_remote.backends.isaaclab.assets"

_GOLDEN_CARTPOLE = "test/golden_stages/cartpole/newton-isaacsim_rtx_renderer-rgb.usda"
_GOLDEN_ROBOT = "/World/envs/env_0/Robot"


def _golden_stage(name: str) -> Path:
    """A golden test stage shipped in the installed ``isaaclab`` wheel (its source tree rides along)."""
    import isaaclab

    base = Path(isaaclab.__file__).resolve().parent
    for candidate in (base / "source" / "isaaclab_tasks" / name, base.parent / "isaaclab_tasks" / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"the installed isaaclab has no golden stage {name!r} (looked under {base}): build the offline "
        "assets with the isaaclab 3.0.0 wheel, or copy NVIDIA's cartpole.usd into the asset root"
    )


def write_cartpole(path: Path) -> None:
    """Write the Cartpole robot (default prim ``/Robot``) cut from Isaac Lab's golden stage.

    The robot prim and the instanced prototypes it references are copied with ``Sdf.CopySpec``,
    which rewrites the relationship targets (joint bodies) from the stage's env-0 path to ``/Robot``.
    """
    from pxr import Sdf

    src = Sdf.Layer.FindOrOpen(str(_golden_stage(_GOLDEN_CARTPOLE)))
    dst = Sdf.Layer.CreateAnonymous(".usda")
    dst.ImportFromString("#usda 1.0\n")
    for spec in src.rootPrims:  # the instancing prototypes the robot's visuals/collisions reference
        if spec.name.startswith("Flattened_Prototype"):
            Sdf.CopySpec(src, spec.path, dst, spec.path)
    Sdf.CopySpec(src, Sdf.Path(_GOLDEN_ROBOT), dst, Sdf.Path("/Robot"))
    robot = dst.GetPrimAtPath("/Robot")
    robot.specifier = Sdf.SpecifierDef
    # the env-0 placement (z = 2 m) belongs to the task's init_state, not to the asset
    for name in ("xformOp:translate", "xformOp:orient", "xformOp:scale", "xformOpOrder"):
        if name in robot.attributes:
            robot.RemoveProperty(robot.attributes[name])
    dst.defaultPrim = "Robot"
    for key in ("metersPerUnit", "kilogramsPerUnit", "upAxis"):
        if key in src.pseudoRoot.ListInfoKeys():
            dst.pseudoRoot.SetInfo(key, src.pseudoRoot.GetInfo(key))
    _export(dst, path)


def write_ground_plane(path: Path) -> None:
    """Write a flat ground plane with the prim layout Isaac Lab's ``spawn_ground_plane`` expects."""
    from pxr import Gf, Sdf, Usd, UsdGeom, UsdPhysics, UsdShade

    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    root = UsdGeom.Xform.Define(stage, "/GroundPlane")
    stage.SetDefaultPrim(root.GetPrim())
    env = UsdGeom.Xform.Define(stage, "/GroundPlane/Environment")
    env.AddScaleOp().Set(Gf.Vec3f(1.0, 1.0, 1.0))  # spawn_ground_plane rescales this op to cfg.size
    mesh = UsdGeom.Mesh.Define(stage, "/GroundPlane/Environment/Geometry")
    half = 50.0  # metres: the 100 m x 100 m default, before Isaac Lab's scale op
    mesh.CreatePointsAttr([(-half, -half, 0), (half, -half, 0), (half, half, 0), (-half, half, 0)])
    mesh.CreateFaceVertexCountsAttr([4])
    mesh.CreateFaceVertexIndicesAttr([0, 1, 2, 3])
    mesh.CreateExtentAttr([(-half, -half, 0), (half, half, 0)])
    UsdGeom.PrimvarsAPI(mesh).CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.vertex).Set(
        [(0, 0), (1, 0), (1, 1), (0, 1)]
    )
    plane = UsdGeom.Plane.Define(stage, "/GroundPlane/CollisionPlane")
    plane.CreateAxisAttr(UsdGeom.Tokens.z)
    plane.CreateVisibilityAttr(UsdGeom.Tokens.invisible)
    UsdPhysics.CollisionAPI.Apply(plane.GetPrim())
    material = UsdShade.Material.Define(stage, "/GroundPlane/Looks/theGrid")
    shader = UsdShade.Shader.Define(stage, "/GroundPlane/Looks/theGrid/Shader")
    shader.CreateIdAttr("UsdPreviewSurface")
    shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).Set(Gf.Vec3f(0.5, 0.5, 0.5))
    shader.CreateInput("diffuse_tint", Sdf.ValueTypeNames.Color3f).Set(Gf.Vec3f(1.0, 1.0, 1.0))
    material.CreateSurfaceOutput().ConnectToSource(shader.ConnectableAPI(), "surface")
    UsdShade.MaterialBindingAPI.Apply(mesh.GetPrim()).Bind(material)
    _export(stage.GetRootLayer(), path)


def _export(layer: Any, path: Path) -> None:
    layer.documentation = f"{_MARKER}{STANDIN_VERSION}: {path.name}, written by {_WRITER} (not NVIDIA's asset)"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = layer.ExportToString()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # atomic: a half-written layer never sits under the real name


def _stage_writer(make: Callable[[], Any]) -> Callable[[Path], None]:
    """A builder writing the root layer of the ``Usd.Stage`` that ``make`` returns."""

    def write(path: Path) -> None:
        stage = make()  # held until the layer is written: an in-memory stage's layer dies with it
        _export(stage.GetRootLayer(), path)

    write.__doc__ = make.__doc__
    return write


def _stale(path: Path) -> bool:
    """Whether ``path`` is missing, or a stand-in written by another version of this module."""
    if not path.is_file():
        return True
    with open(path, encoding="utf-8", errors="replace") as f:
        head = f.read(4000)
    at = head.find(_MARKER)
    if at < 0:
        return False  # not ours (NVIDIA's file, or a stand-in from before the marker): keep it
    found = head[at + len(_MARKER) :].split(":", 1)[0]
    return found != str(STANDIN_VERSION)


#: Stand-in builders by relative path under the asset root; each writes one file.
BUILDERS: dict[str, Callable[[Path], None]] = {
    CARTPOLE_USD: write_cartpole,
    GROUND_PLANE_USD: write_ground_plane,
    FRANKA_USD: _stage_writer(stack_scene.franka_layer),
    **{
        BLOCK_USD.format(color=color): _stage_writer(partial(stack_scene.block_layer, color))
        for color in stack_scene.BLOCK_COLORS
    },
    TABLE_USD: _stage_writer(stack_scene.table_layer),
}


def build_asset_root(root: str | Path, force: bool = False) -> Path:
    """Write every stand-in asset missing under ``root`` (all of them with ``force``); return ``root``.

    A stand-in written by another version of this module is rewritten; a file without the marker
    (e.g. NVIDIA's own, copied in) is kept.

    Raises:
        FileNotFoundError: the installed isaaclab wheel lacks the golden stage the Cartpole is cut from.
        ImportError: ``pxr`` (or, for the Franka, ``mujoco`` and ``newton_usd_schemas``) is not
            importable: run this in the Isaac Lab venv.
    """
    root = Path(root).expanduser().resolve()
    for rel, build in BUILDERS.items():
        target = root / rel
        if not force and not _stale(target):
            continue
        log.info("writing %s", target)
        build(target)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gym_remote.backends.isaaclab.assets",
        description="Write offline stand-ins of the Isaac Lab assets the Cartpole and Franka stack tasks load "
        "(run in the Isaac Lab venv); then serve with --kwargs '{\"asset_root\": ROOT}'.",
    )
    parser.add_argument("root", help="folder to fill; mirrors the asset server's tree (Isaac/IsaacLab/...)")
    parser.add_argument("--force", action="store_true", help="rewrite files that already exist")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(build_asset_root(args.root, force=args.force))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
