"""The whole method in one file, top to bottom: train a trait in, find it, cut it out, retrain.

`marlmod run` does all of this for many seeds and strategies, with caching, resumption and
statistics (``marlmod.pipeline``). This file calls the same public functions in order, for one
seed, so a reader sees the method itself:

1. build the environment (paid for the trait, and its cooperative variant)
2. train a policy with the bonus, and a control without it
3. record the policy's hidden activations on its own rollouts, with trait labels
4. score every unit of one hidden layer (``contrast``, against ``random``)
5. prune the top units with masks that stay zero during training
6. retrain cooperatively (bonus off)
7. measure the trait and the task return at every step, and print a table

Run from the repository root (a few minutes with the defaults; `--config configs/tiny.yaml`
runs in seconds and means nothing)::

    python examples/walkthrough.py [--config configs/quick.yaml] [--set pretrain_steps=50000]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from marlmod.config import load_scenario
from marlmod.environments import resolve_env
from marlmod.locate import score_units, top_units
from marlmod.metrics import Metrics, measure
from marlmod.prune import HoldMasks, Prune, apply_masks, masks_for
from marlmod.record import activations_on
from marlmod.retrain import train_with_curve
from marlmod.rollout import rollout
from marlmod.strategies.evidence import Evidence
from marlmod.train import build_model, learn, limit_threads, load_model, save_model

# ---------------------------------------------------------------- arguments
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--config", default="configs/quick.yaml", help="a scenario YAML")
parser.add_argument("--set", action="append", default=[], help="KEY.PATH=VALUE, repeatable")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

limit_threads()
scenario = load_scenario(args.config, args.set)  # a typed, validated, frozen config
seed, layer, trait = args.seed, scenario.prune.layer, scenario.env.trait
EVAL_SEED, RECORD_SEED = 10_000 + seed, 20_000 + seed  # fixed episodes: comparisons are paired

# ---------------------------------------------------------------- 1. environments
env = resolve_env(scenario.env)  # checks the env's protocol and that it labels the trait
paid = env.factory(scenario.env.bonus)  # each call makes an env that pays the bonus
cooperative = env.factory(0.0)  # the same game, bonus off: where everything is measured


def evaluate(model) -> Metrics:
    """Trait rate and task return on the same evaluation episodes, in the cooperative game."""
    ev, role = scenario.evaluation, scenario.env.trait_role
    return measure(model.policy, cooperative, ev.episodes, EVAL_SEED, trait, role, ev.deterministic)


# ---------------------------------------------------------------- 2. train, and a control
# One policy shared by every agent, trained with SB3's PPO (``ppo.backend``). The control trains
# on the same budget without the bonus: if it shows the trait as often, nothing was learned.
pretrained = build_model(scenario, paid, seed)
learn(pretrained, scenario.pretrain_steps)
control = build_model(scenario, cooperative, seed)
learn(control, scenario.pretrain_steps)
before, control_metrics = evaluate(pretrained), evaluate(control)
print(f"trait rate: pretrained {before.trait_rate:.4f}, control {control_metrics.trait_rate:.4f}")

# ---------------------------------------------------------------- 3. record activations
# The pretrained policy plays the paid game; a forward hook on ``layer`` records every
# agent-step's activations beside its labels (did the trait occur? could it have?).
deterministic = scenario.evaluation.deterministic
recorded = rollout(
    pretrained.policy, paid, scenario.record_episodes, RECORD_SEED, trait, deterministic, [layer]
)
rows = recorded.rows_of(scenario.env.trait_role)  # agents that can show the trait
evidence = Evidence(
    acts=recorded.activations[layer][rows],
    trait=recorded.trait[rows],
    opportunity=recorded.opportunity[rows],
    obs=recorded.obs[rows],
    actions=recorded.actions[rows],
    control_acts=activations_on(control.policy, layer, recorded.obs[rows]),
    policy=pretrained.policy,
    layer=layer,
)
print(f"recorded {len(evidence.trait)} agent-steps, {int(evidence.trait.sum())} with the trait")

# ---------------------------------------------------------------- 4. score units
# ``contrast``: the signed standardised difference of each unit's activation between trait and
# other steps (units that fire for the trait first). ``random`` is the baseline it must beat.
rng = np.random.default_rng(seed)
chosen = {
    name: top_units(score_units(name, evidence, rng), scenario.prune.fraction)
    for name in ("contrast", "random")
}
for name, units in chosen.items():
    print(f"{name:>8} prunes units {units.tolist()} of {layer}")

# ---------------------------------------------------------------- 5-7. prune, retrain, measure
# Each strategy starts from the same pretrained weights (saved once, loaded per strategy onto
# cooperative envs). Its units' weights are zeroed, and ``HoldMasks`` zeroes them again after
# every optimiser step, so retraining cannot regrow them. "none" is plain fine-tuning.
# Retraining is measured along the way (``retrain.eval_points`` times): the relapse curve.
retrain = scenario.retrain
results = {}
with tempfile.TemporaryDirectory() as tmp:
    checkpoint = Path(tmp) / "pretrained.zip"
    save_model(pretrained, checkpoint)
    for name, units in [("none", None), *chosen.items()]:
        model = load_model(checkpoint, scenario, cooperative, seed)
        masks = None
        if units is not None:
            prune = Prune(name, layer, scenario.prune.fraction, tuple(int(u) for u in units))
            masks = masks_for(model.policy, prune)
            apply_masks(model.policy, masks)
        hold = HoldMasks(masks) if masks else None
        curve = train_with_curve(model, retrain.steps, retrain.eval_points, evaluate, hold)
        results[name] = curve  # curve[0]: right after pruning; curve[-1]: after retraining

# ---------------------------------------------------------------- the table
print(f"\nseed {seed}; trait = {trait!r} per agent-step; task return per agent per episode")
print(f"{'strategy':<10}{'before':>8}{'pruned':>8}{'retrained':>10}{'task return':>12}  relapse")
for name, curve in results.items():
    relapse = " → ".join(f"{point.trait_rate:.3f}" for point in curve)
    print(
        f"{name:<10}{before.trait_rate:>8.4f}{curve[0].trait_rate:>8.4f}"
        f"{curve[-1].trait_rate:>10.4f}{curve[-1].task_return:>12.2f}  {relapse}"
    )
