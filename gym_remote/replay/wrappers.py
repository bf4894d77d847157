"""Gymnasium wrappers that record a remote env's states and render them locally with MuJoCo.

The states ride on the remote env's own reset/step replies (``with_state``), so recording costs no
extra round trip. Both wrappers take one :class:`ReplayOptions` (or its fields as keywords); each
keeps the recording as the columns of a :class:`~gym_remote.replay.trajectory.Trajectory`.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from gym_remote.errors import StateError
from gym_remote.replay.replayer import NameMapSource, Replayer, resolve_model
from gym_remote.replay.trajectory import Trajectory
from gym_remote.state import check_state

if TYPE_CHECKING:
    import mujoco

__all__ = ["MujocoReplayVectorWrapper", "MujocoReplayWrapper", "ReplayOptions", "VideoError"]

log = logging.getLogger(__name__)

#: The largest frame side accepted (MuJoCo's offscreen buffer is enlarged to the frame size).
MAX_FRAME_SIDE = 8192


class VideoError(RuntimeError):
    """Writing a video failed; the recording was kept on disk (:attr:`trajectory_path`), so no run is lost.

    Render it again later with ``gym-remote replay TRAJ.npz -o out.mp4`` (or :func:`replay`).
    """

    def __init__(self, message: str, trajectory_path: Path | None) -> None:
        super().__init__(message)
        self.trajectory_path = trajectory_path


@dataclass(frozen=True)
class ReplayOptions:
    """How a replay wrapper draws and records (the fields of :class:`~gym_remote.replay.Replayer`, plus
    recording). Example: ``MujocoReplayWrapper(env, ReplayOptions(width=320, height=240))``."""

    #: MJCF path, XML string or ``mujoco.MjModel`` of the remote scene; None: the built-in scene,
    #: allowed only for the built-in task.
    model: str | Path | mujoco.MjModel | None = None
    #: remote-to-local names (dict, YAML path, bare name in ``configs/maps/``, or a ``NameMap``).
    name_map: NameMapSource = None
    #: camera name or id; None: the model's first camera (else the free camera).
    camera: str | int | None = None
    #: frame width and height in pixels (even, for libx264).
    width: int = 640
    height: int = 480
    #: video frames per second; None: the remote ``render_fps`` (else 30).
    fps: float | None = None
    #: keep every state for ``save_video``/``save_trajectory``; False keeps only the latest.
    record: bool = True
    #: the sub-env drawn when states are batched.
    env_index: int = 0

    def __post_init__(self) -> None:
        """Check every field now, so that no recording is lost to a bad value at save time.

        Raises:
            TypeError: a field of the wrong type (named).
            ValueError: a field out of range (named): e.g. an odd width or height, which libx264
                (``save_video``) cannot encode.
        """
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an int (pixels), got {type(value).__name__}")
            if not 2 <= value <= MAX_FRAME_SIDE or value % 2:
                near = f"; use {value - 1} or {value + 1}" if value % 2 and 2 < value < MAX_FRAME_SIDE else ""
                raise ValueError(
                    f"{name}={value}: frames must be even-sized, from 2 to {MAX_FRAME_SIDE} pixels, since libx264 "
                    f"(save_video) encodes only even sizes{near}"
                )
        if self.fps is not None and (
            isinstance(self.fps, bool) or not isinstance(self.fps, (int, float, np.number)) or not 0 < self.fps < 1e4
        ):
            raise ValueError(f"fps must be a positive number of frames per second or None, got {self.fps!r}")
        if not isinstance(self.record, bool):
            raise TypeError(f"record must be True or False, got {self.record!r}")
        if isinstance(self.env_index, bool) or not isinstance(self.env_index, (int, np.integer)) or self.env_index < 0:
            raise ValueError(f"env_index must be a sub-env index (an int >= 0), got {self.env_index!r}")
        if self.camera is not None and (isinstance(self.camera, bool) or not isinstance(self.camera, (str, int))):
            raise TypeError(f"camera must be a camera name, an id or None, got {type(self.camera).__name__}")

    @classmethod
    def of(cls, options: ReplayOptions | None, fields: dict[str, Any]) -> ReplayOptions:
        """``options`` (default: all defaults) with ``fields`` replaced.

        Raises:
            TypeError: ``options`` is not a ReplayOptions, a field name is unknown, or a field has
                the wrong type.
            ValueError: a field out of range (see :meth:`__post_init__`).
        """
        if options is not None and not isinstance(options, ReplayOptions):
            raise TypeError(
                f"the second argument is a ReplayOptions, not {type(options).__name__}: pass the model as model=..."
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise TypeError(f"unknown replay options {unknown}; known: {sorted(known)}")
        return dataclasses.replace(options or cls(), **fields)


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

    def _setup(self, options: ReplayOptions) -> None:
        remote = self.env.unwrapped
        if not hasattr(remote, "with_state"):
            raise TypeError(f"{type(remote).__name__} cannot attach states to its replies: wrap a gym-remote env")
        schema = getattr(remote, "state_schema", None)
        if schema is None:
            raise StateError(
                f"the remote env (task {getattr(remote, 'task', None)!r}) publishes no state schema, so "
                "there is nothing to replay; the server's env needs a MuJoCo model, or get_state() and "
                "a state_schema"
            )
        self.task: str | None = getattr(remote, "task", None)
        o = self.options = options
        self.replayer = Replayer(
            resolve_model(o.model, self.task), schema, o.name_map, camera=o.camera, width=o.width, height=o.height
        )
        remote.with_state = True  # states ride on every reset/step reply: no extra round trip
        self._remote = remote
        self.record, self.env_index = o.record, o.env_index
        self.fps = float(o.fps or self.env.metadata.get("render_fps") or 30)
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
        """Render the recorded states (one episode, or all) into an MP4; return the frame count.

        Raises:
            ValueError: nothing recorded, or no such episode (nothing is written).
            VideoError: rendering or encoding failed; the whole recording was saved first as a
                trajectory beside ``path`` (else in the temp folder), named in the message and in
                :attr:`VideoError.trajectory_path`, so the run can be rendered again later.
        """
        trajectory = self.trajectory()
        states = trajectory.select(episode, self.env_index)
        try:
            return self.replayer.write_video(states, path, self.fps)
        except Exception as exc:
            kept = _keep(trajectory, Path(path))
            where = (
                f"the recording is kept in {kept}: render it with `gym-remote replay {kept} -o {path}`"
                if kept is not None
                else "keeping the recording failed too: call save_trajectory() with a writable path"
            )
            raise VideoError(f"writing the video {path} failed ({type(exc).__name__}: {exc}); {where}", kept) from exc

    def save_trajectory(self, path: str | Path) -> Path:
        """Write the recording to one ``.npz`` (atomically); read it back with :func:`load_trajectory`."""
        return self.trajectory().save(path)

    def clear(self) -> None:
        """Forget the recording (a long run otherwise keeps every state in memory)."""
        for column in self._columns.values():
            column.clear()


def _keep(trajectory: Trajectory, video: Path) -> Path | None:
    """Save ``trajectory`` beside ``video`` under a name no file has (else in the temp folder).

    The name is claimed by creating it exclusively (``O_EXCL``), so two processes keeping their
    recordings at once never write over each other's; the atomic save then replaces the empty claim.
    """
    for folder in (video.parent, Path(tempfile.gettempdir())):
        for n in range(1000):
            candidate = folder / (f"{video.stem}.npz" if n == 0 else f"{video.stem}-{n}.npz")
            try:
                candidate.open("xb").close()
            except FileExistsError:
                continue
            except OSError as exc:
                log.warning("could not keep the recording in %s: %s", folder, exc)
                break
            try:
                return trajectory.save(candidate)
            except OSError as exc:
                log.warning("could not keep the recording in %s: %s", candidate, exc)
                candidate.unlink(missing_ok=True)
                break
    return None


class MujocoReplayWrapper(_ReplayCore, gym.Wrapper):
    """Record a remote env's states and render them locally with MuJoCo.

    ``render()`` works (``render_mode == "rgb_array"``) although the remote renders nothing, so
    Gymnasium's ``RecordVideo`` can wrap this wrapper.

    Args:
        env: a gym-remote env (``env.unwrapped`` has ``with_state`` and ``state_schema``).
        options: a :class:`ReplayOptions`; its fields may also be given as keywords
            (``MujocoReplayWrapper(env, model="scene.xml", name_map="isaaclab_franka")``), which
            override the ones in ``options``.

    Every option is checked here, before anything is recorded (an odd ``width`` or ``height``,
    which libx264 cannot encode, is refused now rather than at :meth:`save_video`).

    Raises:
        TypeError: ``env`` is not a gym-remote env, an unknown keyword, or an option of the wrong type.
        ValueError: an option out of range (an odd frame size, a camera the model lacks...).
        StateError: the remote publishes no state schema, or the name map names what the model lacks.

    Example:
        The built-in stack-cube task on a local server; its states are replayed in the built-in model:

        >>> import tempfile, pathlib
        >>> import gymnasium as gym
        >>> import gym_remote
        >>> from gym_remote.replay import MujocoReplayWrapper
        >>> env = MujocoReplayWrapper(gym.make("Remote-IsaacSim-v0", with_state=True), width=160, height=120)
        >>> _ = env.reset(seed=0)
        >>> for _ in range(4):
        ...     _ = env.step(env.action_space.sample())
        >>> env.render().shape
        (120, 160, 3)
        >>> video = pathlib.Path(tempfile.mkdtemp()) / "run.mp4"
        >>> env.save_video(video), video.stat().st_size > 0
        (5, True)
        >>> env.close()
    """

    def __init__(self, env: gym.Env, options: ReplayOptions | None = None, **fields: Any) -> None:
        gym.Wrapper.__init__(self, env)
        self._setup(ReplayOptions.of(options, fields))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
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
    returns the frame of sub-env ``options.env_index`` (one array, not a tuple). Args as for
    :class:`MujocoReplayWrapper`.

    Raises:
        ValueError: ``env_index`` is not a sub-env of ``env``.
    """

    def __init__(self, env: gym.vector.VectorEnv, options: ReplayOptions | None = None, **fields: Any) -> None:
        gym.vector.VectorWrapper.__init__(self, env)
        opts = ReplayOptions.of(options, fields)
        if not 0 <= opts.env_index < env.num_envs:
            raise ValueError(f"env_index {opts.env_index} out of range for {env.num_envs} sub-envs")
        self._setup(opts)

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
