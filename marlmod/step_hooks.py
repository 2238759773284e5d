"""Callbacks that act on the policy after *every* optimiser step of ``model.learn``.

Holding pruned weights at zero and applying a proximal wiring cost both have to run after each
gradient step, not between rollouts; SB3 has no such callback event, so this uses the optimiser's
public ``register_step_post_hook`` and removes the hook when training ends.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn


class AfterEachStep(BaseCallback):
    """Base: ``prepare(policy)`` runs once at training start and returns the per-step action."""

    def __init__(self) -> None:
        super().__init__()
        self._handle: torch.utils.hooks.RemovableHandle | None = None

    def prepare(self, policy: nn.Module) -> Callable[[], None]:
        raise NotImplementedError

    def _on_training_start(self) -> None:
        policy = self.model.policy
        action = self.prepare(policy)
        self._handle = policy.optimizer.register_step_post_hook(lambda *_: action())

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
