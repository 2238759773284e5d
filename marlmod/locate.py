"""Locating: score each hidden unit by how responsible it looks for the trait.

A strategy maps the *evidence* about one hidden layer — recorded activations ``[rows, units]``,
the trait label of each row, and optionally the opportunity labels, the observations, the policy
itself and the control policy's activations on the same states — to one score per unit
(higher = prune first). Strategies are pure functions registered by name in ``STRATEGIES`` and
selectable in a scenario config; choosing the top units is separate from applying a prune.

The contrast and random baselines live here; the others in ``marlmod.strategies`` (by what they
read) and ``marlmod.clusterability``. ``split_by_trait`` lives in ``strategies.common``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch import nn

from marlmod import clusterability, routing
from marlmod.errors import MarlmodError
from marlmod.strategies import activations, weights
from marlmod.strategies.common import cohens_d, split_by_trait


@dataclass(frozen=True)
class Evidence:
    """Everything a locating strategy may use, for one hidden layer of one pretrained policy.

    Rows are agent-steps of rollouts of the pretrained (misbehaving) policy.
    """

    acts: np.ndarray  # float [rows, units]: the layer's activations
    trait: np.ndarray  # bool [rows]: the trait occurred on this step
    opportunity: np.ndarray | None = None  # bool [rows]: the trait was possible on this step
    obs: np.ndarray | None = None  # float [rows, obs_dim]: the policy's inputs
    actions: np.ndarray | None = None  # int [rows]: the actions taken
    control_acts: np.ndarray | None = None  # float [rows, units]: control policy, same obs
    policy: nn.Module | None = None  # the pretrained policy (for weights and gradients)
    layer: str | None = None  # module path of the layer, under ``policy``
    routed_units: tuple[int, ...] | None = None  # units the trait was routed into (routing)

    def __post_init__(self) -> None:
        if self.acts.ndim != 2 or len(self.acts) != len(self.trait):
            raise ValueError(
                f"activations {self.acts.shape} and labels {self.trait.shape} do not align"
            )

    @property
    def units(self) -> int:
        return self.acts.shape[1]


UnitScorer = Callable[[Evidence, np.random.Generator], np.ndarray]


def standardised_mean_difference(ev: Evidence, rng: np.random.Generator) -> np.ndarray:
    """Cohen's d of each unit: (mean on trait rows − mean off) / pooled std, *signed*.

    Signed on purpose: pruning sets a unit to zero, i.e. "not firing". Removing units that fire
    *for* the trait removes its drive; removing units that are *quiet* during the trait mimics the
    trait state and, measured on the aggression scenario, raises the attack rate several-fold.
    A unit constant in both groups scores 0 rather than dividing by zero.
    """
    return cohens_d(*split_by_trait(ev.acts, ev.trait))


def random_units(ev: Evidence, rng: np.random.Generator) -> np.ndarray:
    """The baseline every locating method must beat: a random order of the units."""
    return rng.permutation(ev.units).astype(np.float64)


STRATEGIES: dict[str, UnitScorer] = {
    "contrast": standardised_mean_difference,
    "random": random_units,
    "selective": activations.selective,
    "opportunity": activations.opportunity,
    "probe": activations.probe,
    "control": activations.control,
    "attribution": weights.attribution,
    "cluster": clusterability.cluster,
    "weight_magnitude": weights.weight_magnitude,
    "wanda": weights.wanda,
    "activation_magnitude": activations.activation_magnitude,
    "routed": routing.routed,
}


# Strategies that read the Linear layers around a hidden layer (weights, graph clusters, routed
# units): the action head has no such pair, so they cannot rank its logits.
HIDDEN_LAYER_ONLY = frozenset({"weight_magnitude", "wanda", "cluster", "routed"})


def score_units(strategy: str, ev: Evidence, rng: np.random.Generator) -> np.ndarray:
    if strategy not in STRATEGIES:
        raise MarlmodError(f"unknown strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    scores = np.asarray(STRATEGIES[strategy](ev, rng), dtype=np.float64)
    if scores.shape != (ev.units,):
        raise ValueError(f"strategy {strategy!r} returned {scores.shape}, not ({ev.units},)")
    return scores


def top_units(scores: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of the ``round(fraction × units)`` highest-scoring units (at least one), sorted."""
    k = max(1, int(round(fraction * len(scores))))
    order = np.argsort(-scores, kind="stable")
    return np.sort(order[:k])
