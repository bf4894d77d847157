"""See a remote simulation on the laptop: record its states, pose a local MuJoCo model, render there.

The remote simulator (IsaacSim on a GPU box) need not render at all: every reset/step reply
carries the flat scene state (``RemoteEnv.with_state``, no extra round trip), and a local MuJoCo
model of the same scene is posed from it kinematically and rendered offscreen. The same
:class:`Replayer` serves the live :class:`MujocoReplayWrapper` and offline :func:`replay` of a saved
:class:`Trajectory`, so a video made during the run and one made later from the ``.npz`` agree.

MuJoCo is imported lazily, after :func:`configure_headless_gl` picked a GL backend: MuJoCo reads
``MUJOCO_GL`` once, at import, and its default (GLFW) needs a display.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from gym_remote.errors import StateError
from gym_remote.state import MujocoBinding, NameMap, StateSchema, check_state

if TYPE_CHECKING:
    import mujoco

log = logging.getLogger(__name__)

#: The remote task whose scene the shipped ``stack_cube.xml`` reproduces (the default model).
BUILTIN_TASK = "gym_remote/StackCube-v0"
_TRAJECTORY_VERSION = 1
_GL_PROBE = "import mujoco; c = mujoco.GLContext(8, 8); c.make_current(); c.free()"

NameMapSource = NameMap | Mapping[str, Any] | str | Path | None


# ------------------------------------------------------------------------------- headless GL


def configure_headless_gl() -> str | None:
    """Pick MuJoCo's offscreen backend on a display-less Linux box; return ``MUJOCO_GL``.

    An explicit ``MUJOCO_GL`` or a display always wins. Otherwise EGL is tried first (fastest with
    Mesa), then OSMesa, each in a throw-away subprocess: a backend that fails to load cannot be
    unloaded from this process. Must run before anything imports mujoco.
    """
    chosen = os.environ.get("MUJOCO_GL")
    if (
        chosen
        or not sys.platform.startswith("linux")
        or os.environ.get("DISPLAY")
        or os.environ.get("WAYLAND_DISPLAY")
    ):
        return chosen or None
    if "mujoco" in sys.modules:
        log.warning(
            "mujoco was imported before a headless GL backend was chosen; if rendering fails on this "
            "display-less machine, set MUJOCO_GL=egl before starting Python"
        )
        return None
    for backend in ("egl", "osmesa"):
        try:
            probe = subprocess.run(
                [sys.executable, "-c", _GL_PROBE],
                env={**os.environ, "MUJOCO_GL": backend},
                capture_output=True,
                timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.debug("MUJOCO_GL=%s probe failed: %s", backend, exc)
            continue
        if probe.returncode == 0:
            os.environ["MUJOCO_GL"] = backend
            log.info("no display: rendering with MUJOCO_GL=%s", backend)
            return backend
        log.debug(
            "MUJOCO_GL=%s does not work here: %s", backend, probe.stderr.decode(errors="replace")[-500:]
        )
    log.warning("neither EGL nor OSMesa works here; install libegl1 or libosmesa6 for headless rendering")
    return None


def _mujoco() -> Any:
    """The mujoco module, imported only after the GL backend is settled."""
    configure_headless_gl()
    import mujoco

    return mujoco


# ------------------------------------------------------------------------------ resolution


def resolve_model(model: str | Path | mujoco.MjModel | None, task: str | None = None) -> mujoco.MjModel:
    """A compiled MjModel from an MJCF path, an XML string or a model; ``None`` means the built-in
    stack-cube scene, allowed only when the remote task is the built-in one (any other scene would
    be drawn wrongly without a word)."""
    mj = _mujoco()
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


def _load_name_map(source: NameMapSource) -> NameMap:
    """Like :meth:`NameMap.load`, plus bare names of ``configs/maps/*.yaml`` (``"isaaclab_franka"``)."""
    if isinstance(source, (str, Path)) and not Path(source).exists():
        from gym_remote.config import find_config

        source = find_config(source, "maps")
    return NameMap.load(source)


def _name_map_to_dict(name_map: NameMap) -> dict[str, Any]:
    data = dataclasses.asdict(name_map)
    data["ignore"] = list(name_map.ignore)
    return data


def _sibling_temp(path: Path) -> str:
    """An unused name next to ``path`` (same folder, so ``os.replace`` is atomic; same suffix, so
    ffmpeg picks the container). Not created here, so the final file gets the usual permissions."""
    return str(path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}"))


# -------------------------------------------------------------------------------- replayer


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
        self._mj = mj = _mujoco()
        self.model = resolve_model(model)
        self.data = mj.MjData(self.model)
        self.binding = MujocoBinding(self.model, schema, _load_name_map(name_map))
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
            raise ValueError(
                f"camera id {camera} out of range: the model has {self.model.ncam} cameras {names}"
            )
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
            tmp = _sibling_temp(path)
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


# ------------------------------------------------------------------------------ trajectory


@dataclass
class Trajectory:
    """A recorded run, enough to re-render it later without the remote simulator.

    Row ``t`` of every array is one recorded state. The first row of each episode is the reset
    state (action NaN, reward 0, flags False); every later row is the state after ``actions[t]``.
    States are (T, D), or (T, N, D) from a batched env (rewards and flags then (T, N)).
    """

    schema: StateSchema
    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    episode: np.ndarray
    fps: float = 30.0
    task: str | None = None
    name_map: NameMap = field(default_factory=NameMap)

    def __len__(self) -> int:
        return len(self.states)

    @property
    def num_episodes(self) -> int:
        return len(np.unique(self.episode))

    def select(self, episode: int | None = None, env_index: int = 0) -> np.ndarray:
        """States (T, D) of one episode (``None``: all), of sub-env ``env_index`` when batched."""
        states = self.states if episode is None else self.states[self.episode == episode]
        if episode is not None and not len(states):
            raise ValueError(f"no episode {episode}; recorded episodes: {sorted(set(self.episode.tolist()))}")
        return states[:, env_index] if states.ndim == 3 else states

    def save(self, path: str | Path) -> Path:
        """Write one ``.npz`` atomically (temp file in the same folder, then ``os.replace``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _sibling_temp(path)
        try:
            with open(tmp, "xb") as f:
                np.savez_compressed(
                    f,
                    version=np.int64(_TRAJECTORY_VERSION),
                    schema=np.array(json.dumps(self.schema.to_dict())),
                    states=self.states,
                    actions=self.actions,
                    rewards=self.rewards,
                    terminated=self.terminated,
                    truncated=self.truncated,
                    episode=self.episode,
                    fps=np.float64(self.fps),
                    task=np.array(self.task or ""),
                    name_map=np.array(json.dumps(_name_map_to_dict(self.name_map))),
                )
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        log.info("wrote %s (%d states, %d episodes)", path, len(self), self.num_episodes)
        return path


def load_trajectory(path: str | Path) -> Trajectory:
    """Read a file written by :meth:`Trajectory.save` (no pickle: safe on files from elsewhere)."""
    with np.load(path, allow_pickle=False) as z:
        version = int(z["version"])
        if version != _TRAJECTORY_VERSION:
            raise ValueError(
                f"{path}: trajectory format version {version}, this gym-remote reads {_TRAJECTORY_VERSION}"
            )
        return Trajectory(
            schema=StateSchema.from_dict(json.loads(str(z["schema"]))),
            states=z["states"],
            actions=z["actions"],
            rewards=z["rewards"],
            terminated=z["terminated"],
            truncated=z["truncated"],
            episode=z["episode"],
            fps=float(z["fps"]),
            task=str(z["task"]) or None,
            name_map=NameMap.from_dict(json.loads(str(z["name_map"]))),
        )


def replay(
    trajectory: Trajectory | str | Path,
    path: str | Path,
    model: str | Path | mujoco.MjModel | None = None,
    name_map: NameMapSource = None,
    camera: str | int | None = None,
    width: int = 640,
    height: int = 480,
    fps: float | None = None,
    episode: int | None = None,
    env_index: int = 0,
) -> int:
    """Render a saved trajectory to an MP4; return the frame count.

    ``model`` defaults to the built-in scene when the trajectory's task is the built-in one;
    ``name_map`` and ``fps`` default to the ones recorded with the trajectory.
    """
    traj = trajectory if isinstance(trajectory, Trajectory) else load_trajectory(trajectory)
    name_map = traj.name_map if name_map is None else name_map
    with Replayer(
        resolve_model(model, traj.task), traj.schema, name_map, camera=camera, width=width, height=height
    ) as r:
        return r.write_video(traj.select(episode, env_index), path, fps or traj.fps)


# -------------------------------------------------------------------------------- wrappers


_COLUMNS = ("states", "actions", "rewards", "terminated", "truncated", "episode")


def _as_floats(action: Any) -> np.ndarray:
    try:
        return np.array(action, dtype=np.float64)
    except (TypeError, ValueError):  # Dict/Tuple actions: not recorded, the states are what replay needs
        return np.empty(0)


def _stack_actions(actions: list[np.ndarray | None]) -> np.ndarray:
    """Actions (T, ...) with NaN on reset rows; an empty column when they do not stack."""
    taken = [a for a in actions if a is not None]
    shape = taken[0].shape if taken else (0,)
    if any(a.shape != shape for a in taken):
        return np.zeros((len(actions), 0))
    return np.stack([np.full(shape, np.nan) if a is None else a for a in actions])


class _ReplayCore:
    """Recording and local rendering shared by the single-env and vector wrappers."""

    env: Any

    def _setup(
        self,
        model: str | Path | mujoco.MjModel | None,
        name_map: NameMapSource,
        camera: str | int | None,
        width: int,
        height: int,
        fps: float | None,
        record: bool,
        env_index: int,
    ) -> None:
        remote = self.env.unwrapped
        if not hasattr(remote, "with_state"):
            raise TypeError(
                f"{type(remote).__name__} cannot attach states to its replies: wrap a gym-remote env"
            )
        schema = getattr(remote, "state_schema", None)
        if schema is None:
            raise StateError(
                f"the remote env (task {getattr(remote, 'task', None)!r}) publishes no state schema, so "
                "there is nothing to replay; the server's env needs a MuJoCo model, or get_state() and "
                "a state_schema"
            )
        self.task: str | None = getattr(remote, "task", None)
        self.replayer = Replayer(
            resolve_model(model, self.task), schema, name_map, camera=camera, width=width, height=height
        )
        remote.with_state = True  # states ride on every reset/step reply: no extra round trip
        self._remote = remote
        self.record, self.env_index = record, env_index
        self.fps = float(fps or self.env.metadata.get("render_fps") or 30)
        self.metadata = {**self.env.metadata, "render_modes": ["rgb_array"], "render_fps": self.fps}
        self._latest: np.ndarray | None = None
        self._episode = -1
        self._columns: dict[str, list[Any]] = {k: [] for k in _COLUMNS}

    @property
    def render_mode(self) -> str:
        """Always ``rgb_array``: frames are made here, whatever the remote renders."""
        return "rgb_array"

    def _capture(self, action: Any, reward: Any, terminated: Any, truncated: Any) -> None:
        state = self._remote.last_state
        if state is None:
            raise StateError("the remote reply carried no state although with_state is on")
        state = check_state(self.replayer.schema, state).copy()  # wire arrays are read-only views
        self._latest = state
        if self.record:  # copies: callers may reuse their action buffer, the env its reward array
            row = (
                state,
                None if action is None else _as_floats(action),
                np.array(reward, dtype=np.float64),
                np.array(terminated, dtype=bool),
                np.array(truncated, dtype=bool),
                self._episode,
            )
            for column, value in zip(_COLUMNS, row, strict=True):
                self._columns[column].append(value)

    def _start_episode(self) -> None:
        self._episode += 1
        self._capture(None, 0.0, False, False)

    def _row(self, state: np.ndarray) -> np.ndarray:
        return state[self.env_index] if state.ndim == 2 else state

    def render(self) -> np.ndarray:
        """The latest remote state rendered locally (sub-env ``env_index`` when batched)."""
        if self._latest is None:
            raise gym.error.ResetNeeded("call reset() before render(): there is no state to draw yet")
        return self.replayer.render(self._row(self._latest))

    def trajectory(self) -> Trajectory:
        """Everything recorded so far (see :class:`Trajectory` for the row layout)."""
        cols = self._columns
        if not cols["states"]:
            raise ValueError("nothing recorded (record=False, or reset() never called)")
        states = np.stack(cols["states"])
        batch = states.shape[1:-1]  # () for one env, (N,) for a vector env
        return Trajectory(
            schema=self.replayer.schema,
            states=states,
            actions=_stack_actions(cols["actions"]),
            # Reset rows hold scalars: broadcast them to the batch shape of the step rows.
            rewards=np.stack([np.broadcast_to(r, batch) for r in cols["rewards"]]),
            terminated=np.stack([np.broadcast_to(f, batch) for f in cols["terminated"]]),
            truncated=np.stack([np.broadcast_to(f, batch) for f in cols["truncated"]]),
            episode=np.array(cols["episode"], dtype=np.int64),
            fps=self.fps,
            task=self.task,
            name_map=self.replayer.binding.name_map,
        )

    def save_video(self, path: str | Path, episode: int | None = None) -> int:
        """Render the recorded states (one episode, or all) into an MP4; return the frame count."""
        return self.replayer.write_video(self.trajectory().select(episode, self.env_index), path, self.fps)

    def save_trajectory(self, path: str | Path) -> Path:
        """Write the recording to one ``.npz`` (atomically); read it back with :func:`load_trajectory`."""
        return self.trajectory().save(path)

    def clear(self) -> None:
        """Forget the recording (a long run otherwise keeps every state in memory)."""
        for column in self._columns.values():
            column.clear()


class MujocoReplayWrapper(_ReplayCore, gym.Wrapper):
    """Record a remote env's states and render them locally with MuJoCo.

    ``render()`` works (``render_mode == "rgb_array"``) although the remote renders nothing, so
    Gymnasium's ``RecordVideo`` can wrap this wrapper. Args are those of :class:`Replayer`, plus:
    ``model=None`` (the built-in scene, for the built-in task only), ``fps`` (default: the remote
    ``render_fps``), ``record`` (keep every state for :meth:`save_video`/:meth:`save_trajectory`;
    False keeps only the latest) and ``env_index`` (the sub-env drawn when states are batched).
    """

    def __init__(
        self,
        env: gym.Env,
        model: str | Path | mujoco.MjModel | None = None,
        name_map: NameMapSource = None,
        camera: str | int | None = None,
        width: int = 640,
        height: int = 480,
        fps: float | None = None,
        record: bool = True,
        env_index: int = 0,
    ) -> None:
        gym.Wrapper.__init__(self, env)
        self._setup(model, name_map, camera, width, height, fps, record, env_index)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._start_episode()
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._capture(action, reward, terminated, truncated)
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self.replayer.close()
        super().close()


class MujocoReplayVectorWrapper(_ReplayCore, gym.vector.VectorWrapper):
    """:class:`MujocoReplayWrapper` for a vector env whose ``unwrapped`` has ``with_state``,
    ``state_schema`` and a batched ``last_state`` (N, D). All sub-envs are recorded; ``render()``
    returns the frame of sub-env ``env_index`` (one array, not a tuple)."""

    def __init__(
        self,
        env: gym.vector.VectorEnv,
        model: str | Path | mujoco.MjModel | None = None,
        name_map: NameMapSource = None,
        camera: str | int | None = None,
        width: int = 640,
        height: int = 480,
        fps: float | None = None,
        record: bool = True,
        env_index: int = 0,
    ) -> None:
        gym.vector.VectorWrapper.__init__(self, env)
        if not 0 <= env_index < env.num_envs:
            raise ValueError(f"env_index {env_index} out of range for {env.num_envs} sub-envs")
        self._setup(model, name_map, camera, width, height, fps, record, env_index)

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._start_episode()
        return obs, info

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        self._capture(actions, rewards, terminated, truncated)
        return obs, rewards, terminated, truncated, info

    def close(self, **kwargs: Any) -> None:
        self.replayer.close()
        super().close(**kwargs)


# ---------------------------------------------------------------------------- entry points


def run_demo(
    out_dir: str | Path = "demo",
    episodes: int = 3,
    seed: int = 0,
    host: str | None = None,
    port: int | None = None,
    width: int = 640,
    height: int = 480,
    camera: str | int | None = None,
    max_steps: int = 250,
) -> dict[str, Any]:
    """The whole remote-replay loop: a remote stack-cube env (a local server when ``host`` is None),
    the scripted expert acting on observations only, local recording and rendering.

    Writes ``stack_cube.mp4`` and ``stack_cube.npz`` into ``out_dir``; returns success rate, mean
    per-step latency (the wrapped ``step`` call: round trip plus state, excluding the expert),
    frames rendered and the paths.
    """
    _mujoco()
    from gym_remote.env import DEFAULT_PORT, RemoteEnv
    from gym_remote.tasks.expert import StackCubeExpert

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remote = RemoteEnv(host, port or DEFAULT_PORT)
    try:
        env = MujocoReplayWrapper(remote, camera=camera, width=width, height=height)
    except BaseException:
        remote.close()
        raise
    expert = StackCubeExpert()
    latencies: list[float] = []
    successes: list[bool] = []
    try:
        for episode in range(episodes):
            obs, info = env.reset(seed=seed + episode)
            expert.reset()
            for _ in range(max_steps):
                action = expert.act(obs)
                start = time.perf_counter()
                obs, _, terminated, truncated, info = env.step(action)
                latencies.append(time.perf_counter() - start)
                if terminated or truncated:
                    break
            successes.append(bool(info.get("success", False)))
            log.info("episode %d (seed %d): success=%s", episode, seed + episode, successes[-1])
        video, trajectory = out / "stack_cube.mp4", out / "stack_cube.npz"
        trajectory = env.save_trajectory(trajectory)
        frames = env.save_video(video)
    finally:
        env.close()
    return {
        "episodes": episodes,
        "successes": int(sum(successes)),
        "success_rate": float(np.mean(successes)) if successes else 0.0,
        "steps": len(latencies),
        "mean_step_latency_ms": 1e3 * float(np.mean(latencies)) if latencies else 0.0,
        "frames": frames,
        "video": str(video),
        "trajectory": str(trajectory),
    }


def render_benchmark(
    width: int = 320, height: int = 240, frames: int = 100, camera: str | int | None = None
) -> float:
    """Local replay rendering speed in frames/s (pose from a state + render), built-in scene.

    The arm sweeps joint 1 so every frame needs fresh kinematics, as in a real replay.
    """
    _mujoco()
    from gym_remote.state import mujoco_get_state
    from gym_remote.tasks.stack_cube import StackCubeEnv

    env = StackCubeEnv()
    env.reset(seed=0)
    schema, state = mujoco_get_state(env.model, env.data)
    env.close()
    joint1 = schema.offsets()["franka"] + 13  # root pose (7) + root velocity (6), then joint positions
    with Replayer(env.model, schema, camera=camera, width=width, height=height) as r:
        for _ in range(3):  # warm-up: GL context, shaders, texture upload
            r.render(state)
        states = np.repeat(state[None], frames, axis=0)
        states[:, joint1] += np.linspace(-1.0, 1.0, frames)
        start = time.perf_counter()
        for s in states:
            r.render(s)
        elapsed = time.perf_counter() - start
    fps = frames / elapsed
    log.info("rendered %d frames at %dx%d: %.1f fps", frames, width, height, fps)
    return fps
