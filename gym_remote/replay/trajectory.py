"""A recorded run as data (:class:`Trajectory`), its ``.npz`` file, and offline :func:`replay`.

Rows are recorded states (T, D) or (T, N, D) from a vector env; the file holds them with the
schema, actions, rewards, flags, episode ids, fps, task and name map, and is read without pickle,
so a trajectory from elsewhere is safe to open.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gym_remote.replay.replayer import NameMapSource, Replayer, name_map_to_dict, resolve_model, sibling_temp
from gym_remote.state import NameMap, StateSchema

if TYPE_CHECKING:
    import mujoco

__all__ = ["Trajectory", "load_trajectory", "replay"]

log = logging.getLogger(__name__)

_TRAJECTORY_VERSION = 1


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
        tmp = sibling_temp(path)
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
                    name_map=np.array(json.dumps(name_map_to_dict(self.name_map))),
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
