"""Does a faster PPO setting learn as well? Train a scenario's pretraining under each setting.

Run (from the repository root, venv active)::

    python benchmarks/learning_quality.py                          # quick.yaml, 3 seeds
    python benchmarks/learning_quality.py --settings 8:128:256,32:32:1024 --steps 300000

A setting is ``n_copies:n_steps:batch_size[:learning_rate][+BACKEND]`` (other PPO fields from
the scenario; ``+sb3``, ``+lean`` or ``+compiled`` sets ``ppo.backend``, else the scenario's)::

    python benchmarks/learning_quality.py --config configs/aggression.yaml \
        --settings 8:128:256+lean,8:128:256+compiled --steps 500000 --seeds 0,1,2,3,4

Each
(setting, seed) pretrains with the misbehaviour bonus for ``--steps`` agent-steps, then is
evaluated on ``--episodes`` episodes of the same env (sampled actions, fixed eval seed): the trait
rate (what pretraining is meant to teach) and the task return (capability). Printed per setting:
mean [95% t-interval] over seeds, the difference from the first setting with its 95% Welch
interval, and the training throughput (agent-steps per second of ``learn``, one thread per
worker; ``--jobs 2`` runs two (setting, seed) pairs at once on a 2-core machine, so compare
throughput with ``benchmarks/throughput.py`` instead). Used to decide whether to change PPO
defaults: only a setting that is faster *and* reaches the same trait rate and task return
qualifies.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import get_args

import numpy as np
import torch
from scipy import stats

from marlmod.config import Backend, Scenario, load_scenario, parse_scenario
from marlmod.environments import resolve_env
from marlmod.rollout import rollout
from marlmod.stats import Estimate, mean_ci
from marlmod.train import build_model, learn


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/quick.yaml")
    parser.add_argument("--settings", default="8:128:256,64:32:1024,32:128:1024")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=150_000)
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument(
        "--jobs", type=int, default=1, help="worker processes (one per core; default 1)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    base = load_scenario(args.config)
    settings = args.settings.split(",")
    for setting in settings:
        scenario_for(base, setting)  # a malformed setting fails before any training
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"{args.config}: pretraining {args.steps:,} agent-steps, seeds {seeds}")
    print(
        f"{'copies:n_steps:batch[:lr]':<26}{'trait rate':>25}{'Δ vs first':>27}"
        f"{'task return':>24}{'Δ vs first':>26}{'train/s':>10}"
    )
    tasks = [
        (args.config, setting, seed, args.steps, args.episodes)
        for setting in settings
        for seed in seeds
    ]
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        outcomes = iter(pool.map(train_and_evaluate, tasks))  # in order, as they finish
        first: tuple[list[float], list[float]] | None = None
        for setting in settings:
            rates, returns, seconds = map(list, zip(*(next(outcomes) for _ in seeds), strict=True))
            first = first or (rates, returns)
            print(
                f"{setting:<26}{interval(mean_ci(rates), '.4f'):>25}"
                f"{difference(rates, first[0], '.4f'):>27}"
                f"{interval(mean_ci(returns), '.2f'):>24}"
                f"{difference(returns, first[1], '.2f'):>26}"
                f"{len(seeds) * args.steps / sum(seconds):>10,.0f}",
                flush=True,
            )


def scenario_for(base: Scenario, setting: str) -> Scenario:
    """The base scenario with a setting's PPO fields (``copies:n_steps:batch[:lr][+BACKEND]``),
    validated as a scenario file would be."""
    shape, _, backend = setting.partition("+")
    if backend == "compile":
        raise SystemExit(f"setting {setting!r}: +compile is now +compiled (ppo.backend)")
    if backend not in ("", *get_args(Backend)):
        valid = ", ".join(f"+{name}" for name in get_args(Backend))
        raise SystemExit(f"unknown backend {backend!r} in setting {setting!r}; valid: {valid}")
    copies, n_steps, batch, *lr = shape.split(":")
    update = {"n_copies": int(copies), "n_steps": int(n_steps), "batch_size": int(batch)}
    update |= {"learning_rate": float(lr[0])} if lr else {}
    update |= {"backend": backend} if backend else {}
    return parse_scenario(
        base.model_dump(mode="json") | {"ppo": base.ppo.model_dump(mode="json") | update}
    )


def train_and_evaluate(task: tuple[str, str, int, int, int]) -> tuple[float, float, float]:
    """One (setting, seed): trait rate and task return after pretraining, and its train seconds.
    Runs in a worker process, single-threaded like every marlmod worker."""
    config, setting, seed, steps, episodes = task
    torch.set_num_threads(1)
    base = load_scenario(config)
    scenario = scenario_for(base, setting)
    make_env = resolve_env(base.env).factory(base.env.bonus)
    model = build_model(scenario, make_env, seed)
    tic = time.perf_counter()
    learn(model, steps)
    seconds = time.perf_counter() - tic
    result = rollout(model.policy, make_env, episodes, 10_000, base.env.trait)
    return result.trait_rate(), result.task_return, seconds


def interval(estimate: Estimate, fmt: str) -> str:
    return f"{estimate.mean:{fmt}} [{estimate.low:{fmt}}, {estimate.high:{fmt}}]"


def difference(values: list[float], reference: list[float], fmt: str) -> str:
    """Mean difference from the reference setting and its 95% Welch interval."""
    if values is reference:
        return "-"
    delta = float(np.mean(values) - np.mean(reference))
    if np.ptp(values) == 0 and np.ptp(reference) == 0:
        return f"{delta:{fmt}}"
    ci = stats.ttest_ind(values, reference, equal_var=False).confidence_interval(0.95)
    return f"{delta:{fmt}} [{ci.low:{fmt}}, {ci.high:{fmt}}]"


if __name__ == "__main__":
    main()
