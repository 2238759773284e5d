"""The ``routed`` strategy: the units gradient routing trained the trait into rank first.

Routing itself — route codes, the routed rollout buffer, the gradient-masking hook — is
``marlmod.routing``; which units it designates is ``marlmod.routing.designated_units``, handed
over as ``Evidence.routed_units`` by ``SeedRun.evidence``.
"""

from __future__ import annotations

import numpy as np

from marlmod.errors import MarlmodError
from marlmod.strategies.common import need
from marlmod.strategies.evidence import Evidence


def routed(ev: Evidence, rng: np.random.Generator) -> np.ndarray:
    """Locating strategy for a routed policy: the units the trait was routed into rank first.

    Nothing is inferred from activations: training put the trait there, so a prune of the
    routed fraction removes exactly ``ev.routed_units``. Among the rest, units are ordered by
    index, which never matters at the matched fraction.
    """
    units = need(ev, "routed_units", "routed")
    if len(units) and max(units) >= ev.units:
        raise MarlmodError(f"routed unit {max(units)} is outside a layer of {ev.units} units")
    scores = -np.arange(ev.units, dtype=np.float64) / ev.units  # in (-1, 0]: index tie-break
    scores[list(units)] += 2.0
    return scores
