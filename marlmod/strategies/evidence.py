"""``Evidence``: everything a locating strategy may read about one layer of one policy.

Its own module so that the strategies, the registry and the pipeline all import it without
importing each other. Plain data: importing it loads NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the policy is only carried here; the strategies that read it import torch
    from torch import nn


@dataclass(frozen=True)
class Evidence:
    """Everything a locating strategy may use, for one hidden layer of one pretrained policy.

    Rows are agent-steps of rollouts of the pretrained (misbehaving) policy. Which optional
    fields a strategy reads is declared by its ``needs`` in ``marlmod.strategies.registry``.
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
