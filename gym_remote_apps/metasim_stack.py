"""The original remote example's loop on real RoboVerse MetaSim: stack_cube driven from the client.

The client sees MetaSim's ``stack_cube`` through the ``roboverse`` backend: the observation is the
flat scene state (57 float32: franka root 13, its 9 joint positions then 9 velocities sorted by name
``panda_finger_joint1, panda_finger_joint2, panda_joint1..7``; cube root 13; base root 13) and the
action is the 9 joint position targets in that same order (radians; finger slides in metres).

:class:`MetaSimStackExpert` re-uses the built-in task's scripted expert (its Franka kinematics and IK
run here, on the client): it rearranges MetaSim's state into the expert's observation layout,
computes the finger-tip centre by forward kinematics of the same Franka, and turns the expert's
normalised 8-dim action back into MetaSim's 9 joint targets.

:func:`run_episodes` runs it on a MetaSim server with the state attached to every step reply
(``with_state=True``: one round trip per recorded step) and replays those states locally in the
built-in MuJoCo Franka through ``configs/maps/roboverse_franka.yaml``. Success is MetaSim's own: its
checker reports ``terminated`` once the cube's centre is within 2 cm of the point 4 cm above where the
base started, which happens while the hand still lowers the cube. So a stricter figure is counted
too: MetaSim's ``BaseTaskEnv`` does not reset itself, so the expert goes on for ``settle`` steps after
the checker fired (release, retreat; outside Gymnasium's contract, on purpose) and the cube must then
rest on the base (:func:`resting_on_base`).

Command: ``python -m gym_remote_apps.metasim_stack --episodes 10`` (starts a server in the MetaSim
venv built by ``scripts/build_metasim_venv.sh``; ``--video out.mp4`` also writes the first episode).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from gym_remote.tasks.expert import StackCubeExpert
from gym_remote.tasks.stack_cube import ARM_JOINTS, ASSET_PATH, FINGER_JOINTS, FINGER_OPEN, OBS_DIM, OBS_SLICES

__all__ = ["METASIM_JOINTS", "MetaSimStackExpert", "default_venv", "run_episodes", "start_server"]

log = logging.getLogger(__name__)

#: MetaSim's joint columns (sorted by name) and the flat-state offsets of its stack_cube scene.
METASIM_JOINTS: tuple[str, ...] = tuple(sorted(ARM_JOINTS + FINGER_JOINTS))
_QPOS = slice(13, 22)
_QVEL = slice(22, 31)
_CUBE = slice(31, 38)  # position (3) and w-first quaternion (4)
_BASE = slice(44, 51)
#: Half the edge of MetaSim's base: a 4 cm cube (the built-in model's base is 2 cm thick).
METASIM_BASE_HALF = 0.02


class MetaSimStackExpert:
    """The built-in scripted expert acting on MetaSim's stack_cube state (see the module docstring).

    Usage: ``expert.reset()`` at each episode start, then ``action = expert.act(obs)`` with ``obs``
    the (57,) state observation; ``action`` is (9,) float32 joint targets, MetaSim's column order.
    Keywords go to :class:`~gym_remote.tasks.expert.StackCubeExpert`.
    """

    def __init__(self, **expert_kwargs: Any) -> None:
        self.expert = StackCubeExpert(base_half_height=METASIM_BASE_HALF, **expert_kwargs)
        model = self.expert.model
        ranges = np.array([model.joint(j).range for j in ARM_JOINTS])
        self._low, self._high = ranges[:, 0], ranges[:, 1]
        # column of MetaSim's sorted joints for each of the expert's joints (arm 1..7, fingers 1..2)
        self._take = np.array([METASIM_JOINTS.index(j) for j in ARM_JOINTS + FINGER_JOINTS])

    def reset(self) -> None:
        """Forget the previous episode."""
        self.expert.reset()

    def expert_obs(self, obs: np.ndarray) -> np.ndarray:
        """MetaSim's (57,) state as the built-in task's (35,) observation (``OBS_SLICES``)."""
        obs = np.asarray(obs, dtype=np.float64)
        out = np.zeros(OBS_DIM)
        qpos = obs[_QPOS][self._take]
        out[OBS_SLICES["qpos"]] = qpos
        out[OBS_SLICES["qvel"]] = obs[_QVEL][self._take]
        out[OBS_SLICES["cube_pos"]], out[OBS_SLICES["cube_quat"]] = obs[_CUBE][:3], obs[_CUBE][3:]
        out[OBS_SLICES["base_pos"]], out[OBS_SLICES["base_quat"]] = obs[_BASE][:3], obs[_BASE][3:]
        out[OBS_SLICES["tcp_pos"]] = self.expert.tcp_position(qpos[:7])
        return out

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Joint targets (9,) float32 in MetaSim's order for the (57,) state observation ``obs``."""
        a = self.expert.act(self.expert_obs(obs)).astype(np.float64)
        arm = self._low + (np.clip(a[:7], -1.0, 1.0) + 1.0) * 0.5 * (self._high - self._low)
        finger = (np.clip(a[7], -1.0, 1.0) + 1.0) * 0.5 * FINGER_OPEN
        targets = np.empty(len(METASIM_JOINTS))
        targets[self._take] = np.r_[arm, finger, finger]
        return targets.astype(np.float32)


def resting_on_base(obs: np.ndarray) -> bool:
    """Whether the (57,) state shows the cube at rest on top of the base with the gripper open:
    centres within 1 cm horizontally and 4 cm +- 5 mm apart vertically, cube slower than 5 cm/s,
    both fingers more than 3 cm open."""
    obs = np.asarray(obs, dtype=np.float64)
    gap = obs[_CUBE][:3] - obs[_BASE][:3]
    speed = np.linalg.norm(obs[_CUBE.start + 7 : _CUBE.start + 10])
    fingers = obs[_QPOS][[METASIM_JOINTS.index(j) for j in FINGER_JOINTS]]
    return bool(
        np.linalg.norm(gap[:2]) < 0.01
        and abs(gap[2] - 2 * METASIM_BASE_HALF) < 0.005
        and speed < 0.05
        and (fingers > 0.03).all()
    )


def default_venv() -> Path:
    """The MetaSim venv of ``scripts/build_metasim_venv.sh`` (``$GYM_REMOTE_VENVS`` or the user cache)."""
    from gym_remote_apps.venvs import SERVER_VENVS, venv_root

    return venv_root() / SERVER_VENVS["metasim"][0]


def start_server(venv: Path | None = None, startup_timeout: float = 240.0) -> Any:
    """A ``LocalServer`` serving MetaSim's stack_cube on its MuJoCo handler from the MetaSim venv.

    Raises:
        FileNotFoundError: the venv or its data folder is missing (the message says how to build it).
    """
    from gym_remote.local import LocalServer

    venv = venv or default_venv()
    python, data = venv / "bin" / "python", venv / "data"
    if not python.exists() or not (data / "roboverse_data").is_dir():
        raise FileNotFoundError(f"no MetaSim venv at {venv}: build it with 'bash scripts/build_metasim_venv.sh'")
    settings = {"simulator": "mujoco", "data_dir": str(data)}
    return LocalServer("roboverse", "stack_cube", settings, python=str(python), startup_timeout=startup_timeout)


def run_episodes(
    host: str,
    port: int,
    episodes: int,
    seed: int = 0,
    *,
    video: str | Path | None = None,
    width: int = 320,
    height: int = 240,
    camera: str = "front",
    settle: int = 25,
    time_get_state: bool = False,
) -> dict[str, Any]:
    """Run the expert for ``episodes`` episodes (seeds ``seed, seed + 1, ...``) against a MetaSim server.

    Every step reply carries MetaSim's state; the states are recorded by a ``MujocoReplayWrapper``
    around the remote env, posing the built-in Franka model through the ``roboverse_franka`` name map.

    Returns:
        ``episodes``, ``successes`` (MetaSim's checker), ``success_rate``, ``rested`` (episodes whose
        cube rests on the base ``settle`` steps later, gripper open), ``steps`` (per episode, to the
        checker's success or the time limit), ``step_ms`` (median client wall time of one
        ``step`` with its state: the round trip, MetaSim's step, recording), ``policy_ms`` (median time
        of one ``expert.act``), ``get_state_ms`` (with ``time_get_state``: the median of a separate
        ``get_state()`` round trip after each step, what a second round trip per recorded step would
        add; else None), ``trajectory`` (the recording, a :class:`gym_remote.replay.Trajectory`),
        ``frames`` (written to ``video``, else 0).
    """
    from gym_remote.client_session import ConnectOptions
    from gym_remote.env import RemoteEnv
    from gym_remote.replay import MujocoReplayWrapper

    remote = RemoteEnv(host, port, task="stack_cube", options=ConnectOptions(timeout=60.0))
    try:
        env = MujocoReplayWrapper(
            remote, model=ASSET_PATH, name_map="roboverse_franka", camera=camera, width=width, height=height
        )
    except BaseException:
        remote.close()
        raise
    expert = MetaSimStackExpert()
    successes: list[bool] = []
    rested: list[bool] = []
    steps: list[int] = []
    step_s: list[float] = []
    policy_s: list[float] = []
    get_state_s: list[float] = []
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            expert.reset()
            terminated = truncated = False
            count = 0
            while not (terminated or truncated):
                t0 = time.perf_counter()
                action = expert.act(obs)
                t1 = time.perf_counter()
                obs, _, terminated, truncated, _ = env.step(action)
                t2 = time.perf_counter()
                policy_s.append(t1 - t0)
                step_s.append(t2 - t1)
                if time_get_state:
                    remote.get_state()
                    get_state_s.append(time.perf_counter() - t2)
                count += 1
            successes.append(bool(terminated))
            steps.append(count)
            if terminated:
                for _ in range(settle):
                    obs, *_ = env.step(expert.act(obs))
            rested.append(bool(terminated) and resting_on_base(obs))
            log.info(
                "episode %d (seed %d): stacked=%s after %d steps, resting after release=%s",
                episode,
                seed + episode,
                terminated,
                count,
                rested[-1],
            )
        frames = env.save_video(video, episode=0) if video else 0
        trajectory = env.trajectory()
    finally:
        env.close()
    return {
        "episodes": episodes,
        "successes": int(sum(successes)),
        "success_rate": float(np.mean(successes)) if episodes else 0.0,
        "rested": int(sum(rested)),
        "steps": steps,
        "step_ms": 1e3 * float(np.median(step_s)) if step_s else None,
        "policy_ms": 1e3 * float(np.median(policy_s)) if policy_s else None,
        "get_state_ms": 1e3 * float(np.median(get_state_s)) if get_state_s else None,
        "trajectory": trajectory,
        "frames": frames,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gym_remote_apps.metasim_stack",
        description="Stack cubes on real RoboVerse MetaSim (MuJoCo handler) from the client, with states "
        "attached to each step reply and replayed locally. Starts a server in the MetaSim venv unless "
        "--connect is given.",
    )
    parser.add_argument("--episodes", type=int, default=10, help="episodes (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (default 0)")
    parser.add_argument("--connect", metavar="HOST:PORT", help="a running roboverse server instead of a local one")
    parser.add_argument("--venv", type=Path, help=f"the MetaSim venv (default {default_venv()})")
    parser.add_argument("--video", type=Path, help="write the first episode, replayed locally, to this MP4")
    parser.add_argument("--settle", type=int, default=25, help="steps after MetaSim's success before the rest check")
    parser.add_argument(
        "--time-get-state", action="store_true", help="also time a separate get_state() round trip after each step"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every episode")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)

    server = None
    if args.connect:
        host, _, port = args.connect.rpartition(":")
    else:
        server = start_server(args.venv)
        host, port = server.local_host, str(server.local_port)
    try:
        result = run_episodes(
            host,
            int(port),
            args.episodes,
            args.seed,
            video=args.video,
            settle=args.settle,
            time_get_state=args.time_get_state,
        )
    finally:
        if server is not None:
            server.close()
    print(f"stacked (MetaSim's checker): {result['successes']}/{result['episodes']} ({result['success_rate']:.0%})")
    print(f"cube resting on the base after release: {result['rested']}/{result['episodes']}")
    print(f"steps per episode: {result['steps']}")
    print(f"median step with the state attached (one round trip): {result['step_ms']:.2f} ms")
    print(f"median expert action on the client: {result['policy_ms']:.2f} ms")
    if result["get_state_ms"] is not None:
        print(
            f"median separate get_state() round trip (what a second round trip adds): {result['get_state_ms']:.2f} ms"
        )
    if args.video:
        print(f"video: {args.video} ({result['frames']} frames)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
