"""RLlib: ``Remote-IsaacSim-v0`` inside RLlib's EnvRunners, and EnvRunners spread over a Ray server pool.

Each EnvRunner is its own Ray worker process that never imports ``gym_remote``, and Gymnasium 1.x
has no plugin loading, so the id registered by ``import gym_remote`` in the driver is unknown there.
RLlib's documented remedy is its own registry (``ray.tune.registry.register_env``), which Ray ships
to every worker: :func:`register` puts :func:`env_creator` there under ``"Remote-IsaacSim-v0"``, and
the plain id then works in every EnvRunner, in sync mode and in vector-entry-point mode (one session
and one round trip per batched step for each EnvRunner)::

    import gym_remote.rllib
    from ray.rllib.algorithms.ppo import PPOConfig

    gym_remote.rllib.register()
    config = (
        PPOConfig()
        .environment("Remote-IsaacSim-v0", env_config={"host": "127.0.0.1", "port": 5555, "task": "CartPole-v1"})
        .env_runners(num_env_runners=2, num_envs_per_env_runner=4, gym_env_vectorize_mode="vector_entry_point")
    )

(Without :func:`register`, Gymnasium's own ``"gym_remote:Remote-IsaacSim-v0"`` form also works: it
imports ``gym_remote`` in each EnvRunner before making the env.)

On a Ray server pool (:func:`gym_remote.launch.ray_pool.start_pool`), :func:`pool_env_config` puts the
pool's endpoints and CURVE keys in ``env_config``, and each EnvRunner connects to ONE server:
EnvRunner ``i`` (RLlib's ``worker_index``: 1..R for remote runners, 0 for the local one) gets server
``(i - 1) % N`` (:func:`~gym_remote.launch.ray_pool.server_for_runner`). RLlib 2.60 hands the
creator an ``EnvContext`` (which carries ``worker_index``) in sync mode but a plain dict in
vector-entry-point mode, so there pass ``env_runner_cls=PoolEnvRunner``, which adds the index to
``env_config``; without an index, a runner spreads its sub-envs over every server of the pool.

Sessions: ``algo.stop()`` closes every EnvRunner's env and so its sessions. An EnvRunner killed
without ``stop()`` leaves its session until the server's ``--idle-timeout``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

from gym_remote.client import parse_host_port
from gym_remote.entry import make_env, make_vector_env
from gym_remote.env import DEFAULT_PORT, RemoteEnv
from gym_remote.launch.ray_pool import RayServerPool, server_for_runner
from gym_remote.vector import RemoteVectorEnv

__all__ = ["ENV_ID", "RUNNER_INDEX_KEY", "SERVERS_KEY", "PoolEnvRunner", "env_creator", "pool_env_config", "register"]

#: The name :func:`register` gives the env in RLlib's registry (the Gymnasium id, so one name works).
ENV_ID = "Remote-IsaacSim-v0"
#: ``env_config`` key: the pool's ``["host:port", ...]``, one of which each EnvRunner connects to.
SERVERS_KEY = "servers"
#: ``env_config`` key that :class:`PoolEnvRunner` sets to the EnvRunner's ``worker_index``.
RUNNER_INDEX_KEY = "env_runner_index"


def runner_index(config: Mapping[str, Any]) -> int | None:
    """The EnvRunner index an env creator was given: ``EnvContext.worker_index`` or :data:`RUNNER_INDEX_KEY`."""
    index = config.get(RUNNER_INDEX_KEY)
    if index is None:
        index = getattr(config, "worker_index", None)
    return None if index is None else int(index)


def env_creator(config: Mapping[str, Any]) -> RemoteEnv | RemoteVectorEnv:
    """RLlib's env creator: a :class:`RemoteVectorEnv` when ``config`` has ``num_envs``, else a :class:`RemoteEnv`.

    Args:
        config: the ``env_config`` (an ``EnvContext`` or a dict): any keyword of ``RemoteEnv`` /
            ``RemoteVectorEnv``, plus :data:`SERVERS_KEY` (a pool's endpoints: one is picked for
            this EnvRunner, see the module notes) and ``num_envs`` (RLlib's vector-entry-point mode).

    Raises:
        ValueError: :data:`SERVERS_KEY` is empty, or given with ``host``/``hosts``.
    """
    kwargs = dict(config)
    index = runner_index(config)
    kwargs.pop(RUNNER_INDEX_KEY, None)
    num_envs = kwargs.pop("num_envs", None)
    servers = kwargs.pop(SERVERS_KEY, None)
    if servers is not None:
        servers = list(servers)
        if not servers:
            raise ValueError(f"env_config[{SERVERS_KEY!r}] is empty: give the pool's endpoints (pool_env_config)")
        if "host" in kwargs or "hosts" in kwargs:
            raise ValueError(f"env_config has both {SERVERS_KEY!r} and host/hosts: give one")
        if index is not None or num_envs is None:
            host, port = parse_host_port(servers[server_for_runner(index or 0, len(servers))], DEFAULT_PORT)
            kwargs["host"], kwargs["port"] = host, port
        elif len(servers) <= num_envs:
            kwargs["hosts"] = servers  # no index: spread this runner's sub-envs over the whole pool
        else:
            kwargs["hosts"] = servers[:num_envs]
    if num_envs is None:
        return make_env(**kwargs)
    return make_vector_env(int(num_envs), **kwargs)


def register(name: str = ENV_ID) -> str:
    """Register :func:`env_creator` in RLlib's registry as ``name``; returns ``name``.

    Call it in the driver before building the algorithm: Ray ships the registry to every EnvRunner.
    """
    from ray.tune.registry import register_env

    register_env(name, env_creator)
    return name


def pool_env_config(pool: RayServerPool, **kwargs: Any) -> dict[str, Any]:
    """``env_config`` for EnvRunners on ``pool``: its endpoints and CURVE keys, plus ``kwargs`` (task...)."""
    return {SERVERS_KEY: pool.hosts, **pool.client_options(), **kwargs}


class PoolEnvRunner(SingleAgentEnvRunner):
    """RLlib's ``SingleAgentEnvRunner`` that tells the env creator its index in vector-entry-point mode.

    RLlib 2.60 passes an ``EnvContext`` (with ``worker_index``) to registered creators in sync mode
    only; this runner adds :data:`RUNNER_INDEX_KEY` to ``env_config`` before it makes its env, so
    each runner connects to its own pool server. Use with
    ``config.env_runners(env_runner_cls=PoolEnvRunner)``.
    """

    def make_env(self) -> None:
        if self.worker_index is not None:
            self.config.env_config = {**self.config.env_config, RUNNER_INDEX_KEY: self.worker_index}
        super().make_env()
