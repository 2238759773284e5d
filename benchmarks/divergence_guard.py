"""What the divergence guard costs: ``marlmod.train.learn`` (guarded) against SB3's ``learn``.

Run (from the repository root, venv active)::

    python benchmarks/divergence_guard.py                  # quick.yaml's PPO, 20k steps, 5 rounds
    python benchmarks/divergence_guard.py --steps 2048 --rounds 1      # a smoke run

Each round trains a fresh model twice from the same seed — once through ``learn`` (gradients
checked before and weights after every optimiser step, ``marlmod.divergence``) and once through
SB3's ``model.learn`` alone — in alternating order, one thread. Printed: the CPU seconds of each
(``time.process_time``: other people's load on a shared machine disturbs it far less than wall
time), the median overhead over rounds, and whether both trained exactly the same weights (the
guard must not change healthy training).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from marlmod.config import load_scenario
from marlmod.environments import resolve_env
from marlmod.train import build_model, learn, training_logger

ROOT = Path(__file__).resolve().parent.parent


def train(config: Path, steps: int, guarded: bool) -> tuple[float, list[torch.Tensor]]:
    scenario = load_scenario(config)
    model = build_model(scenario, resolve_env(scenario.env).factory(scenario.env.bonus), seed=0)
    start = time.process_time()
    if guarded:
        learn(model, steps)
    else:
        model.set_logger(training_logger(model, "run", False))
        model.learn(total_timesteps=steps, progress_bar=False)
    return time.process_time() - start, [p.detach().clone() for p in model.policy.parameters()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "quick.yaml")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    overheads, same = [], True
    for i in range(args.rounds):
        order = (True, False) if i % 2 == 0 else (False, True)
        runs = {guarded: train(args.config, args.steps, guarded) for guarded in order}
        (with_guard, weights), (without, plain) = runs[True], runs[False]
        same &= all(torch.equal(a, b) for a, b in zip(weights, plain, strict=True))
        overheads.append(with_guard / without - 1)
        print(f"round {i}: guarded {with_guard:.2f} cpu-s, SB3 learn {without:.2f} cpu-s")
    print(f"overhead (median of {args.rounds}): {100 * statistics.median(overheads):+.1f}%")
    print(f"identical weights: {same}")


if __name__ == "__main__":
    main()
