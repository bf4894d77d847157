"""USD stand-ins of the Franka cube-stacking scene, written with ``pxr`` from gym-remote's own MJCF.

``IsaacContrib-Stack-Cube-Franka`` (Isaac Lab 3.0) loads four files from NVIDIA's asset server: the
Franka (``franka_panda.usda``), three 4 cm blocks and the Seattle lab table. This module writes small
stand-ins of them from the project's Franka (:data:`gym_remote.assets.STACK_CUBE_XML`, whose body
frames reproduce the real Panda's modified DH table), so the task builds offline and its states
replay on that same model with nothing to convert. Every length is in metres, every mass in kg;
USD angles (joint limits, angular drive gains) are per degree, as USD requires.

The Franka (default prim ``/Robot``, with ``PhysicsArticulationRootAPI``):

- rigid bodies nested as ``/Robot/Geometry/panda_link0/panda_link1/.../panda_link7/panda_hand/
  panda_{left,right}finger`` (the task's frame transformer matches ``Robot/(Geometry/.*/)?panda_hand``),
  each posed in its parent's frame exactly as the MJCF body, with the MJCF's compiled mass, centre of
  mass and principal inertia (MuJoCo computes them from the shapes; 9.9 kg in all);
- joints under ``/Robot/Joints``: fixed ``root_joint`` (world to ``panda_link0``) and
  ``panda_hand_joint`` (link 7 to the hand, a weld in the MJCF), revolute ``panda_joint1..7`` about
  each body's z (the MJCF's limits, in degrees), prismatic ``panda_finger_joint1/2`` 0-0.04 m (finger
  2 slides along the hand's -y: its joint frame is turned half a turn about z). Isaac Lab reads back
  the real Franka's joint and body names and order;
- drives (``PhysicsDriveAPI``, force type): arm joints 1-4 kp 1000 N·m/rad, kd 80 N·m·s/rad, at most
  87 N·m; joints 5-7 kp 500, kd 40, at most 12 N·m; finger 1 kp 400 N/m, kd 40 N·s/m, at most 200 N;
  armature 0.1 kg·m² (``newton:armature``). The MJCF's own servos are stiffer because its links are
  gravity compensated; Isaac Lab's Franka config keeps gravity on and takes the gains from the USD
  (``stiffness=None``), so these are what it runs with;
- finger 2 has no drive and follows finger 1 through ``NewtonMimicAPI`` (coefficient 1), as NVIDIA's
  asset authors a mimic joint for its passive finger;
- shapes: the MJCF's capsules, cylinders and boxes; only the hand and the two finger pads collide
  (friction 1.5), the arm links are visual only.

Blocks: a 4.06 cm cube (the edge the task's spawn height of 0.0203 m on the table implies; its
``stack_1`` test allows centres up to 0.0468 + 0.005 m apart vertically), a rigid body of 50 g (the
MJCF cube's mass), friction 1.0, one colour each. Table: one
static box collider whose top is the plane z = 0 of the table prim, sized and placed so that, at the
task's table pose (0.5 m ahead of the robot, turned a quarter turn about z), it covers the MJCF
table exactly (1.3 m x 1.2 m, 0.75 m thick).

Differences from NVIDIA's assets, so nobody mistakes the stand-ins for them:

- the Franka weighs 9.9 kg (NVIDIA's is reported at ~18 kg; its file is not reachable here); its
  arm links have no colliders (NVIDIA's ``Colliders`` variant ``primitives`` gives the arm colliders);
  it has no variant sets (Isaac Lab logs that it cannot select ``Physics``/``Colliders`` and carries
  on); shapes are primitives, not meshes; drive gains are the ones above, not NVIDIA's authored ones;
- the blocks are plain boxes whose mass is the MJCF's, not read from NVIDIA's files;
- the table is one box with no legs; the floor (Isaac Lab's ground plane at z = -1.05 m) is not
  under it (the MJCF floor is at -0.75 m).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "ARM_DRIVES",
    "BLOCK_COLORS",
    "BLOCK_EDGE",
    "BLOCK_MASS",
    "FINGER_DRIVE",
    "JOINT_ARMATURE",
    "block_layer",
    "franka_layer",
    "table_layer",
]

#: Edge of each block (m).
BLOCK_EDGE = 0.0406
#: Mass of each block (kg): the MJCF cube's.
BLOCK_MASS = 0.05
#: Block colours (linear RGB) by colour name, as in NVIDIA's file names ``{name}_block.usd``.
BLOCK_COLORS = {"blue": (0.15, 0.3, 0.85), "red": (0.85, 0.1, 0.1), "green": (0.1, 0.7, 0.2)}
#: (stiffness N·m/rad, damping N·m·s/rad, max force N·m) of the arm joints, by joint number.
ARM_DRIVES = {**dict.fromkeys(range(1, 5), (1000.0, 80.0, 87.0)), **dict.fromkeys(range(5, 8), (500.0, 40.0, 12.0))}
#: (stiffness N/m, damping N·s/m, max force N) of the leading finger's drive.
FINGER_DRIVE = (400.0, 40.0, 200.0)
#: Armature (reflected rotor inertia) of every joint, kg·m² (kg for the fingers).
JOINT_ARMATURE = 0.1

_MJCF_ROOT = "franka"  # the MJCF's name for the base body, panda_link0 in Isaac Lab
_BODY_NAMES = (
    *(f"panda_link{i}" for i in range(8)),
    "panda_hand",
    "panda_leftfinger",
    "panda_rightfinger",
)
_GEOM_TYPES = {3: "capsule", 5: "cylinder", 6: "box"}  # mujoco.mjtGeom values
_TABLE_FRICTION = 1.0
_DEG = 180.0 / math.pi


def _mjcf() -> Any:
    """The project's stack-cube MJCF, compiled by MuJoCo (Newton brings ``mujoco`` into the Isaac Lab venv)."""
    import mujoco

    from gym_remote.assets import STACK_CUBE_XML

    return mujoco.MjModel.from_xml_path(str(STACK_CUBE_XML))


def _stage(default: str) -> tuple[Any, Any]:
    from pxr import Usd, UsdGeom, UsdPhysics

    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    UsdPhysics.SetStageKilogramsPerUnit(stage, 1.0)
    root = UsdGeom.Xform.Define(stage, f"/{default}")
    stage.SetDefaultPrim(root.GetPrim())
    return stage, root


def _pose(xformable: Any, pos: Any, quat_wxyz: Any = (1.0, 0.0, 0.0, 0.0), scale: Any = None) -> None:
    from pxr import Gf

    xformable.AddTranslateOp().Set(Gf.Vec3d(*map(float, pos)))
    w, x, y, z = map(float, quat_wxyz)
    xformable.AddOrientOp().Set(Gf.Quatf(w, x, y, z))
    if scale is not None:
        xformable.AddScaleOp().Set(Gf.Vec3f(*map(float, scale)))


def _friction_material(stage: Any, path: str, friction: float) -> Any:
    from pxr import UsdPhysics, UsdShade

    material = UsdShade.Material.Define(stage, path)
    api = UsdPhysics.MaterialAPI.Apply(material.GetPrim())
    api.CreateStaticFrictionAttr(friction)
    api.CreateDynamicFrictionAttr(friction)
    api.CreateRestitutionAttr(0.0)
    return material


def _bind_physics(prim: Any, material: Any) -> None:
    from pxr import UsdShade

    UsdShade.MaterialBindingAPI.Apply(prim).Bind(material, UsdShade.Tokens.weakerThanDescendants, "physics")


def _shape(stage: Any, path: str, kind: str, size: Any, color: Any) -> Any:
    """A gprim of MuJoCo ``size`` (box half extents; capsule/cylinder radius and half length along z)."""
    from pxr import Gf, UsdGeom

    if kind == "box":
        gprim = UsdGeom.Cube.Define(stage, path)
        gprim.CreateSizeAttr(1.0)  # scaled to the full extents by the caller's scale op
    elif kind == "capsule":
        gprim = UsdGeom.Capsule.Define(stage, path)
        gprim.CreateRadiusAttr(float(size[0]))
        gprim.CreateHeightAttr(2.0 * float(size[1]))  # the cylinder part; the caps add a radius each
        gprim.CreateAxisAttr(UsdGeom.Tokens.z)
    else:
        gprim = UsdGeom.Cylinder.Define(stage, path)
        gprim.CreateRadiusAttr(float(size[0]))
        gprim.CreateHeightAttr(2.0 * float(size[1]))
        gprim.CreateAxisAttr(UsdGeom.Tokens.z)
    gprim.CreateDisplayColorAttr([Gf.Vec3f(*map(float, color[:3]))])
    return gprim


def franka_layer() -> Any:
    """The Franka stand-in (default prim ``/Robot``) as an in-memory ``Usd.Stage``; see the module docstring."""
    from pxr import Gf, Sdf, UsdGeom, UsdPhysics

    m = _mjcf()
    stage, robot = _stage("Robot")
    UsdPhysics.ArticulationRootAPI.Apply(robot.GetPrim())
    UsdGeom.Xform.Define(stage, "/Robot/Geometry")
    stage.DefinePrim("/Robot/Joints", "Scope")
    pads = _friction_material(stage, "/Robot/Looks/pads", 1.5)

    def mj_name(name: str) -> str:
        return _MJCF_ROOT if name == "panda_link0" else name

    paths: dict[str, str] = {}
    for name in _BODY_NAMES:
        body = m.body(mj_name(name))
        parent = m.body(int(body.parentid[0])).name
        base = "/Robot/Geometry" if parent == "world" else paths[parent if parent != _MJCF_ROOT else "panda_link0"]
        path = paths[name] = f"{base}/{name}"
        xform = UsdGeom.Xform.Define(stage, path)
        _pose(xform, body.pos, body.quat)
        prim = xform.GetPrim()
        UsdPhysics.RigidBodyAPI.Apply(prim)
        mass = UsdPhysics.MassAPI.Apply(prim)
        mass.CreateMassAttr(float(body.mass[0]))
        mass.CreateCenterOfMassAttr(Gf.Vec3f(*map(float, body.ipos)))
        mass.CreateDiagonalInertiaAttr(Gf.Vec3f(*map(float, body.inertia)))
        w, x, y, z = map(float, body.iquat)
        mass.CreatePrincipalAxesAttr(Gf.Quatf(w, x, y, z))
        for k, geom in enumerate(int(g) for g in range(m.ngeom) if m.geom_bodyid[g] == body.id):
            kind = _GEOM_TYPES[int(m.geom_type[geom])]
            collides = bool(m.geom_contype[geom] or m.geom_conaffinity[geom])
            matid = int(m.geom_matid[geom])
            color = m.mat_rgba[matid] if matid >= 0 else m.geom_rgba[geom]
            gprim = _shape(stage, f"{path}/{'collision' if collides else 'visual'}_{k}", kind, m.geom_size[geom], color)
            _pose(gprim, m.geom_pos[geom], m.geom_quat[geom], 2.0 * m.geom_size[geom] if kind == "box" else None)
            if collides:
                UsdPhysics.CollisionAPI.Apply(gprim.GetPrim())
                _bind_physics(gprim.GetPrim(), pads)

    def joint(kind: Any, name: str, parent: str | None, child: str) -> Any:
        j = kind.Define(stage, f"/Robot/Joints/{name}")
        if parent is not None:
            j.CreateBody0Rel().SetTargets([Sdf.Path(paths[parent])])
        j.CreateBody1Rel().SetTargets([Sdf.Path(paths[child])])
        body = m.body(mj_name(child))
        pos = (0.0, 0.0, 0.0) if parent is None else body.pos
        quat = (1.0, 0.0, 0.0, 0.0) if parent is None else body.quat
        j.CreateLocalPos0Attr(Gf.Vec3f(*map(float, pos)))
        j.CreateLocalRot0Attr(Gf.Quatf(*map(float, quat)))
        j.CreateLocalPos1Attr(Gf.Vec3f(0.0, 0.0, 0.0))
        j.CreateLocalRot1Attr(Gf.Quatf(1.0, 0.0, 0.0, 0.0))
        return j

    joint(UsdPhysics.FixedJoint, "root_joint", None, "panda_link0")
    joint(UsdPhysics.FixedJoint, "panda_hand_joint", "panda_link7", "panda_hand")
    for i in range(1, 8):
        name = f"panda_joint{i}"
        low, high = (float(v) * _DEG for v in m.joint(name).range)
        j = joint(UsdPhysics.RevoluteJoint, name, f"panda_link{i - 1}", f"panda_link{i}")
        j.CreateAxisAttr(UsdPhysics.Tokens.z)
        j.CreateLowerLimitAttr(low)
        j.CreateUpperLimitAttr(high)
        kp, kd, fmax = ARM_DRIVES[i]
        _drive(j.GetPrim(), "angular", kp / _DEG, kd / _DEG, fmax)
    fingers = {}
    for i, (name, child) in enumerate(
        (("panda_finger_joint1", "panda_leftfinger"), ("panda_finger_joint2", "panda_rightfinger")), start=1
    ):
        j = fingers[i] = joint(UsdPhysics.PrismaticJoint, name, "panda_hand", child)
        axis = m.joint(name).axis
        j.CreateAxisAttr(UsdPhysics.Tokens.y)
        if axis[1] < 0:  # the MJCF's finger 2 opens along -y: turn its joint frame half a turn about z
            j.GetLocalRot0Attr().Set(j.GetLocalRot0Attr().Get() * Gf.Quatf(0.0, 0.0, 0.0, 1.0))
            j.GetLocalRot1Attr().Set(Gf.Quatf(0.0, 0.0, 0.0, 1.0))
        low, high = map(float, m.joint(name).range)
        j.CreateLowerLimitAttr(low)
        j.CreateUpperLimitAttr(high)
    _drive(fingers[1].GetPrim(), "linear", *FINGER_DRIVE)
    # Newton's schemas by name, with their properties typed as newton_usd_schemas declares them: the
    # file is the same whether or not that plugin was registered before pxr's schema registry started.
    follower = fingers[2].GetPrim()
    follower.AddAppliedSchema("NewtonMimicAPI")
    follower.CreateRelationship("newton:mimicJoint").SetTargets([fingers[1].GetPath()])
    follower.CreateAttribute("newton:mimicCoef0", Sdf.ValueTypeNames.Float).Set(0.0)  # offset, m
    follower.CreateAttribute("newton:mimicCoef1", Sdf.ValueTypeNames.Float).Set(1.0)  # gain
    for prim in stage.Traverse():
        if prim.IsA(UsdPhysics.Joint) and not prim.IsA(UsdPhysics.FixedJoint):
            prim.AddAppliedSchema("NewtonJointAPI")
            prim.CreateAttribute("newton:armature", Sdf.ValueTypeNames.Float).Set(JOINT_ARMATURE)
    return stage


def _drive(prim: Any, kind: str, stiffness: float, damping: float, max_force: float) -> None:
    """A force drive on ``prim`` (gains already in USD units: per degree for ``angular``)."""
    from pxr import UsdPhysics

    drive = UsdPhysics.DriveAPI.Apply(prim, kind)
    drive.CreateTypeAttr("force")
    drive.CreateStiffnessAttr(float(stiffness))
    drive.CreateDampingAttr(float(damping))
    drive.CreateMaxForceAttr(float(max_force))
    drive.CreateTargetPositionAttr(0.0)


def block_layer(color: str) -> Any:
    """One block (default prim ``/Block``, an in-memory ``Usd.Stage``): a :data:`BLOCK_EDGE` cube, rigid,
    :data:`BLOCK_MASS` kg."""
    from pxr import UsdGeom, UsdPhysics

    stage, root = _stage("Block")
    prim = root.GetPrim()
    UsdPhysics.RigidBodyAPI.Apply(prim)
    UsdPhysics.MassAPI.Apply(prim).CreateMassAttr(BLOCK_MASS)
    cube = UsdGeom.Cube.Define(stage, "/Block/Cube")
    cube.CreateSizeAttr(BLOCK_EDGE)
    cube.CreateExtentAttr([(-BLOCK_EDGE / 2,) * 3, (BLOCK_EDGE / 2,) * 3])
    cube.CreateDisplayColorAttr([BLOCK_COLORS[color]])
    UsdPhysics.CollisionAPI.Apply(cube.GetPrim())
    _bind_physics(cube.GetPrim(), _friction_material(stage, "/Block/Looks/physics", 1.0))
    return stage


def table_layer() -> Any:
    """The table (default prim ``/Table``, an in-memory ``Usd.Stage``): one static box collider, top
    face at the prim's z = 0.

    The task places the table at (0.5, 0, 0) m turned +90 degrees about z; in that frame the MJCF
    table (centre (0.35, 0, -0.375) m, half extents (0.65, 0.6, 0.375) m, world axes) has its centre
    at (0, 0.15, -0.375) m and half extents (0.6, 0.65, 0.375) m.
    """
    from pxr import UsdGeom, UsdPhysics

    m = _mjcf()
    geom = m.geom("table")
    half = [float(v) for v in geom.size]
    centre = [float(v) for v in geom.pos]
    at, turn = (0.5, 0.0), (0.0, 1.0)  # the task's table position and its quarter turn (cos, sin)
    dx, dy = centre[0] - at[0], centre[1] - at[1]
    local = (turn[0] * dx + turn[1] * dy, -turn[1] * dx + turn[0] * dy, centre[2])
    stage, _ = _stage("Table")
    box = UsdGeom.Cube.Define(stage, "/Table/Top")
    box.CreateSizeAttr(1.0)
    _pose(box, local, scale=(2 * half[1], 2 * half[0], 2 * half[2]))  # x and y swap under the quarter turn
    box.CreateDisplayColorAttr([tuple(float(v) for v in m.mat_rgba[int(geom.matid[0])][:3])])
    UsdPhysics.CollisionAPI.Apply(box.GetPrim())
    _bind_physics(box.GetPrim(), _friction_material(stage, "/Table/Looks/physics", _TABLE_FRICTION))
    return stage
