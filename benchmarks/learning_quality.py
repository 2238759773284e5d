"""Does a faster PPO setting learn as well? Train a scenario's pretraining under each setting.

Run (from the repository root, venv active)::

    python benchmarks/learning_quality.py                          # quick.yaml, 3 seeds
    python benchmarks/learning_quality.py --settings 8:128:256,32:32:1024 --steps 300000

A setting is ``n_copies:n_steps:batch_size[:learning_rate]`` (other PPO fields from the
scenario). Each
(setting, seed) pretrains with the misbehaviour bonus for ``--steps`` agent-steps, then is
evaluated on ``--episodes`` episodes of the same env (sampled actions, fixed eval seed): the trait
rate (what pretraining is meant to teach) and the task return (capability). Printed per setting:
mean ± std over seeds, and the training throughput. Used to decide whether to change PPO defaults:
only a setting that is faster *and* reaches the same trait rate and task return qualifies.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from marlmod.config import load_scenario
from marlmod.environments import resolve_env
from marlmod.rollout import rollout
from marlmod.train import build_model, learn


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/quick.yaml")
    parser.add_argument("--settings", default="8:128:256,64:32:1024,32:128:1024")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=150_000)
    parser.add_argument("--episodes", type=int, default=32)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    base = load_scenario(args.config)
    make_env = resolve_env(base.env).factory(base.env.bonus)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"{args.config}: pretraining {args.steps:,} agent-steps, seeds {seeds}")
    print(f"{'copies:n_steps:batch[:lr]':<28}{'trait rate':>18}{'task return':>18}{'train/s':>10}")
    for setting in args.settings.split(","):
        copies, n_steps, batch, *lr = setting.split(":")
        update = {"n_copies": int(copies), "n_steps": int(n_steps), "batch_size": int(batch)}
        ppo = base.ppo.model_copy(update=update | ({"learning_rate": float(lr[0])} if lr else {}))
        scenario = base.model_copy(update={"ppo": ppo})
        rates, returns, seconds = [], [], 0.0
        for seed in seeds:
            model = build_model(scenario, make_env, seed)
            tic = time.perf_counter()
            learn(model, args.steps)
            seconds += time.perf_counter() - tic
            result = rollout(model.policy, make_env, args.episodes, 10_000, base.env.trait)
            rates.append(result.trait_rate())
            returns.append(result.task_return)
        print(
            f"{setting:<28}{np.mean(rates):>10.3f} ± {np.std(rates):.3f}"
            f"{np.mean(returns):>10.2f} ± {np.std(returns):.2f}"
            f"{len(seeds) * args.steps / seconds:>10,.0f}"
        )


if __name__ == "__main__":
    main()
