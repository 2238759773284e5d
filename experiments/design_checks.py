"""Design checks behind the Gathering/ReLU/signed-contrast choices (docs/studies/aggression.md,
"What we tried before this design").

Trains one pretrained model per activation (tanh, relu) on the default Gathering env, then prunes
16 of 64 units of each hidden layer chosen by signed d ("signed"), |d| ("abs"), most negative d
("neg") and four random draws, printing the attack rate / task return right after pruning.

    python experiments/design_checks.py [--seed 0] [--steps 500000] [--out /tmp/design_checks]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from marlmod.config import parse_scenario
from marlmod.pipeline import SeedRun
from marlmod.prune import Prune, apply_masks, unit_masks
from marlmod.rollout import rollout
from marlmod.seed_locate import RECORD_SEED_OFFSET
from marlmod.train import limit_threads, load_model

UNITS = 16


def candidate_sets(acts: np.ndarray, trait: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    on, off = acts[trait], acts[~trait]
    d = (on.mean(0) - off.mean(0)) / (np.sqrt(0.5 * (on.var(0) + off.var(0))) + 1e-9)
    sets = {
        "signed": np.argsort(-d)[:UNITS],
        "abs": np.argsort(-np.abs(d))[:UNITS],
        "neg": np.argsort(d)[:UNITS],
    }
    rng = np.random.default_rng(seed)
    sets.update({f"random{r}": rng.permutation(acts.shape[1])[:UNITS] for r in range(4)})
    return sets


def check(activation: str, seed: int, steps: int, out: Path) -> None:
    scenario = parse_scenario(
        {
            "name": f"design_{activation}",
            "seeds": [seed],
            "pretrain_steps": steps,
            "env": {"id": "marlmod/gathering-v0", "bonus": 1.0, "trait": "attack"},
            "network": {"hidden": [64, 64], "activation": activation},
            "retrain": {"steps": 1},
            "evaluation": {"episodes": 32},
            "record_episodes": 32,
        }
    )
    run = SeedRun(scenario, seed, out / scenario.name)
    path, before = run.pretrained("pretrain")
    print(f"{activation} seed {seed}: before pruning {before}")
    for layer in scenario.network.policy_layers:
        model = load_model(path, scenario, run.cooperative, seed)
        rec = rollout(
            model.policy, run.aggressive, 32, RECORD_SEED_OFFSET + seed, "attack", record=[layer]
        )
        results = []
        for name, units in candidate_sets(rec.activations[layer], rec.trait, seed).items():
            model = load_model(path, scenario, run.cooperative, seed)
            prune = Prune(name, layer, UNITS / 64, tuple(int(u) for u in units))
            apply_masks(model.policy, unit_masks(model.policy, prune))
            metrics = run.evaluate(model)
            results.append(f"{name}: {metrics.trait_rate:.3f}/{metrics.task_return:.1f}")
        print(f"  {layer}: " + "  ".join(results), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/design_checks"))
    args = parser.parse_args()
    limit_threads()
    for activation in ("tanh", "relu"):
        check(activation, args.seed, args.steps, args.out)


if __name__ == "__main__":
    main()
