"""Training in chunks with an evaluation after each: the curves of relapse and relearning.

Cooperative retraining, the from-scratch capability bar and the relearning attacks all train a
model for a budget and measure it along the way. They share this one loop, so every curve of a
run has the same shape: a point before any training, then one after each of ``points`` equal
chunks. An optional ``stop`` rule ends training early (early-stopped fine-tuning); the curve then
ends at the point where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable

from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

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
    callback: BaseCallback | None = None,
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
