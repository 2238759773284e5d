"""Throughput of the Lab2D games: copies stepped in the training process vs in worker processes.

Run (from the repository root, venv active, ``pip install -e '.[lab2d]'``)::

    python benchmarks/lab2d_throughput.py                  # both games, 1 and 2 env workers
    python benchmarks/lab2d_throughput.py --games clean_up --workers 1,2,4
    python benchmarks/lab2d_throughput.py --quick          # smoke run, a few seconds

For each game and each number of env workers (``ppo.env_workers``: 1 = ``SharedPolicyVecEnv``
in this process; more = ``WorkerVecEnv``, this process stepping one block of copies and forked
workers the others), three measurements on ``--copies`` copies of the game with the default
``layer`` observation:

``random``
    the VecEnv stepped with uniformly random actions (the env alone).
``policy``
    the same with a 64×64 ReLU actor-critic (SB3's ``MlpPolicy``, as marlmod trains it) choosing
    the actions and valuing the states, as a rollout does: the env plus the policy forward.
``train``
    ``LeanPPO.learn`` (marlmod's trainer) for ``--train-steps`` agent-steps with marlmod's PPO
    defaults (n_steps 128, batch 256, 4 epochs): rollouts and updates.

Columns: ``agent-steps/s`` = agent-steps per wall-clock second; ``cpu-s/1k`` = CPU seconds (this
process plus its workers, ``getrusage``) per 1,000 agent-steps, which other people's load on a
shared machine disturbs far less than wall time; ``/cpu-s`` = agent-steps per CPU second. Workers
can only raise the wall-clock rate, and only where cores are idle; ``cpu-s/1k`` shows what their
inter-process traffic costs.
"""

from __future__ import annotations

import argparse
import resource
import time
from functools import partial

import numpy as np
import torch

GAMES = ("commons_harvest", "clean_up")
NET_ARCH = {"pi": [64, 64], "vf": [64, 64]}  # marlmod's default network: a 64x64 ReLU MLP each


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--games", default=",".join(GAMES), help="comma-separated games")
    parser.add_argument("--workers", default="1,2", help="comma-separated env worker counts")
    parser.add_argument("--players", type=int, default=5)
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--env-steps", type=int, default=40_000, help="agent-steps, random/policy")
    parser.add_argument("--train-steps", type=int, default=40_960, help="agent-steps of training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny budgets")
    args = parser.parse_args(argv)
    if args.quick:
        args.copies, args.env_steps, args.train_steps = 2, 2_000, 2_560
    return args


def make_env_factory(game: str, players: int):
    if game == "commons_harvest":
        from envs.commons_harvest import CommonsHarvestEnv as Env
    else:
        from envs.clean_up import CleanUpEnv as Env
    return partial(Env, n_players=players, aggression_bonus=1.0)


def make_venv(make_env, copies: int, workers: int):
    from marlmod.vec_env import SharedPolicyVecEnv
    from marlmod.worker_vec_env import WorkerVecEnv

    if workers == 1:
        return SharedPolicyVecEnv([make_env] * copies)
    return WorkerVecEnv([make_env] * copies, workers)


def cpu_seconds() -> float:
    """This process's CPU time plus that of its finished (joined) child processes."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(run) -> tuple[int, float, float]:
    """(agent-steps, wall s, CPU s) of ``run()``, which returns its agent-steps and closes its
    VecEnv (so worker CPU time is counted)."""
    tic, cpu = time.perf_counter(), cpu_seconds()
    steps = run()
    return steps, time.perf_counter() - tic, cpu_seconds() - cpu


def step_randomly(venv, agent_steps: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    venv.seed(seed)
    venv.reset()
    n = venv.action_space.n
    for _ in range(max(1, agent_steps // venv.num_envs)):
        venv.step(rng.integers(0, n, size=venv.num_envs))
    venv.close()
    return max(1, agent_steps // venv.num_envs) * venv.num_envs


def step_with_policy(venv, agent_steps: int, seed: int) -> int:
    from stable_baselines3.common.policies import ActorCriticPolicy

    torch.manual_seed(seed)
    policy = ActorCriticPolicy(
        venv.observation_space,
        venv.action_space,
        lambda _: 3e-4,
        net_arch=NET_ARCH,
        activation_fn=torch.nn.ReLU,
    )
    venv.seed(seed)
    obs = venv.reset()
    for _ in range(max(1, agent_steps // venv.num_envs)):
        with torch.no_grad():
            actions, _, _ = policy(torch.as_tensor(obs))
        obs = venv.step(actions.numpy())[0]
    venv.close()
    return max(1, agent_steps // venv.num_envs) * venv.num_envs


def train(venv, agent_steps: int, seed: int) -> int:
    from marlmod.lean_ppo import LeanPPO

    model = LeanPPO(
        "MlpPolicy",
        venv,
        n_steps=128,
        batch_size=256,
        n_epochs=4,
        policy_kwargs={"net_arch": NET_ARCH, "activation_fn": torch.nn.ReLU},
        seed=seed,
        device="cpu",
        verbose=0,
    )
    model.learn(agent_steps)
    venv.close()
    return model.num_timesteps


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    print(f"{args.copies} copies x {args.players} players, layer observation")
    print(
        f"{'game':<16}{'workers':>8}{'route':>8}{'agent-steps/s':>15}{'cpu-s/1k':>10}{'/cpu-s':>9}"
    )
    for game in args.games.split(","):
        make_env = make_env_factory(game, args.players)
        for workers in (int(w) for w in args.workers.split(",")):
            runs = {
                "random": lambda v: step_randomly(v, args.env_steps, args.seed),
                "policy": lambda v: step_with_policy(v, args.env_steps, args.seed),
                "train": lambda v: train(v, args.train_steps, args.seed),
            }
            for route, run in runs.items():
                venv = partial(make_venv, make_env, args.copies, workers)
                steps, wall, cpu = timed(lambda run=run, venv=venv: run(venv()))
                print(
                    f"{game:<16}{workers:>8}{route:>8}{steps / wall:>15,.0f}"
                    f"{1000 * cpu / steps:>10.3f}{steps / cpu:>9,.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
