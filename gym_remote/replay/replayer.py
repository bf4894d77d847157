"""Pose a local MuJoCo model from remote states and render it offscreen (:class:`Replayer`).

The flat state (:mod:`gym_remote.state`) is bound onto the local model through a name map (remote
entity and joint names -> local ones, quaternion order); a name that matches nothing is a
:class:`~gym_remote.errors.StateError` listing it, never a silent skip. Posing is kinematic only:
replay needs no contacts or forces. Frames are (H, W, 3) uint8; videos are MP4 (libx264) written
atomically.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gym_remote.replay.gl import load_mujoco
from gym_remote.state import MujocoBinding, NameMap, StateSchema

if TYPE_CHECKING:
    import mujoco

__all__ = ["BUILTIN_TASK", "NameMapSource", "Replayer", "load_name_map", "resolve_model"]

log = logging.getLogger(__name__)

#: The remote task whose scene the shipped ``stack_cube.xml`` reproduces (the default model).
BUILTIN_TASK = "gym_remote/StackCube-v0"

NameMapSource = NameMap | Mapping[str, Any] | str | Path | None


def resolve_model(model: str | Path | mujoco.MjModel | None, task: str | None = None) -> mujoco.MjModel:
    """A compiled MjModel from an MJCF path, an XML string or a model; ``None`` means the built-in
    stack-cube scene, allowed only when the remote task is the built-in one (any other scene would
    be drawn wrongly without a word)."""
    mj = load_mujoco()
    if isinstance(model, mj.MjModel):
        return model
    if model is None:
        if task is None or task.split(":")[-1] != BUILTIN_TASK:
            raise ValueError(
                f"the remote task {task!r} is not the built-in {BUILTIN_TASK!r}: pass model= (an MJCF "
                "path, an XML string or a mujoco.MjModel) describing the remote scene, plus name_map= if "
                "its names differ (the built-in model is gym_remote.tasks.stack_cube.ASSET_PATH)"
            )
        from gym_remote.tasks.stack_cube import ASSET_PATH

        model = ASSET_PATH
    if isinstance(model, str) and model.lstrip().startswith("<"):
        return mj.MjModel.from_xml_string(model)
    return mj.MjModel.from_xml_path(str(model))


def load_name_map(source: NameMapSource) -> NameMap:
    """Like :meth:`NameMap.load`, plus bare names of ``configs/maps/*.yaml`` (``"isaaclab_franka"``)."""
    if isinstance(source, (str, Path)) and not Path(source).exists():
        from gym_remote.config import find_config

        source = find_config(source, "maps")
    return NameMap.load(source)


def name_map_to_dict(name_map: NameMap) -> dict[str, Any]:
    data = dataclasses.asdict(name_map)
    data["ignore"] = list(name_map.ignore)
    return data


def sibling_temp(path: Path) -> str:
    """An unused name next to ``path`` (same folder, so ``os.replace`` is atomic; same suffix, so
    ffmpeg picks the container). Not created here, so the final file gets the usual permissions."""
    return str(path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}"))


class Replayer:
    """A local MuJoCo model posed from remote states and rendered offscreen.

    Args:
        model: MJCF path, XML string or ``mujoco.MjModel`` of the remote scene.
        schema: layout of the states (the remote env's ``state_schema``).
        name_map: remote-to-local names and quaternion order (dict, YAML path, bare name in
            ``configs/maps/`` or :class:`NameMap`); names matching nothing raise :class:`StateError`.
        camera: camera name or id; ``None`` takes the model's first camera (else the free camera).
        width, height: frame size; the model's offscreen buffer is enlarged when needed.
    """

    def __init__(
        self,
        model: str | Path | mujoco.MjModel,
        schema: StateSchema,
        name_map: NameMapSource = None,
        *,
        camera: str | int | None = None,
        width: int = 640,
        height: int = 480,
    ) -> None:
        self._mj = mj = load_mujoco()
        self.model = resolve_model(model)
        self.data = mj.MjData(self.model)
        self.binding = MujocoBinding(self.model, schema, load_name_map(name_map))
        self.schema = schema
        self.width, self.height = int(width), int(height)
        self.camera = self._check_camera(camera)
        self._renderer: mujoco.Renderer | None = None
        mj.mj_forward(self.model, self.data)  # bodies the states never mention keep their default pose

    def _check_camera(self, camera: str | int | None) -> str | int:
        mj = self._mj
        names = [self.model.camera(i).name for i in range(self.model.ncam)]
        if camera is None:
            return 0 if self.model.ncam else -1
        if isinstance(camera, str) and mj.mj_name2id(self.model, mj.mjtObj.mjOBJ_CAMERA, camera) < 0:
            raise ValueError(f"no camera {camera!r} in the model; cameras: {names}")
        if isinstance(camera, int) and not -1 <= camera < self.model.ncam:
            raise ValueError(f"camera id {camera} out of range: the model has {self.model.ncam} cameras {names}")
        return camera

    def set_state(self, state: np.ndarray) -> None:
        """Pose the model from one flat state. Kinematics only: replay needs no contacts or forces."""
        mj = self._mj
        self.binding.write(self.data, state)
        mj.mj_kinematics(self.model, self.data)
        mj.mj_comPos(self.model, self.data)
        mj.mj_camlight(self.model, self.data)  # cameras that track bodies follow them

    def render(self, state: np.ndarray | None = None) -> np.ndarray:
        """An (H, W, 3) uint8 frame, after posing the model from ``state`` when one is given."""
        if state is not None:
            self.set_state(state)
        if self._renderer is None:  # created on first use: recording alone needs no GL context
            vis = self.model.vis.global_
            vis.offwidth, vis.offheight = max(vis.offwidth, self.width), max(vis.offheight, self.height)
            self._renderer = self._mj.Renderer(self.model, self.height, self.width)
        self._renderer.update_scene(self.data, camera=self.camera)
        return self._renderer.render()

    def write_video(self, states: np.ndarray, path: str | Path, fps: float) -> int:
        """Render ``states`` (T, D) into an MP4 at ``path``; return the number of frames.

        Frames are rendered while moviepy encodes, so memory holds one frame, not the whole run.
        The file appears atomically: a crash never leaves a truncated video under ``path``.
        """
        from moviepy import VideoClip
        from tqdm import tqdm

        states = np.asarray(states, dtype=np.float64)
        n = len(states)
        if n == 0:
            raise ValueError("no states to render")
        if self.width % 2 or self.height % 2:
            raise ValueError(f"libx264 needs an even frame size, got {self.width}x{self.height}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        cache: list[Any] = [-1, None]
        log.info("rendering %d frames (%dx%d) into %s", n, self.width, self.height, path)
        with tqdm(total=n, desc=f"render {path.name}", unit="frame", disable=None) as bar:

            def frame_at(t: float) -> np.ndarray:
                index = min(round(t * fps), n - 1)
                if index != cache[0]:  # moviepy asks for frame 0 twice (to learn the size)
                    cache[:] = [index, self.render(states[index])]
                    bar.update(1)
                return cache[1]

            # Half a frame of slack: moviepy writes int(duration * fps) frames, and n / fps * fps
            # can round to just below n.
            clip = VideoClip(frame_at, duration=(n + 0.5) / fps)
            tmp = sibling_temp(path)
            try:
                clip.write_videofile(tmp, fps=fps, codec="libx264", audio=False, logger=None)
                os.replace(tmp, path)
            finally:
                clip.close()
                if os.path.exists(tmp):
                    os.unlink(tmp)
        log.info("wrote %s (%d frames at %g fps)", path, n, fps)
        return n

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> Replayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
