"""MetaSim's data folder as ``gym_remote.backends.roboverse.data`` writes it (no MetaSim needed here;
``tests/test_metasim_real.py`` has the real MetaSim read it)."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import mujoco
import numpy as np
import pytest

from gym_remote.backends.roboverse.data import PANDA_XML, STACK_CUBE_TRAJ, main, stack_cube_start_poses
from gym_remote.tasks.stack_cube import ARM_JOINTS, ASSET_PATH, DEFAULT_ARM_QPOS, FINGER_JOINTS, MIN_SEPARATION


def test_writes_a_franka_mjcf_with_metasims_names(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path), "--count", "5"]) == 0
    model = mujoco.MjModel.from_xml_path(str(tmp_path / PANDA_XML))
    joints = [model.joint(i).name for i in range(model.njnt)]
    assert joints == [*ARM_JOINTS, *FINGER_JOINTS]
    assert [model.actuator(i).name for i in range(model.nu)] == joints  # MetaSim drives actuators by joint name
    assert model.nbody == 1 + 1 + 7 + 1 + 2  # world, franka, links 1..7, hand, two fingers: nothing else
    assert not model.body_gravcomp.any()  # MetaSim compensates the robot's gravity itself
    # Same kinematics as the built-in scene: equal joint angles put the finger tips at the same point.
    scene = mujoco.MjModel.from_xml_path(str(ASSET_PATH))
    tips = []
    for m in (model, scene):
        d = mujoco.MjData(m)
        for name, q in zip(ARM_JOINTS, DEFAULT_ARM_QPOS + 0.1, strict=True):
            d.joint(name).qpos = q
        mujoco.mj_kinematics(m, d)
        tips.append(d.site("tcp").xpos.copy())
    np.testing.assert_allclose(tips[0], tips[1], atol=1e-12)


def test_start_poses_are_in_metasims_v2_format_and_reproducible(tmp_path: Path) -> None:
    main(["--out", str(tmp_path), "--count", "20", "--seed", "3"])
    raw = (tmp_path / STACK_CUBE_TRAJ).read_bytes()
    data = pickle.loads(gzip.decompress(raw))  # a local file we just wrote, never network input
    demos = data["franka"]
    assert len(demos) == 20 and data == stack_cube_start_poses(20, seed=3)
    for demo in demos:
        init = demo["init_state"]
        assert set(init) == {"franka", "cube", "base"} and demo["states"][0] == init
        assert init["franka"]["dof_pos"]["panda_joint4"] == pytest.approx(DEFAULT_ARM_QPOS[3])
        cube, base = np.array(init["cube"]["pos"]), np.array(init["base"]["pos"])
        assert cube[2] == base[2] == 0.02 and np.linalg.norm(cube[:2] - base[:2]) >= MIN_SEPARATION
        assert np.linalg.norm(init["cube"]["rot"]) == pytest.approx(1.0)
    main(["--out", str(tmp_path), "--count", "20", "--seed", "3"])
    assert (tmp_path / STACK_CUBE_TRAJ).read_bytes() == raw  # same seed, same bytes
    assert stack_cube_start_poses(20, seed=4) != data


def test_refuses_a_folder_with_python_files(tmp_path: Path) -> None:
    (tmp_path / "setup.py").write_text("")
    with pytest.raises(ValueError, match="MetaSim would import them"):
        main(["--out", str(tmp_path)])


def test_the_module_runs_as_a_command(tmp_path: Path) -> None:
    """``python -m gym_remote.backends.roboverse.data``, as the README gives it."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "gym_remote.backends.roboverse.data", "--out", str(tmp_path), "--count", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / PANDA_XML).is_file() and (tmp_path / STACK_CUBE_TRAJ).is_file()
