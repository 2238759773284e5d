"""A uniformly random policy: the floor that capability is measured from.

Task returns have no natural zero: in one game they are apples collected (positive), in another
distances (negative). A ratio of two returns ("capability kept = retrained ÷ reference") is
meaningless when they are negative or near zero. The report therefore measures capability from
a floor — what agents acting uniformly at random earn on the same evaluation episodes — as
``(return − random's) / (reference − random's)`` (``marlmod.report_checks``). This module gives
that policy the one method an evaluation rollout calls.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces


class UniformPolicy:
    """Acts uniformly at random in ``action_space`` (seeded), for every agent slot at once.

    Quacks like an SB3 policy where ``marlmod.rollout.rollout`` needs it (``predict``); it has
    no layers to record.
    """

    def __init__(self, action_space: spaces.Space, seed: int) -> None:
        self.space = action_space
        self.space.seed(seed)

    def predict(
        self, observations: np.ndarray, deterministic: bool = False
    ) -> tuple[np.ndarray, None]:
        return np.array([self.space.sample() for _ in range(len(observations))]), None
