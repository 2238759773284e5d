"""marlmod's MLP policies as plain functions of their parameters.

Why: on 64-wide MLPs, calling the policy's ``nn.Module`` tree and building a
``torch.distributions.Categorical`` per rollout step costs more than the arithmetic. Written as
functions over the parameter list, the same operations run in the same order (so the rollout
stays bitwise SB3's, ``tests/test_lean_ppo.py``), and ``torch.compile`` can trace them
(``marlmod.compiled_update``) with one graph per architecture rather than per model.

Only plain Linear/activation MLPs without module hooks qualify (``functional``): a forward hook —
gradient routing's, or an activation recorder — must see the forward pass, so such policies keep
their modules.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import FlattenExtractor
from torch import nn
from torch.nn import functional as F

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
) -> tuple[torch.Tensor, torch.Tensor]:
    """State values ``(N,)`` and normalised action log-probabilities ``(N, A)``: the operations of
    ``ActorCriticPolicy.forward`` and of ``Categorical(logits=...)``'s normalisation."""
    pi_acts, vf_acts = arch
    n_pi, n_vf = 2 * len(pi_acts), 2 * len(vf_acts)
    features = obs.float().flatten(1)
    latent_pi = _mlp(features, params[:n_pi], pi_acts)
    latent_vf = _mlp(features, params[n_pi : n_pi + n_vf], vf_acts)
    logits = F.linear(latent_pi, params[n_pi + n_vf], params[n_pi + n_vf + 1])
    values = F.linear(latent_vf, params[n_pi + n_vf + 2], params[n_pi + n_vf + 3]).flatten()
    return values, logits - logits.logsumexp(-1, keepdim=True)


def sample_actions(log_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions drawn as ``Categorical(logits=log_probs).sample()`` draws them (same random
    numbers, same result), and their log-probabilities."""
    actions = torch.multinomial(F.softmax(log_probs, -1), 1, True)
    return actions.squeeze(-1), log_probs.gather(-1, actions).squeeze(-1)
