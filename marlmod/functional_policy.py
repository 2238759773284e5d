"""The policy's forward pass, written once: values and action log-probabilities of a batch.

Why: on 64-wide MLPs, calling the policy's ``nn.Module`` tree and building a
``torch.distributions.Categorical`` per call costs more than the arithmetic. ``policy_outputs``
runs the same operations in the same order as ``ActorCriticPolicy`` and ``Categorical`` as plain
functions of the parameter list, so it is bitwise SB3's — values, log-probabilities, entropy and
their gradients (``tests/test_lean_ppo.py``) — and ``torch.compile`` can trace it with one graph
per architecture rather than per model (``marlmod.compiled_update``). ``LeanPPO``'s rollouts, its
update and the compiled step all read the policy through it, and evaluation episodes
(``marlmod.rollout``) act through ``action_log_probs``, its policy half.

Only plain Linear/activation MLPs qualify (``architecture``). A forward hook — gradient
routing's, or an activation recorder — must see the pass through the modules, so a hooked policy
is read through ``module_outputs`` instead: the same operations, called on the modules.
``forward_of`` makes that choice, in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import FlattenExtractor
from torch import nn
from torch.nn import functional as F

ACTIVATIONS: dict[type[nn.Module], str] = {nn.ReLU: "relu", nn.Tanh: "tanh"}
Architecture = tuple[tuple[str, ...], tuple[str, ...]]  # activations of the policy and value MLPs


class PolicyOutputs(NamedTuple):
    """State values ``(N,)`` and normalised action log-probabilities ``(N, A)``."""

    values: torch.Tensor
    log_probs: torch.Tensor


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


def has_hooks(module: nn.Module) -> bool:
    """Whether any submodule has a forward (pre-)hook a functional pass would bypass."""
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())


def functional(policy: ActorCriticPolicy) -> bool:
    """Whether ``policy_outputs`` computes exactly what this policy's own forward pass would."""
    return architecture(policy) is not None and not has_hooks(policy)


def parameters_in_order(policy: ActorCriticPolicy) -> list[nn.Parameter]:
    """Weights and biases in the order ``policy_outputs`` reads them."""
    linears = [m for m in policy.mlp_extractor.policy_net if isinstance(m, nn.Linear)]
    linears += [m for m in policy.mlp_extractor.value_net if isinstance(m, nn.Linear)]
    linears += [policy.action_net, policy.value_net]
    return [p for linear in linears for p in (linear.weight, linear.bias)]


def _mlp(x: torch.Tensor, params: Sequence[torch.Tensor], activations: tuple[str, ...]):
    for i, name in enumerate(activations):
        x = F.linear(x, params[2 * i], params[2 * i + 1])
        x = torch.relu(x) if name == "relu" else torch.tanh(x)
    return x


def policy_outputs(
    params: Sequence[torch.Tensor], obs: torch.Tensor, arch: Architecture
) -> PolicyOutputs:
    """The operations of ``ActorCriticPolicy.forward`` and of ``Categorical(logits=...)``'s
    normalisation, on the parameters ``parameters_in_order`` lists."""
    pi_acts, vf_acts = arch
    n_pi, n_vf = 2 * len(pi_acts), 2 * len(vf_acts)
    features = obs.float().flatten(1)
    latent_pi = _mlp(features, params[:n_pi], pi_acts)
    latent_vf = _mlp(features, params[n_pi : n_pi + n_vf], vf_acts)
    logits = F.linear(latent_pi, params[n_pi + n_vf], params[n_pi + n_vf + 1])
    values = F.linear(latent_vf, params[n_pi + n_vf + 2], params[n_pi + n_vf + 3])
    return PolicyOutputs(values.flatten(), normalised(logits))


def action_log_probs(
    params: Sequence[torch.Tensor], obs: torch.Tensor, arch: Architecture
) -> torch.Tensor:
    """``policy_outputs``' log-probabilities alone: the operations of
    ``ActorCriticPolicy.get_distribution``, which acting (``predict``) runs, without the value
    net it never reads."""
    pi_acts, vf_acts = arch
    n_pi, n_vf = 2 * len(pi_acts), 2 * len(vf_acts)
    latent_pi = _mlp(obs.float().flatten(1), params[:n_pi], pi_acts)
    return normalised(F.linear(latent_pi, params[n_pi + n_vf], params[n_pi + n_vf + 1]))


def module_outputs(policy: ActorCriticPolicy, obs: torch.Tensor) -> PolicyOutputs:
    """``policy_outputs`` through the policy's modules, so their forward hooks see the pass."""
    features = policy.features_extractor(obs.float())
    latent_pi = policy.mlp_extractor.forward_actor(features)
    latent_vf = policy.mlp_extractor.forward_critic(features)
    logits = policy.action_net(latent_pi)
    return PolicyOutputs(policy.value_net(latent_vf).flatten(), normalised(logits))


def forward_of(policy: ActorCriticPolicy) -> Callable[[torch.Tensor], PolicyOutputs]:
    """The policy's outputs as a function of observations: functional where that is exact,
    through the modules while a hook is on them. Choose again after hooks come or go."""
    arch = architecture(policy)
    if arch is None or has_hooks(policy):
        return lambda obs: module_outputs(policy, obs)
    params = parameters_in_order(policy)
    return lambda obs: policy_outputs(params, obs, arch)


def normalised(logits: torch.Tensor) -> torch.Tensor:
    """Log-probabilities from logits, as ``Categorical(logits=...)`` normalises them."""
    return logits - logits.logsumexp(-1, keepdim=True)


def chosen_and_entropy(
    log_probs: torch.Tensor, actions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The log-probabilities of ``actions`` and the distribution's entropy, computed as
    ``Categorical.log_prob`` and ``Categorical.entropy`` compute them (same operations in the
    same order, so the same values and, through the same autograd graph, the same gradients)."""
    index, log_pmf = torch.broadcast_tensors(actions.long().unsqueeze(-1), log_probs)
    chosen = log_pmf.gather(-1, index[..., :1]).squeeze(-1)
    clamped = torch.clamp(log_probs, min=torch.finfo(log_probs.dtype).min)
    entropy = -(clamped * F.softmax(log_probs, -1)).sum(-1)
    return chosen, entropy


def probabilities(log_probs: torch.Tensor) -> torch.Tensor:
    """The action probabilities, as ``Categorical(logits=log_probs).probs`` computes them (a
    softmax, not ``exp``: the two differ in the last bits, and so, rarely, in a draw)."""
    return F.softmax(log_probs, -1)


def most_likely_actions(log_probs: torch.Tensor) -> torch.Tensor:
    """Actions as SB3's ``CategoricalDistribution.mode`` picks them: the argmax of the
    probabilities (not of the log-probabilities, which could differ where probabilities tie
    after rounding)."""
    return torch.argmax(probabilities(log_probs), dim=1)


def sample_actions(log_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions drawn as ``Categorical(logits=log_probs).sample()`` draws them (same random
    numbers, same result), and their log-probabilities."""
    actions = torch.multinomial(probabilities(log_probs), 1, True)
    return actions.squeeze(-1), log_probs.gather(-1, actions).squeeze(-1)
