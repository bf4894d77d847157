"""The state schema's pure conversions, and its binding to a real MuJoCo model."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from gym_remote.errors import StateError
from gym_remote.protocol import decode, encode
from gym_remote.state import (
    Entity,
    MujocoBinding,
    NameMap,
    StateSchema,
    check_state,
    convert_quat,
    mujoco_schema,
    state_from_dict,
    state_to_dict,
)
from gym_remote.tasks.stack_cube import ASSET_PATH

SCHEMA = StateSchema((Entity("robot", "articulation", ("j1", "j2")), Entity("box", "rigid")))


def test_layout_and_wire_round_trip():
    assert SCHEMA.size == (7 + 6 + 4) + (7 + 6)
    assert SCHEMA.offsets() == {"robot": 0, "box": 17}
    header, buffers = encode(SCHEMA.to_dict())
    assert StateSchema.from_dict(decode(header, buffers)) == SCHEMA


def test_dict_conversion_round_trips_batched_and_single():
    rng = np.random.default_rng(0)
    for shape in ((SCHEMA.size,), (5, SCHEMA.size)):
        flat = rng.normal(size=shape)
        nested = state_to_dict(SCHEMA, flat)
        assert set(nested["robot"]["joint_pos"]) == {"j1", "j2"}
        assert nested["box"]["root_pose"].shape == (*shape[:-1], 7)
        np.testing.assert_array_equal(state_from_dict(SCHEMA, nested), flat)


def test_quaternion_order_conversion():
    q_xyzw = np.array([0.1, 0.2, 0.3, 0.9])
    assert convert_quat(q_xyzw, "xyzw", "wxyz").tolist() == [0.9, 0.1, 0.2, 0.3]
    assert convert_quat(convert_quat(q_xyzw, "xyzw", "wxyz"), "wxyz", "xyzw").tolist() == q_xyzw.tolist()
    nested = {
        "robot": {"root_pose": [0, 0, 0, 0, 0, 0, 1], "joint_pos": {"j1": 1, "j2": 2}},
        "box": {"root_pose": [1, 2, 3, 0, 0, 0, 1]},
    }
    flat = state_from_dict(SCHEMA, nested, quat_order="xyzw")
    assert flat[3:7].tolist() == [1, 0, 0, 0] and flat[17 + 3 : 17 + 7].tolist() == [1, 0, 0, 0]


def test_missing_names_and_wrong_shapes_are_errors():
    with pytest.raises(StateError, match="lacks entities \\['box'\\]"):
        state_from_dict(SCHEMA, {"robot": {"root_pose": np.zeros(7), "joint_pos": {"j1": 0, "j2": 0}}})
    with pytest.raises(StateError, match="joint positions for \\['j2'\\]"):
        state_from_dict(
            SCHEMA, {"robot": {"root_pose": np.zeros(7), "joint_pos": {"j1": 0}}, "box": {"root_pose": np.zeros(7)}}
        )
    with pytest.raises(StateError, match="does not fit the schema"):
        check_state(SCHEMA, np.zeros(3))
    with pytest.raises(StateError, match="unique"):
        StateSchema((Entity("a", "rigid"), Entity("a", "rigid")))
    with pytest.raises(StateError, match="unknown name-map keys"):
        NameMap.from_dict({"entitys": {}})


def test_mujoco_schema_binding_round_trip_on_the_stack_cube_model():
    model = mujoco.MjModel.from_xml_path(str(ASSET_PATH))
    data = mujoco.MjData(model)
    schema = mujoco_schema(model)
    assert [(e.name, e.kind) for e in schema.entities] == [
        ("franka", "articulation"),
        ("cube", "rigid"),
        ("base", "rigid"),
    ]
    assert schema.entity("franka").joints[:7] == tuple(f"panda_joint{i}" for i in range(1, 8))
    binding = MujocoBinding(model, schema)
    rng = np.random.default_rng(1)
    data.qpos[:] = rng.uniform(-0.5, 0.5, model.nq)
    data.qvel[:] = rng.normal(size=model.nv)
    mujoco.mj_normalizeQuat(model, data.qpos)
    mujoco.mj_forward(model, data)
    state = binding.read(data)
    other = mujoco.MjData(model)
    binding.write(other, state)
    mujoco.mj_forward(model, other)
    np.testing.assert_array_equal(other.qpos, data.qpos)
    np.testing.assert_array_equal(other.qvel, data.qvel)
    np.testing.assert_allclose(binding.read(other), state)


def test_binding_reports_every_unmatched_name_at_once():
    model = mujoco.MjModel.from_xml_path(str(ASSET_PATH))
    foreign = StateSchema((Entity("robot", "articulation", ("panda_joint1", "elbow")), Entity("mug", "rigid")))
    with pytest.raises(StateError) as info:
        MujocoBinding(model, foreign, {"entities": {"robot": "franka"}})
    assert "robot/elbow" in str(info.value) and "'mug'" in str(info.value)
    binding = MujocoBinding(model, foreign, {"entities": {"robot": "franka"}, "ignore": ["mug", "robot/elbow"]})
    data = mujoco.MjData(model)
    state = np.zeros(foreign.size)
    state[13] = 0.25  # panda_joint1
    binding.write(data, state)
    assert data.joint("panda_joint1").qpos[0] == 0.25
