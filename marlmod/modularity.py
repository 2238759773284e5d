"""Modularity-inducing training: a wiring cost that makes the policy net more clusterable.

Module pruning assumes the trait lives in a module, but ordinary trained MLPs are barely more
clusterable than chance (Filan et al. 2021). Brain-inspired modular training (Liu et al. 2023)
places each layer's units on a line and charges every weight ``λ × |w| × distance`` between the
two units it connects: short connections are cheap, so the net wires itself into local groups
that spectral clustering can find.

We apply the cost as a proximal step after every optimiser step (the public
``optimizer.register_step_post_hook``, the mechanism ``HoldMasks`` uses):
``w ← sign(w) · max(|w| − lr · λ · d, 0)``. Soft-thresholding sets weights exactly to zero, which
a gradient penalty under Adam never does, and it leaves the PPO loss untouched. Under Adam a
parameter moves about ``lr`` per step whatever its gradient's scale, so ``λ · d ≈ 1`` makes the
shrink as large as a typical update: useful values of ``λ`` are around 0.01–1, not 1e-4.

Positions: unit ``i`` of a layer of ``n`` sits at ``i / (n − 1)`` (0 for a single unit), so every
layer spans [0, 1] and the distance between layers' units is ``|x_out − x_in|``. Connections
between units at the same position (e.g. the first unit of every layer) cost nothing: the cost
is purely about wiring length, not plain L1 (which Filan et al. found makes nets *less*
clusterable).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from marlmod.clusterability import POLICY_NET, policy_linear_paths
from marlmod.record import resolve_module
from marlmod.step_hooks import AfterEachStep


def positions(n: int) -> torch.Tensor:
    """Unit positions on [0, 1] for a layer of ``n`` units."""
    return torch.linspace(0.0, 1.0, n) if n > 1 else torch.zeros(1)


def wiring_lengths(out_features: int, in_features: int) -> torch.Tensor:
    """``[out, in]`` distances between the units a Linear's weights connect (torch layout)."""
    return (positions(out_features)[:, None] - positions(in_features)[None, :]).abs()


@torch.no_grad()
def soft_threshold(weight: torch.Tensor, amount: torch.Tensor) -> None:
    """In place: shrink each |w| by ``amount`` (elementwise), stopping at zero."""
    weight.copy_(weight.sign() * (weight.abs() - amount).clamp_min(0.0))


@torch.no_grad()
def wiring_cost(linears: list[nn.Linear]) -> float:
    """Σ |w| × distance over ``linears``: the quantity the proximal step decreases."""
    return float(sum((m.weight.abs() * wiring_lengths(*m.weight.shape)).sum() for m in linears))


class WiringCost(AfterEachStep):
    """Charge the policy net's weights ``strength × |w| × wiring length`` during ``learn``.

    Covers every Linear of ``net`` including the action head (the layers clusterability scores).
    The shrink uses each parameter group's current learning rate, so a schedule is respected.
    """

    def __init__(self, strength: float, net: str = POLICY_NET) -> None:
        super().__init__()
        if strength < 0:
            raise ValueError(f"wiring cost strength must be >= 0, got {strength}")
        self.strength, self.net = strength, net

    def prepare(self, policy: nn.Module) -> Callable[[], None]:
        linears = linears_of(policy, self.net)
        lengths = [wiring_lengths(*m.weight.shape) for m in linears]
        lr_of = {id(p): g for g in policy.optimizer.param_groups for p in g["params"]}

        def shrink() -> None:
            for module, length in zip(linears, lengths, strict=True):
                lr = lr_of[id(module.weight)]["lr"]
                soft_threshold(module.weight, lr * self.strength * length)

        return shrink


def linears_of(policy: nn.Module, net: str = POLICY_NET) -> list[nn.Linear]:
    """The Linear layers of ``net`` and its head, input → output."""
    return [resolve_module(policy, p) for p in policy_linear_paths(policy, net)]


def zero_fraction(policy: nn.Module, net: str = POLICY_NET) -> float:
    """Share of ``net``'s weights that are exactly zero (soft-thresholding makes real zeros)."""
    weights = [m.weight.detach().numpy().ravel() for m in linears_of(policy, net)]
    return float(np.mean(np.concatenate(weights) == 0))
