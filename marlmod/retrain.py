"""Training in chunks with an evaluation after each: the curves of relapse and relearning.

Cooperative retraining, the from-scratch capability bar and the relearning attacks all train a
model for a budget and measure it along the way. They share this one loop, so every curve of a
run has the same shape: a point before any training, then one after each of ``points`` chunks —
equal ones (``linear``), or each as long as all before it (``geometric``: points at 1/2^k of the
budget, dense early, where relapse and relearning move fastest). Early-stopped fine-tuning
(``train_early_stopped``) ends at the point where the trait stopped falling.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Literal

from stable_baselines3 import PPO
from stable_baselines3.common.type_aliases import MaybeCallback

from marlmod.metrics import Curve, Metrics
from marlmod.train import learn

Evaluate = Callable[[PPO], Metrics]
Spacing = Literal["linear", "geometric"]


def chunk_sizes(steps: int, points: int, spacing: Spacing = "linear") -> list[int]:
    """Agent-steps of training before each evaluation (SB3 rounds each up to whole rollouts).

    ``geometric`` ends the chunks at ``steps / 2^(points - i)``: e.g. 25k, 50k, 100k and 200k of a
    200k budget in 4 points, which are also the retraining budgets of 5-40% of a 500k pretraining
    that the report's budget table reads off the curves.
    """
    if spacing == "linear":
        return [max(1, steps // points)] * points
    ends = [round(steps * 2.0 ** (i - points)) for i in range(1, points + 1)]
    return [max(1, end - start) for start, end in zip([0, *ends[:-1]], ends, strict=True)]


def train_with_curve(
    model: PPO,
    steps: int,
    points: int,
    evaluate: Evaluate,
    callback: MaybeCallback = None,
    log_name: str = "run",
    spacing: Spacing = "linear",
) -> Curve:
    """Train ``model`` for ``steps`` agent-steps in ``points`` chunks, evaluating before the first
    and after each."""
    curve = [evaluate(model).at(0)]
    for i, chunk in enumerate(chunk_sizes(steps, points, spacing)):
        learn(model, chunk, callback, continue_run=i > 0, log_name=log_name)
        curve.append(evaluate(model).at(model.num_timesteps))
    return curve


def train_early_stopped(
    model: PPO,
    steps: int,
    points: int,
    evaluate: Evaluate,
    validate: Evaluate,
    callback: MaybeCallback = None,
    log_name: str = "run",
    spacing: Spacing = "linear",
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
    for i, chunk in enumerate(chunk_sizes(steps, points, spacing)):
        learn(model, chunk, callback, continue_run=i > 0, log_name=log_name)
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
