"""Does a faster PPO setting learn as well? Train a scenario's pretraining under each setting.

Run (from the repository root, venv active)::

    python benchmarks/learning_quality.py                          # quick.yaml, 3 seeds
    python benchmarks/learning_quality.py --settings 8:128:256,32:32:1024 --steps 300000

A setting is ``n_copies:n_steps:batch_size[:learning_rate][+BACKEND]`` (other PPO fields from
the scenario; ``+sb3``, ``+lean`` or ``+compiled`` sets ``ppo.backend``, else the scenario's)::

    python benchmarks/learning_quality.py --config configs/aggression.yaml \
        --settings 8:128:256+lean,8:128:256+compiled --steps 500000 --seeds 0,1,2,3,4

Deciding a default (``DEFAULT_BACKEND``, the ``PPOConfig`` layout) asks more: many seeds, and
intervals narrow enough to rule out a difference that matters. ``--margins TRAIT,RETURN`` says
what matters (an absolute trait-rate difference either way, a task-return loss as a fraction of
the first setting's) and adds a verdict per setting: ``equal`` when the 95% Welch interval of the
trait difference lies inside ±TRAIT and that of the task return above −RETURN × the first
setting's mean, ``not shown`` otherwise. ``--save FILE`` keeps every finished (setting, seed)
in FILE (written atomically after each): a rerun with the same FILE, config, steps and episodes
computes only what is missing, so seeds can be added to a long comparison::

    python benchmarks/learning_quality.py --config configs/aggression.yaml \
        --settings 8:128:256+lean,64:32:256+compiled,32:32:256+compiled --steps 500000 \\
        --seeds 0-89 --jobs 2 \
        --margins 0.01,0.05 --save results/benchmarks/learning_quality_default.json

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
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, get_args

import numpy as np
import torch
from scipy import stats

from marlmod.atomic import read_json, write_json
from marlmod.config import Backend, Scenario, load_scenario, parse_scenario
from marlmod.environments import resolve_env
from marlmod.rollout import rollout
from marlmod.stats import Estimate, mean_ci
from marlmod.train import build_model, learn


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/quick.yaml")
    parser.add_argument("--settings", default="8:128:256,64:32:1024,32:128:1024")
    parser.add_argument("--seeds", default="0,1,2", help="e.g. 0,1,2 or ranges: 0-39")
    parser.add_argument("--steps", type=int, default=150_000)
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument(
        "--jobs", type=int, default=1, help="worker processes (one per core; default 1)"
    )
    parser.add_argument(
        "--margins",
        default=None,
        metavar="TRAIT,RETURN",
        help="relevant differences: trait rate (absolute, either way), task-return loss "
        "(fraction of the first setting's), e.g. 0.01,0.05; adds a verdict per setting",
    )
    parser.add_argument(
        "--save", type=Path, default=None, help="keep finished (setting, seed) results here"
    )
    return parser.parse_args(argv)


def parse_seeds(text: str) -> list[int]:
    """``0,1,2`` or ranges such as ``0-39`` (inclusive), comma-separated."""
    seeds: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds += list(range(int(first), int(last or first) + 1))
    return seeds


def parse_margins(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        trait, task_return = (float(x) for x in text.split(","))
    except ValueError:
        raise SystemExit(f"--margins {text!r}: expected TRAIT,RETURN, e.g. 0.01,0.05") from None
    return trait, task_return


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    base = load_scenario(args.config)
    settings = args.settings.split(",")
    for setting in settings:
        scenario_for(base, setting)  # a malformed setting fails before any training
    seeds = parse_seeds(args.seeds)
    margins = parse_margins(args.margins)
    saved = Saved(
        args.save, {"config": args.config, "steps": args.steps, "episodes": args.episodes}
    )
    print(f"{args.config}: pretraining {args.steps:,} agent-steps, seeds {args.seeds}")
    print(
        f"{'copies:n_steps:batch[:lr]':<26}{'trait rate':>25}{'Δ vs first':>27}"
        f"{'task return':>24}{'Δ vs first':>26}{'train/s':>10}"
        + (f"{'verdict':>11}" if margins else "")
    )
    pairs = [(setting, seed) for setting in settings for seed in seeds]
    todo = [pair for pair in pairs if not saved.has(*pair)]
    tasks = [(args.config, setting, seed, args.steps, args.episodes) for setting, seed in todo]
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        fresh: Iterator[Outcome] = iter(pool.map(train_and_evaluate, tasks))  # in order
        first: tuple[list[float], list[float]] | None = None
        for setting in settings:
            outcomes = [saved.get_or(setting, seed, fresh) for seed in seeds]
            rates, returns, seconds = map(list, zip(*outcomes, strict=True))
            first = first or (rates, returns)
            line = (
                f"{setting:<26}{interval(mean_ci(rates), '.4f'):>25}"
                f"{difference(rates, first[0], '.4f'):>27}"
                f"{interval(mean_ci(returns), '.2f'):>24}"
                f"{difference(returns, first[1], '.2f'):>26}"
                f"{len(seeds) * args.steps / sum(seconds):>10,.0f}"
            )
            if margins:
                line += f"{verdict(rates, returns, first, margins):>11}"
            print(line, flush=True)
    if margins:
        trait, loss = margins
        print(
            f"equal: the 95% Welch interval of the trait-rate difference inside ±{trait:g} and "
            f"that of the task return above −{loss:.0%} of the first setting's mean"
        )


Outcome = tuple[float, float, float]  # trait rate, task return, train seconds


class Saved:
    """Finished (setting, seed) outcomes, read from and written to ``--save`` (atomically, after
    each), for one config, budget and evaluation only."""

    def __init__(self, path: Path | None, spec: dict[str, Any]) -> None:
        self.path, self.spec = path, spec
        self.outcomes: dict[str, list[float]] = {}
        if path is not None and path.is_file():
            data = read_json(path)
            if data.get("spec") != spec:
                raise SystemExit(
                    f"{path} holds results of {data.get('spec')}, not {spec}; use another --save"
                )
            self.outcomes = data["outcomes"]

    @staticmethod
    def key(setting: str, seed: int) -> str:
        return f"{setting} seed {seed}"

    def has(self, setting: str, seed: int) -> bool:
        return self.key(setting, seed) in self.outcomes

    def get_or(self, setting: str, seed: int, fresh: Iterator[Outcome]) -> Outcome:
        """The stored outcome, or the next fresh one (then stored)."""
        key = self.key(setting, seed)
        if key not in self.outcomes:
            self.outcomes[key] = list(next(fresh))
            if self.path is not None:
                write_json(self.path, {"spec": self.spec, "outcomes": self.outcomes})
        rate, task_return, seconds = self.outcomes[key]
        return rate, task_return, seconds


def verdict(
    rates: list[float],
    returns: list[float],
    first: tuple[list[float], list[float]],
    margins: tuple[float, float],
) -> str:
    """``equal`` when the Welch intervals exclude a relevant difference (see ``--margins``)."""
    if rates is first[0]:
        return "-"
    trait, loss = margins
    trait_ci = welch_interval(rates, first[0])
    return_ci = welch_interval(returns, first[1])
    floor = -loss * abs(float(np.mean(first[1])))
    inside = -trait < trait_ci[0] and trait_ci[1] < trait and return_ci[0] > floor
    return "equal" if inside else "not shown"


def welch_interval(values: list[float], reference: list[float]) -> tuple[float, float]:
    """95% Welch interval of mean(values) − mean(reference) (a point if both are constant)."""
    if np.ptp(values) == 0 and np.ptp(reference) == 0:
        delta = float(np.mean(values) - np.mean(reference))
        return delta, delta
    ci = stats.ttest_ind(values, reference, equal_var=False).confidence_interval(0.95)
    return float(ci.low), float(ci.high)


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


def train_and_evaluate(task: tuple[str, str, int, int, int]) -> Outcome:
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
    low, high = welch_interval(values, reference)
    return f"{delta:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


if __name__ == "__main__":
    main()
