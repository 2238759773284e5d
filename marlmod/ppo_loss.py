"""PPO's loss, written once: SB3's clipped surrogate + value + entropy, and what it logs.

Both of marlmod's own updates call it: ``LeanPPO``'s eager update, bitwise SB3's ``PPO.train``
(``tests/test_lean_ppo.py``), and the compiled step (``marlmod.compiled_update``), which
differentiates it with ``torch.func`` and compiles it. The policy's outputs come in from
``marlmod.functional_policy``, so this module holds the arithmetic of the loss alone.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F

from marlmod.functional_policy import PolicyOutputs, chosen_and_entropy

# What ``ppo_loss``'s statistics hold, in order (the ``train/*`` records SB3 logs from them).
STATS = ("pg", "clip", "value", "entropy", "approx_kl")


class Minibatch(NamedTuple):
    """The rollout samples one PPO step trains on (flat, env-major like SB3's buffer)."""

    observations: torch.Tensor
    actions: torch.Tensor
    old_log_prob: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


def ppo_loss(
    outputs: PolicyOutputs,
    batch: Minibatch,
    clip_range: float | torch.Tensor,
    ent_coef: float,
    vf_coef: float,
    normalize_advantage: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SB3's PPO loss on the policy's ``outputs`` for ``batch`` (advantages normalised per
    minibatch unless ``normalize_advantage`` is off), the operations of ``PPO.train`` in its
    order, and the statistics ``STATS`` names, detached."""
    log_prob, entropy = chosen_and_entropy(outputs.log_probs, batch.actions)
    advantages = batch.advantages
    if normalize_advantage and len(advantages) > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    ratio = torch.exp(log_prob - batch.old_log_prob)
    policy_loss_1 = advantages * ratio
    policy_loss_2 = advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
    policy_loss = -torch.min(policy_loss_1, policy_loss_2).mean()
    value_loss = F.mse_loss(batch.returns, outputs.values)
    entropy_loss = -torch.mean(entropy)
    loss = policy_loss + ent_coef * entropy_loss + vf_coef * value_loss
    log_ratio = log_prob.detach() - batch.old_log_prob
    stats = torch.stack(
        [
            policy_loss.detach(),
            torch.mean((torch.abs(ratio.detach() - 1) > clip_range).float()),
            value_loss.detach(),
            entropy_loss.detach(),
            torch.mean((torch.exp(log_ratio) - 1) - log_ratio),
        ]
    )
    return loss, stats
