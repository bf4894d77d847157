"""A Ray driver run by tests/test_ray_pool.py in the Ray venv (scripts/build_ray_venv.sh).

A local Ray cluster (2 CPUs, a custom ``sim_gpu`` resource standing in for GPUs), a pool of 2
CartPole servers, then one of:

- ``train``: PPO in RLlib with 2 EnvRunners x 4 sub-envs in vector-entry-point mode, each runner on
  its own pool server; checks made here (sessions per server while training and after
  ``algo.stop()``, the key files gone, strangers refused, the actors and servers gone after
  ``pool.close()``) are printed as one JSON line for the test to assert on.
- ``train_sync``: the same PPO in RLlib's default ``sync`` mode (Gymnasium's ``SyncVectorEnv`` of
  ``RemoteEnv`` sub-envs, one session per sub-env), with no ``PoolEnvRunner``: the runner's index
  comes from the ``EnvContext`` RLlib passes in this mode.
- ``fanout``: a ``RemoteVectorEnv`` over the pool; then one actor is killed and the next step's error
  must name that server's Ray node.
- ``make_vec``: ``gym.make_vec(..., launch="ray", servers=2)`` places its own 2 servers (no pool
  object in sight), steps, and closes them with the env.
- ``isaaclab``: a pool of 2 real Isaac Lab 3.0 servers (Cartpole on PhysX), each started by its actor
  with the Isaac Lab venv's Python, and one ``RemoteVectorEnv`` over both.
- ``hang``: prints the pool's PIDs and waits to be killed (the test kills this driver with SIGKILL
  and checks that nothing it started outlives it).

The test gives every process it starts an environment variable (``GYM_REMOTE_TEST_TAG``) that all
their children inherit, so it can look for leftovers in /proc from the outside.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time
from typing import Any

# A single-machine Ray on 127.0.0.1 only (Ray otherwise registers the node under its first
# interface's address and talks to itself there): read when ray is imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray

from gym_remote.client import Connection
from gym_remote.client_session import ConnectOptions
from gym_remote.errors import RemoteEnvError, RemoteTimeoutError
from gym_remote.launch.ray_pool import RayServerPool, start_pool
from gym_remote.protocol import Kind

TASK = "CartPole-v1"


def emit(**fields: Any) -> None:
    print("RESULT " + json.dumps(fields), flush=True)


def sessions(pool: RayServerPool) -> list[int]:
    """Open sessions on each pool server, by PING with the pool's keys."""
    counts = []
    for h in pool:
        conn = Connection(h.local_host, h.local_port, timeout=5, retries=0, **pool.client_options())
        try:
            counts.append(int(conn.request(Kind.PING)["sessions"]))
        finally:
            conn.close()
    return counts


def refused(pool: RayServerPool, **keys: Any) -> bool:
    """Whether a client with other keys gets nothing from the first server (CURVE drops it: a timeout)."""
    h = pool.handles[0]
    conn = Connection(h.local_host, h.local_port, timeout=1.5, retries=0, **keys)
    try:
        conn.request(Kind.PING)
    except RemoteTimeoutError:
        return True
    finally:
        conn.close()
    return False


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "State:\tZ" in f.read()
    except OSError:
        return True


def wait_gone(pids: list[int], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(gone(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def train(pool: RayServerPool, iterations: int, vectorize: str = "vector_entry_point") -> None:
    import zmq
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    import gym_remote.rllib as grl

    key_dirs = sorted(_key_dirs() - KEY_DIRS_BEFORE)  # only this run's: a crashed earlier run may have left some
    stranger_public, stranger_secret = zmq.curve_keypair()
    strangers = {
        "no_keys": refused(pool),
        "foreign_client_key": refused(
            pool,
            curve_server_key=pool.keys.server_public,
            curve_public_key=stranger_public,
            curve_secret_key=stranger_secret,
        ),
    }
    grl.register()  # the plain id, in EnvRunners that never import gym_remote
    config = (
        PPOConfig()
        .environment(grl.ENV_ID, env_config=grl.pool_env_config(pool, task=TASK))
        .env_runners(
            num_env_runners=2,
            num_envs_per_env_runner=4,
            gym_env_vectorize_mode=vectorize,
            # sync mode hands the creator an EnvContext with worker_index: no runner subclass needed
            **({"env_runner_cls": grl.PoolEnvRunner} if vectorize == "vector_entry_point" else {}),
            rollout_fragment_length=64,
            num_cpus_per_env_runner=1,
        )
        .learners(num_learners=0)
        .training(train_batch_size_per_learner=512, minibatch_size=128, num_epochs=2, lr=3e-4)
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[32, 32]))
        .debugging(seed=0)
    )
    t0 = time.monotonic()
    algo = config.build_algo()
    build_s = time.monotonic() - t0
    during = sessions(pool)
    results = []
    t0 = time.monotonic()
    for _ in range(iterations):
        r = algo.train()
        results.append(
            {
                "return_mean": r["env_runners"].get("episode_return_mean"),
                "env_steps": r["env_runners"].get("num_env_steps_sampled_lifetime"),
            }
        )
    train_s = time.monotonic() - t0
    runner_seconds = time.monotonic()
    algo.stop()
    stop_s = time.monotonic() - runner_seconds
    after_stop = sessions(pool)
    pids = [h.pid for h in pool] + [h.actor_pid for h in pool]
    pool.close()
    emit(
        mode="train" if vectorize == "vector_entry_point" else "train_sync",
        build_s=build_s,
        train_s=train_s,
        stop_s=stop_s,
        results=results,
        sessions_during=during,
        sessions_after_stop=after_stop,
        key_dirs_left=key_dirs,
        strangers_refused=strangers,
        handles_alive_after_close=[h.alive() for h in pool],
        processes_gone_after_close=wait_gone(pids),
    )


def fanout(pool: RayServerPool) -> None:
    from gym_remote.vector import RemoteVectorEnv

    options = ConnectOptions(timeout=3, retries=0, **pool.client_options())
    venv = RemoteVectorEnv(6, hosts=pool.hosts, task=TASK, options=options)
    try:
        obs, _ = venv.reset(seed=0)
        steps = 0
        for _ in range(50):
            venv.step(venv.action_space.sample())
            steps += 1
        per_server = sessions(pool)
        victim = pool.handles[1]
        ray.kill(victim._actor, no_restart=True)  # as when its node is lost: the actor and its server go
        server_gone = wait_gone([victim.pid, victim.actor_pid])
        error = ""
        try:
            for _ in range(5):
                venv.step(venv.action_space.sample())
        except RemoteEnvError as exc:
            error = str(exc)
        emit(
            mode="fanout",
            obs_shape=list(obs.shape),
            steps=steps,
            sessions=per_server,
            server_gone=server_gone,
            error=error,
            victim_node=victim.node_id[:12],
            victim_port=victim.local_port,
            diagnostics=victim.log_tail(5),
        )
    finally:
        venv.close()
        pool.close()


def make_vec() -> None:
    """``gym.make_vec(..., launch="ray", servers=2)``: Ray places the servers, the env owns them."""
    import gymnasium as gym

    import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)

    venv = gym.make_vec(
        "Remote-IsaacSim-v0", num_envs=6, task=TASK, launch="ray", servers=2, resources={"sim_gpu": 1}, timeout=10
    )
    remote = venv.unwrapped
    handles = [shard.link.server for shard in remote._shards if shard.link.server is not None]
    pids = [p for h in handles for p in (h.pid, h.actor_pid)]
    obs, _ = venv.reset(seed=0)
    for _ in range(20):
        venv.step(venv.action_space.sample())
    hosts = [h.host_port for h in handles]
    keys = handles[0].client_options()
    venv.close()
    emit(
        mode="make_vec",
        obs_shape=list(obs.shape),
        hosts=hosts,
        curve=bool(keys.get("curve_server_key")),
        gone_after_close=wait_gone(pids, timeout=30),
    )


def isaaclab(python: str, asset_root: str) -> None:
    """Two real Isaac Lab 3.0 servers on PhysX, each run by its actor from the Isaac Lab venv's Python,
    and one ``RemoteVectorEnv`` fanned out over them (same_step, as Isaac Lab resets in step)."""
    from gym_remote.vector import RemoteVectorEnv

    t0 = time.monotonic()
    pool = start_pool(
        2,
        backend="isaaclab",
        task="Isaac-Cartpole",
        task_kwargs={"asset_root": asset_root},
        serve_args=["--override", "physics=ovphysx"],
        python=python,
        env={"PYTHONPATH": os.environ.get("PYTHONPATH", "")},
        resources={"sim_gpu": 1},
        startup_timeout=600,
    )
    print("POOL " + json.dumps({"pool_s": time.monotonic() - t0, "hosts": pool.hosts}), flush=True)
    try:
        venv = RemoteVectorEnv(
            8,
            hosts=pool.hosts,
            task="Isaac-Cartpole",
            autoreset_mode="same_step",
            options=ConnectOptions(connect_timeout=600, **pool.client_options()),
        )
        try:
            obs, _ = venv.reset(seed=0)
            again, _ = venv.reset(seed=0)
            rewards = []
            for _ in range(30):
                obs, reward, *_ = venv.step(venv.action_space.sample().clip(-1, 1))
                rewards.append(float(reward.sum()))
            per_server = sessions(pool)
            emit(
                mode="isaaclab",
                obs_shape=list(obs.shape),
                physics=venv.metadata.get("physics"),
                seeded=bool((again == venv.reset(seed=0)[0]).all()),
                finite=all(r == r for r in rewards),
                sessions=per_server,
            )
        finally:
            venv.close()
    finally:
        pool.close()


def _key_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "gym-remote-curve-*")))


#: The CURVE key folders on this node before the pool started.
KEY_DIRS_BEFORE: set[str] = set()


def main() -> int:
    KEY_DIRS_BEFORE.update(_key_dirs())
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["train", "train_sync", "fanout", "hang", "make_vec", "isaaclab"])
    p.add_argument("--isaaclab-python", help="isaaclab mode: the Isaac Lab venv's python")
    p.add_argument("--asset-root", help="isaaclab mode: the offline Isaac Lab assets")
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--temp-dir", required=True, help="Ray's temp dir (its processes name it on their command line)")
    args = p.parse_args()
    t0 = time.monotonic()
    ray.init(
        num_cpus=2,
        resources={"sim_gpu": 2},
        include_dashboard=False,
        object_store_memory=128 * 2**20,
        _temp_dir=args.temp_dir,
        log_to_driver=False,
    )
    ray_s = time.monotonic() - t0
    if args.mode == "make_vec":
        print("POOL " + json.dumps({"ray_s": ray_s}), flush=True)
        make_vec()
        ray.shutdown()
        return 0
    if args.mode == "isaaclab":
        isaaclab(args.isaaclab_python, args.asset_root)
        ray.shutdown()
        return 0
    t0 = time.monotonic()
    pool = start_pool(2, task=TASK, resources={"sim_gpu": 1})  # binds the node's address: 127.0.0.1 here
    print(
        "POOL "
        + json.dumps(
            {
                "ray_s": ray_s,
                "pool_s": time.monotonic() - t0,
                "hosts": pool.hosts,
                "server_pids": [h.pid for h in pool],
                "actor_pids": [h.actor_pid for h in pool],
            }
        ),
        flush=True,
    )
    if args.mode == "hang":
        time.sleep(600)
        return 1
    if args.mode == "train":
        train(pool, args.iterations)
    elif args.mode == "train_sync":
        train(pool, args.iterations, vectorize="sync")
    else:
        fanout(pool)
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
