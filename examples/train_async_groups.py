"""Train an actor-critic (A2C) on remote CartPole-v1 with k groups of envs in flight (EnvPool's async mode).

The vector env is ``gym.make_vec("Remote-IsaacSim-v0", num_envs=N, batch_size=N/k)``: k groups, each
its own session on the server. The loop receives whichever group arrived first, sends that group's
next actions at once, and only then learns from it, so while the policy works on one group the
other k-1 are being stepped or are on the wire. Each group keeps its own rollout of ``--rollout``
steps; a full rollout is one A2C update (n-step returns bootstrapped from the critic).

A server subprocess on this machine stands in for the GPU box; pass --host/--port to use a real one,
and --rtt-ms to put an emulated slow link (a delaying relay on loopback) in between.
Run: python examples/train_async_groups.py --help
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import gym_remote  # noqa: F401  (registers Remote-IsaacSim-v0)
from gym_remote.local import LocalServer


class ActorCritic(nn.Module):
    def __init__(self, obs_dim: int, actions: int, hidden: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.pi = nn.Linear(hidden, actions)
        self.v = nn.Linear(hidden, 1)

    def forward(self, obs: torch.Tensor) -> tuple[torch.distributions.Categorical, torch.Tensor]:
        h = self.body(obs)
        return torch.distributions.Categorical(logits=self.pi(h)), self.v(h).squeeze(-1)


class Rollout:
    """One group's transitions. ``valid`` is False for the autoreset step after an episode ended (next_step
    mode: the env ignored that action and reported the first observation of the next episode)."""

    def __init__(self) -> None:
        self.obs: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        self.rewards: list[np.ndarray] = []
        self.dones: list[np.ndarray] = []
        self.valid: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.rewards)


def a2c_update(
    model: ActorCritic, opt: torch.optim.Optimizer, ro: Rollout, last_obs: np.ndarray, gamma: float
) -> float:
    obs = torch.as_tensor(np.stack(ro.obs), dtype=torch.float32)  # (T, B, obs_dim)
    actions = torch.as_tensor(np.stack(ro.actions))
    rewards = torch.as_tensor(np.stack(ro.rewards), dtype=torch.float32)
    dones = torch.as_tensor(np.stack(ro.dones), dtype=torch.float32)
    valid = torch.as_tensor(np.stack(ro.valid), dtype=torch.float32)
    dist, values = model(obs)
    with torch.no_grad():
        ret = model(torch.as_tensor(last_obs, dtype=torch.float32))[1]
        returns = torch.zeros_like(rewards)
        for t in reversed(range(len(ro))):
            ret = rewards[t] + gamma * ret * (1.0 - dones[t])
            returns[t] = ret
    adv = (returns - values).detach()
    adv = (adv - adv[valid > 0].mean()) / (adv[valid > 0].std() + 1e-8)
    n = valid.sum().clamp(min=1.0)
    loss = (
        -(dist.log_prob(actions) * adv * valid).sum() / n
        + 0.5 * (((returns - values) ** 2) * valid).sum() / n
        - 0.01 * (dist.entropy() * valid).sum() / n
    )
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 0.5)
    opt.step()
    return float(loss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="server host (default: start a local server)")
    parser.add_argument("--port", type=int, default=5555)
    parser.add_argument("--num-envs", type=int, default=256, help="sub-envs in all (default 256)")
    parser.add_argument("--groups", type=int, default=4, help="groups in flight, k (default 4)")
    parser.add_argument("--rollout", type=int, default=8, help="steps per group between updates (default 8)")
    parser.add_argument("--env-steps", type=int, default=500_000, help="env-steps to train for (default 500k)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="emulate a link of this round trip (default 0)")
    args = parser.parse_args()
    if args.num_envs % args.groups:
        parser.error(f"--groups {args.groups} must divide --num-envs {args.num_envs}")

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # small nets: threads only fight the server for the cores
    server = relay = None
    host, port = args.host, args.port
    if host is None:
        n = str(args.num_envs)
        server = LocalServer("gymnasium", "CartPole-v1", extra_args=["--max-envs", n, "--max-sessions", "64"])
        host, port = server.local_host, server.local_port
    if args.rtt_ms > 0:
        from gym_remote.bench import DelayRelay

        relay = DelayRelay(port, args.rtt_ms / 1e3)
        host, port = "127.0.0.1", relay.port
    envs = gym.make_vec(
        "Remote-IsaacSim-v0",
        num_envs=args.num_envs,
        batch_size=args.num_envs // args.groups,
        host=host,
        port=port,
        task="CartPole-v1",
    )
    model = ActorCritic(envs.single_observation_space.shape[0], int(envs.single_action_space.n))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    rollouts: dict[int, Rollout] = {}
    pending: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # group -> (obs, actions, valid) sent
    done_before = np.zeros(args.num_envs, bool)  # the next step of these envs is an autoreset step
    episode_return = np.zeros(args.num_envs)
    finished: list[float] = []
    steps, updates, t0 = 0, 0, time.perf_counter()
    try:
        envs.async_reset(seed=args.seed)
        with tqdm(total=args.env_steps, unit="env-step", dynamic_ncols=True) as bar:
            while steps < args.env_steps:
                obs, rew, term, trunc, _, env_ids = envs.recv()  # the first group to arrive
                group = int(env_ids[0])
                with torch.no_grad():
                    dist, _ = model(torch.as_tensor(obs, dtype=torch.float32))
                actions = dist.sample().numpy()
                envs.send(actions, env_ids)  # out at once: it travels while we learn below
                if group in pending:  # the results of the actions sent last time for this group
                    prev_obs, prev_actions, valid = pending[group]
                    ro = rollouts.setdefault(group, Rollout())
                    ro.obs.append(prev_obs)
                    ro.actions.append(prev_actions)
                    ro.rewards.append(rew)
                    ro.dones.append(term | trunc)
                    ro.valid.append(valid)
                    episode_return[env_ids] += rew
                    ended = env_ids[term | trunc]
                    finished.extend(episode_return[ended].tolist())
                    episode_return[ended] = 0.0
                    steps += len(env_ids)
                    bar.update(len(env_ids))
                    if len(ro) == args.rollout:
                        a2c_update(model, opt, ro, obs, args.gamma)
                        rollouts[group] = Rollout()
                        updates += 1
                        if updates % 20 == 0 and finished:
                            bar.set_postfix(mean_return=f"{np.mean(finished[-100:]):.1f}", updates=updates)
                done_before[env_ids] = (term | trunc) if group in pending else False
                pending[group] = (obs, actions, ~done_before[env_ids])
    finally:
        envs.close()
        if relay is not None:
            relay.close()
        if server is not None:
            server.close()
    elapsed = time.perf_counter() - t0
    recent = np.mean(finished[-100:]) if finished else float("nan")
    print(
        f"{steps:,} env-steps in {elapsed:.1f} s ({steps / elapsed:,.0f} env-steps/s) with {args.groups} groups in "
        f"flight; {updates} updates; mean return of the last 100 episodes: {recent:.1f}"
    )


if __name__ == "__main__":
    main()
