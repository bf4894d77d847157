"""``gym-remote demo`` and ``gym-remote replay``: remote states rendered in a local MuJoCo model."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from gym_remote.cli.args import _host_port


def cmd_demo(args: argparse.Namespace) -> int:
    from gym_remote_apps.demo import run_demo

    # Progress as it happens (episodes, rendering), also when stderr is no terminal and tqdm is quiet.
    for name in ("gym_remote.replay", "gym_remote.local", "gym_remote_apps"):
        logging.getLogger(name).setLevel(min(logging.INFO, logging.getLogger(name).getEffectiveLevel()))
    if args.backend == "isaaclab":
        return _demo_isaaclab(args)
    if args.overrides:
        raise SystemExit("--override is Isaac Lab's Hydra override syntax: use it with --backend isaaclab")
    where = "a local server" if args.target is None else f"{args.target[0]}:{args.target[1]}"
    print(f"gym-remote demo: stack-cube on {where}, {args.episodes} episodes, states replayed locally", flush=True)
    host, port = args.target if args.target else (None, None)
    r = run_demo(args.output, args.episodes, args.seed, host, port, args.width, args.height, args.camera)
    print(f"success rate      {r['success_rate']:.0%} ({r['successes']}/{r['episodes']} episodes stacked)")
    print(f"per-step latency  {r['mean_step_latency_ms']:.2f} ms (round trip with the state attached)")
    print(f"frames rendered   {r['frames']} ({r['steps']} steps)")
    print(f"video             {r['video']}")
    print(f"trajectory        {r['trajectory']}")
    return 0


def _demo_isaaclab(args: argparse.Namespace) -> int:
    from gym_remote_apps.isaaclab_demo import run_isaaclab_demo

    host, port = args.target if args.target else (None, None)
    where = "a local Isaac Lab 3.0 server (its venv)" if host is None else f"{host}:{port}"
    task = args.task or "IsaacContrib-Stack-Cube-Franka"
    physics = next((o.split("=", 1)[1] for o in reversed(args.overrides or []) if o.startswith("physics=")), None)
    on = f" ({physics} physics)" if physics else ""
    print(f"gym-remote demo: {task}{on} on {where}, {args.episodes} episodes", flush=True)
    r = run_isaaclab_demo(
        args.output,
        args.episodes,
        args.seed,
        host,
        port,
        args.task,
        args.width,
        args.height,
        args.camera or "oblique",
        overrides=args.overrides or (),
    )
    print(f"physics            {r['physics']}")
    print(f"stacked (stack_1)  {r['stacked']}/{r['episodes']} episodes, first at steps {r['stack_steps']}")
    print(f"cube_2 - cube_1    {r['offsets']} m at the end of each episode")
    print(f"server + env       {r['startup_s']:.1f} s; episodes {', '.join(f'{t:.1f}' for t in r['episode_s'])} s")
    print(f"per-step latency   {r['step_ms']:.1f} ms (Isaac Lab step and round trip, state attached)")
    print(f"frames rendered    {r['frames']} in {r['render_s']:.1f} s ({sum(r['steps'])} steps)")
    for key in ("mp4", "npz", "xml", "png"):
        print(f"{key:<18} {r[key]}")
    return 0


def _frame_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--width", type=int, default=640, help="video width (default 640)")
    p.add_argument("--height", type=int, default=480, help="video height (default 480)")
    p.add_argument("--camera", help="camera name in the model (default: the model's first)")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole remote-replay loop",
        description="Start (or connect to) a stack-cube server, run the scripted expert, record the states it "
        "sends, replay them in a local MuJoCo model and write stack_cube.mp4 and stack_cube.npz.",
    )
    p.add_argument("target", nargs="?", type=_host_port, metavar="HOST:PORT", help="server (default: start one)")
    p.add_argument("-o", "--output", type=Path, default=Path("demo-out"), help="output folder (default demo-out)")
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--backend",
        choices=["isaaclab"],
        help="isaaclab: the real Isaac Lab 3.0 stack task, served from its venv (default: the built-in MuJoCo task)",
    )
    p.add_argument("--task", help="with --backend isaaclab: IsaacContrib-Stack-Cube-Franka (the default)")
    p.add_argument(
        "--override",
        dest="overrides",
        action="append",
        metavar="KEY=VALUE",
        help="with --backend isaaclab: an Isaac Lab Hydra override, repeatable; physics=ovphysx runs the task on "
        "PhysX (kit-less). Given to the local server, or sent with the session to HOST:PORT",
    )
    _frame_options(p)
    p.set_defaults(func=cmd_demo)


def cmd_replay(args: argparse.Namespace) -> int:
    from gym_remote.replay import BUILTIN_TASK, load_trajectory, replay

    if args.model is None:  # the built-in scene fits only the built-in task: say so in this command's terms
        task = load_trajectory(args.trajectory).task
        if task is None or task.split(":")[-1] != BUILTIN_TASK:
            scene = args.trajectory.with_suffix(".xml")
            hint = (
                f"; `gym-remote demo` wrote its scene beside the trajectory: --model {scene}" if scene.is_file() else ""
            )
            raise SystemExit(
                f"gym-remote replay: {args.trajectory} was recorded from {task!r}, not the built-in {BUILTIN_TASK!r}: "
                f"give the MJCF of that scene with --model SCENE.xml (and --map NAME when its names differ){hint}"
            )
    frames = replay(
        args.trajectory,
        args.output,
        model=args.model,
        name_map=args.map,
        camera=args.camera,
        width=args.width,
        height=args.height,
        fps=args.fps,
        episode=args.episode,
        env_index=args.env_index,
    )
    print(f"wrote {args.output}: {frames} frames")
    return 0


def _add_replay(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="render a saved trajectory to video",
        description="Replay the states of a trajectory file (from MujocoReplayWrapper.save_trajectory or "
        "gym-remote demo) in a local MuJoCo model and write an MP4.",
    )
    p.add_argument("trajectory", type=Path, metavar="TRAJ.npz")
    p.add_argument("-o", "--output", type=Path, required=True, help="the MP4 to write")
    p.add_argument("--model", help="MJCF file (default: the built-in model for the built-in task)")
    p.add_argument("--map", help="name map: a YAML path or a name in configs/maps/")
    _frame_options(p)
    p.add_argument("--fps", type=float, help="default: the recorded fps")
    p.add_argument("--episode", type=int, help="only this episode")
    p.add_argument("--env-index", type=int, default=0, help="sub-env of a batched trajectory")
    p.set_defaults(func=cmd_replay)
