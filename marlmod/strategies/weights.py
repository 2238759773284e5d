"""Strategies that read the policy itself: gradients (attribution) and weights (magnitude).

The magnitude baselines follow standard pruning practice and remove the *least* important units
first (highest score = smallest magnitude): they ask whether an equally large, capability-minded
prune that ignores the trait already changes it. Compare with ``random`` (trait-blind, no care for
capability) and ``activation_magnitude`` (trait-blind, removes the busiest units).
"""

from __future__ import annotations

import numpy as np
import torch

from marlmod.errors import MarlmodError
from marlmod.record import resolve_module
from marlmod.strategies.common import layer_linears, need
from marlmod.strategies.evidence import Evidence
from marlmod.strategies.moments import column_mean, square

ATTRIBUTION_BATCH = 4096


def attribution(ev: Evidence, rng: np.random.Generator) -> np.ndarray:
    """Gradient × activation of log π(a | s) with respect to the layer's units, averaged over
    trait rows, where a is the action the policy took on that row.

    A first-order estimate of how much zeroing each unit would lower the log-probability of the
    misbehaving action on exactly the steps where it misbehaved: h·∂logπ/∂h ≈ logπ(h) − logπ(0)
    for that unit. Positive = the unit pushes towards the trait action, so pruning it should
    suppress the trait. Activations are recomputed from ``ev.obs`` (not taken from ``ev.acts``) so
    the gradient and the activation come from the same forward pass.
    """
    policy = need(ev, "policy", "attribution")
    module = resolve_module(policy, need(ev, "layer", "attribution"))
    obs = need(ev, "obs", "attribution")
    actions = need(ev, "actions", "attribution")
    trait = ev.trait.astype(bool)
    if not trait.any():
        raise MarlmodError("attribution needs trait rows; the trait never occurred")
    obs, actions = obs[trait], np.asarray(actions)[trait]
    captured: list[torch.Tensor] = []

    def leaf(_mod: torch.nn.Module, _inp: object, out: torch.Tensor) -> torch.Tensor:
        out = out.detach().requires_grad_(True)  # a leaf: gradients flow to it, not to weights
        captured.append(out)
        return out

    total = np.zeros(ev.units)
    handle = module.register_forward_hook(leaf)
    try:
        with torch.enable_grad():
            for start in range(0, len(obs), ATTRIBUTION_BATCH):
                captured.clear()
                stop = start + ATTRIBUTION_BATCH
                obs_t = torch.as_tensor(obs[start:stop], device=policy.device)
                dist = policy.get_distribution(obs_t)
                act_t = torch.as_tensor(actions[start:stop], device=policy.device)
                logp = dist.log_prob(act_t)
                (grad,) = torch.autograd.grad(logp.sum(), captured[0])
                total += (grad * captured[0]).sum(dim=0).detach().cpu().numpy()
    finally:
        handle.remove()
    return total / len(obs)


def _unit_weight_l1(ev: Evidence, strategy: str) -> tuple[np.ndarray, np.ndarray]:
    """Per unit: L1 norm of incoming weights (its row) and of outgoing weights (its column)."""
    producer, consumer = layer_linears(ev, strategy)
    with torch.no_grad():
        incoming = producer.weight.abs().sum(dim=1).cpu().numpy().astype(np.float64)
        outgoing = consumer.weight.abs().sum(dim=0).cpu().numpy().astype(np.float64)
    return incoming, outgoing


def weight_magnitude(ev: Evidence, rng: np.random.Generator) -> np.ndarray:
    """Baseline: standard magnitude pruning at the unit level — the units with the *smallest*
    L1 norm of incoming plus outgoing weights rank first (score = −norm).

    Small-weight units matter least to the network's function, so this is the prune that should
    cost the least capability; if it also cuts the trait, locating was not needed. Biases are
    left out, as in weight-magnitude pruning generally.
    """
    incoming, outgoing = _unit_weight_l1(ev, "weight_magnitude")
    return -(incoming + outgoing)


def wanda(ev: Evidence, rng: np.random.Generator) -> np.ndarray:
    """Baseline: Wanda (Sun et al. 2023) at the unit level, *least* important first.

    Wanda scores a weight by |w| × the L2 norm of its input over calibration data. The weights
    that read a unit are its outgoing column, and their input is the unit's own activation, so a
    unit's score is ‖h_u‖₂ (RMS over the recorded rows) × Σ_i |W_out[i, u]| — the size of what it
    actually sends onward. Returned negated so the smallest contributions are pruned first.
    """
    _, outgoing = _unit_weight_l1(ev, "wanda")
    rms = np.sqrt(column_mean(ev.acts, transform=square))
    return -(rms * outgoing)
