"""Training in chunks with an evaluation after each: the curves of relapse and relearning.

Cooperative retraining, the from-scratch capability bar and the relearning attacks all train a
model for a budget and measure it along the way. They share this one loop, so every curve of a
run has the same shape: a point before any training, then one after each of ``points`` equal
chunks. An optional ``stop`` rule ends training early (early-stopped fine-tuning); the curve then
ends at the point where it stopped.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from stable_baselines3 import PPO
from stable_baselines3.common.type_aliases import MaybeCallback

from marlmod.metrics import Curve, Metrics
from marlmod.train import learn

Evaluate = Callable[[PPO], Metrics]
StopRule = Callable[[Curve], bool]


def chunk_size(steps: int, points: int) -> int:
    """Agent-steps between two evaluations (SB3 rounds each chunk up to whole rollouts)."""
    return max(1, steps // points)


def train_with_curve(
    model: PPO,
    steps: int,
    points: int,
    evaluate: Evaluate,
    callback: MaybeCallback = None,
    log_name: str = "run",
    stop: StopRule | None = None,
) -> Curve:
    """Train ``model`` for ``steps`` agent-steps in ``points`` chunks, evaluating before the first
    and after each; ``stop(curve)`` is asked after every chunk and ends training when true."""
    curve = [evaluate(model).at(0)]
    for i in range(points):
        learn(model, chunk_size(steps, points), callback, continue_run=i > 0, log_name=log_name)
        curve.append(evaluate(model).at(model.num_timesteps))
        if stop is not None and stop(curve):
            break
    return curve


def train_early_stopped(
    model: PPO,
    steps: int,
    points: int,
    evaluate: Evaluate,
    validate: Evaluate,
    callback: MaybeCallback = None,
    log_name: str = "run",
) -> Curve:
    """Fine-tuning with early stopping on the trait: train in ``points`` chunks and stop as soon
    as the trait rate on the *validation* episodes (``validate``, never used for scoring) stops
    falling; the model is then put back to the point before — weights, optimiser state and step
    count — and the curve (measured on the evaluation episodes) ends there.

    The baseline Cloud et al.'s critics found on par with gradient routing: the best any
    fine-tuning schedule could do by watching the trait, with no pruning at all.
    """
    curve = [evaluate(model).at(0)]
    best = validate(model).trait_rate
    kept = snapshot(model)
    for i in range(points):
        learn(model, chunk_size(steps, points), callback, continue_run=i > 0, log_name=log_name)
        trait = validate(model).trait_rate
        if trait >= best:
            break
        best, kept = trait, snapshot(model)
        curve.append(evaluate(model).at(model.num_timesteps))
    restore(model, kept)
    return curve


def snapshot(model: PPO) -> tuple[dict, dict, int]:
    """What ``restore`` needs to put a model back: weights, optimiser state and step count."""
    return (
        copy.deepcopy(model.policy.state_dict()),
        copy.deepcopy(model.policy.optimizer.state_dict()),
        model.num_timesteps,
    )


def restore(model: PPO, kept: tuple[dict, dict, int]) -> None:
    weights, optimiser, steps = kept
    model.policy.load_state_dict(weights)
    model.policy.optimizer.load_state_dict(optimiser)
    model.num_timesteps = steps
