"""Opt-in faster PPO updates (``ppo.compile``): a compiled loss and Adam's fused kernel.

Why: after ``LeanPPO`` removed SB3's Python bookkeeping, most of an update on marlmod's 64-wide
MLPs is PyTorch's per-operation overhead — dozens of tiny kernels and autograd nodes per
minibatch. ``torch.compile`` fuses the loss's forward and backward into a few generated C++
kernels, and Adam's ``fused`` implementation updates every parameter in one kernel.

The price: the arithmetic is reordered, so weights are no longer bitwise SB3's (they differ from
the first update in the last float bits, and trajectories diverge from there). Whether learning
is unchanged is measured, not assumed: ``benchmarks/learning_quality.py`` with a ``+compile``
setting (README, "Benchmarks"). It needs a C++ compiler at run time (``torch.compile``'s CPU
backend).

The loss is written functionally over the policy's parameters, so one compiled graph per process
serves every model of the same architecture (no recompiling per loaded checkpoint). Only plain
MLP policies without module hooks qualify (``compilable``): gradient routing's hook, for one,
must see the forward pass, so routed pretraining keeps the eager loss.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import FlattenExtractor
from torch import nn
from torch.nn import functional as F

from marlmod.errors import MarlmodError

ACTIVATIONS: dict[type[nn.Module], str] = {nn.ReLU: "relu", nn.Tanh: "tanh"}
Architecture = tuple[tuple[str, ...], tuple[str, ...]]  # activations of the policy and value MLPs


def architecture(policy: ActorCriticPolicy) -> Architecture | None:
    """The activations of a plain Linear/activation MLP policy, or None if it is anything else."""
    if not isinstance(policy.features_extractor, FlattenExtractor):
        return None
    nets = []
    for net in (policy.mlp_extractor.policy_net, policy.mlp_extractor.value_net):
        layers = list(net)
        linears, activations = layers[0::2], layers[1::2]
        if len(linears) != len(activations) or not all(isinstance(m, nn.Linear) for m in linears):
            return None
        names = tuple(ACTIVATIONS.get(type(m), "") for m in activations)
        if "" in names:
            return None
        nets.append(names)
    return nets[0], nets[1]


@functools.cache
def cpp_compiler() -> str | None:
    """The C++ compiler ``torch.compile``'s CPU backend would use, or None if it finds none."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        return get_cpp_compiler()
    except Exception:  # no compiler, or a PyTorch that moved this helper
        return None


def has_hooks(module: nn.Module) -> bool:
    """Whether any submodule has a forward (pre-)hook the functional loss would bypass."""
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())


def compilable(policy: ActorCriticPolicy) -> bool:
    """Whether ``ppo_loss`` computes exactly what this policy's own forward pass would."""
    return architecture(policy) is not None and not has_hooks(policy)


def parameters_in_order(policy: ActorCriticPolicy) -> list[nn.Parameter]:
    """Weights and biases in the order ``ppo_loss`` reads them."""
    linears = [m for m in policy.mlp_extractor.policy_net if isinstance(m, nn.Linear)]
    linears += [m for m in policy.mlp_extractor.value_net if isinstance(m, nn.Linear)]
    linears += [policy.action_net, policy.value_net]
    return [p for linear in linears for p in (linear.weight, linear.bias)]


def _mlp(x: torch.Tensor, params: Sequence[torch.Tensor], activations: tuple[str, ...]):
    for i, name in enumerate(activations):
        x = F.linear(x, params[2 * i], params[2 * i + 1])
        x = torch.relu(x) if name == "relu" else torch.tanh(x)
    return x


def ppo_loss(
    params: list[torch.Tensor],
    obs: torch.Tensor,
    actions: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    arch: Architecture,
    clip_range: float,
    ent_coef: float,
    vf_coef: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SB3's PPO loss (clipped surrogate + value + entropy, advantages normalised per minibatch)
    and its logged statistics ``[policy, clip fraction, value, entropy, approx KL]``."""
    pi_acts, vf_acts = arch
    n_pi, n_vf = 2 * len(pi_acts), 2 * len(vf_acts)
    features = obs.float().flatten(1)
    latent_pi = _mlp(features, params[:n_pi], pi_acts)
    latent_vf = _mlp(features, params[n_pi : n_pi + n_vf], vf_acts)
    logits = F.linear(latent_pi, params[n_pi + n_vf], params[n_pi + n_vf + 1])
    values = F.linear(latent_vf, params[n_pi + n_vf + 2], params[n_pi + n_vf + 3]).flatten()
    log_probs = logits - logits.logsumexp(-1, keepdim=True)
    log_prob = log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    entropy = -(log_probs * log_probs.exp()).sum(-1)
    if len(advantages) > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    log_ratio = log_prob - old_log_prob
    ratio = torch.exp(log_ratio)
    clipped = torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
    policy_loss = -torch.min(advantages * ratio, advantages * clipped).mean()
    value_loss = F.mse_loss(returns, values)
    entropy_loss = -entropy.mean()
    loss = policy_loss + ent_coef * entropy_loss + vf_coef * value_loss
    stats = torch.stack(
        [
            policy_loss,
            ((ratio - 1).abs() > clip_range).float().mean(),
            value_loss,
            entropy_loss,
            ((ratio - 1) - log_ratio).mean(),
        ]
    ).detach()
    return loss, stats


@functools.cache
def compiled_ppo_loss() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """``ppo_loss`` compiled once per process (recompiled only for a new shape or constant)."""
    return torch.compile(ppo_loss, fullgraph=True, dynamic=False)


def use_fused_adam(optimizer: torch.optim.Optimizer) -> None:
    """Switch an Adam to its single-kernel implementation (same maths, other rounding)."""
    if not isinstance(optimizer, torch.optim.Adam):
        raise MarlmodError(f"ppo.compile needs an Adam optimiser, got {type(optimizer).__name__}")
    for group in optimizer.param_groups:
        group["foreach"], group["fused"] = False, True
