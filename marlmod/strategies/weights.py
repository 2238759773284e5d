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
from marlmod.layers import ACTION_HEAD
from marlmod.record import policy_input, resolve_module
from marlmod.strategies.common import incoming_l1, layer_slices, need, outgoing_l1
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
    the gradient and the activation come from the same forward pass. A conv channel's score sums
    h·∂logπ/∂h over its positions: the first-order effect of zeroing the whole channel. Over
    ``all_hidden`` every layer's units are scored in one backward pass, each through the layers
    after it.
    """
    policy = need(ev, "policy", "attribution")
    paths = [s.path for s in layer_slices(ev, "attribution")] if _wired(ev) else [ev.layer]
    modules = [resolve_module(policy, path) for path in paths]
    obs = need(ev, "obs", "attribution")
    actions = need(ev, "actions", "attribution")
    trait = ev.trait.astype(bool)
    if not trait.any():
        raise MarlmodError("attribution needs trait rows; the trait never occurred")
    obs, actions = obs[trait], np.asarray(actions)[trait]
    captured: list[torch.Tensor] = []

    def keep(_mod: torch.nn.Module, _inp: object, out: torch.Tensor) -> torch.Tensor:
        if not out.requires_grad:  # frozen weights: make it a leaf that gradients flow to
            out = out.detach().requires_grad_(True)
        captured.append(out)
        return out

    total = np.zeros(ev.units)
    handles = [module.register_forward_hook(keep) for module in modules]
    try:
        with torch.enable_grad():
            for start in range(0, len(obs), ATTRIBUTION_BATCH):
                captured.clear()
                stop = start + ATTRIBUTION_BATCH
                dist = policy.get_distribution(policy_input(policy, obs[start:stop]))
                act_t = torch.as_tensor(actions[start:stop], device=policy.device)
                logp = dist.log_prob(act_t)
                grads = torch.autograd.grad(logp.sum(), captured)
                total += np.concatenate(
                    [_per_unit_sum(g * h) for g, h in zip(grads, captured, strict=True)]
                )
    finally:
        for handle in handles:
            handle.remove()
    return total / len(obs)


def _wired(ev: Evidence) -> bool:
    """Whether ``ev.layer`` is a hidden or conv layer (or all hidden ones), not the head."""
    return ev.layer != ACTION_HEAD


def _per_unit_sum(x: torch.Tensor) -> np.ndarray:
    """Sum over rows — and over positions, for a conv layer's ``[rows, channels, H, W]``."""
    return x.sum(dim=(0, 2, 3) if x.dim() == 4 else 0).detach().cpu().numpy()


def _unit_weight_l1(ev: Evidence, strategy: str) -> tuple[np.ndarray, np.ndarray]:
    """Per unit: L1 norm of incoming weights (its row or kernel) and of outgoing weights (all
    that read it), over every layer the evidence spans."""
    slices = layer_slices(ev, strategy)
    incoming = np.concatenate([incoming_l1(s.producer) for s in slices])
    outgoing = np.concatenate([outgoing_l1(s.producer, s.consumer) for s in slices])
    return incoming, outgoing


def weight_magnitude(ev: Evidence, rng: np.random.Generator) -> np.ndarray:
    """Baseline: standard magnitude pruning at the unit level — the units with the *smallest*
    L1 norm of incoming plus outgoing weights rank first (score = −norm).

    Small-weight units matter least to the network's function, so this is the prune that should
    cost the least capability; if it also cuts the trait, locating was not needed. Biases are
    left out, as in weight-magnitude pruning generally. A conv channel's norm is that of its
    kernel and of every weight reading it; over ``all_hidden`` the norms are ranked jointly, as
    global magnitude pruning does.
    """
    incoming, outgoing = _unit_weight_l1(ev, "weight_magnitude")
    return -(incoming + outgoing)


def wanda(ev: Evidence, rng: np.random.Generator) -> np.ndarray:
    """Baseline: Wanda (Sun et al. 2023) at the unit level, *least* important first.

    Wanda scores a weight by |w| × the L2 norm of its input over calibration data. The weights
    that read a unit are its outgoing column, and their input is the unit's own activation, so a
    unit's score is ‖h_u‖₂ (RMS over the recorded rows) × Σ_i |W_out[i, u]| — the size of what it
    actually sends onward. Returned negated so the smallest contributions are pruned first. For a
    conv channel h_u is the recorded spatial mean, and the sum is over every weight reading it.
    """
    _, outgoing = _unit_weight_l1(ev, "wanda")
    rms = np.sqrt(column_mean(ev.acts, transform=square))
    return -(rms * outgoing)
