"""The locate stage: score a layer's units with a registered strategy, then choose the top ones.

The strategies themselves — what each reads, which layers it can rank, its scoring function —
are in ``marlmod.strategies`` (the registry: ``marlmod.strategies.registry.STRATEGIES``); the
evidence they read is ``marlmod.strategies.evidence.Evidence``. Choosing the top units is kept
separate from applying a prune (``marlmod.prune``).
"""

from __future__ import annotations

import numpy as np

from marlmod.errors import MarlmodError
from marlmod.layers import layer_kind
from marlmod.strategies.evidence import Evidence
from marlmod.strategies.registry import STRATEGIES, unknown_strategy


def score_units(strategy: str, ev: Evidence, rng: np.random.Generator) -> np.ndarray:
    """One float64 score per unit of ``ev`` by ``strategy`` (higher = prune first).

    A strategy that cannot rank ``ev.layer``'s kind is refused with the registry's reason (the
    config refuses it at load already; this guards direct calls).
    """
    if strategy not in STRATEGIES:
        raise MarlmodError(unknown_strategy(strategy))
    spec = STRATEGIES[strategy]
    if ev.layer is not None and (refusal := spec.refusal(layer_kind(ev.layer))):
        raise MarlmodError(f"strategy {strategy!r} {refusal}")
    scores = np.asarray(spec.load()(ev, rng), dtype=np.float64)
    if scores.shape != (ev.units,):
        raise ValueError(f"strategy {strategy!r} returned {scores.shape}, not ({ev.units},)")
    return scores


def top_units(scores: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of the ``round(fraction × units)`` highest-scoring units (at least one), sorted."""
    k = max(1, int(round(fraction * len(scores))))
    order = np.argsort(-scores, kind="stable")
    return np.sort(order[:k])
