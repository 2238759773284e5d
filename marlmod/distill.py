"""Distillation: a pruned policy's behaviour copied into a freshly initialised network.

Why: in unlearning work, distilling an edited model into a fresh (or noised) network made the
removal durable where fine-tuning the edited model itself let the removed skill return (Lee et
al. 2025, "Distillation robustifies unlearning"). The fresh student inherits what the pruned
teacher *does*, not the weights where the trait may still be latent. Here the teacher is the
pretrained policy with a cell's prune applied; it acts in the cooperative env, and the student
learns its action distribution (KL) and its values (MSE) on the states it visits. The student
then goes through the same cooperative retraining as every other cell (``<strategy>~distilled``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from stable_baselines3 import PPO
from torch.nn import functional as F

from marlmod.config import DistillConfig


@dataclass(frozen=True)
class Targets:
    """What the teacher did on the states it visited: inputs, action log-probs and values."""

    obs: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor


def teacher_targets(teacher: PPO, rollout_steps: int, seed: int) -> Targets:
    """Let the teacher act (sampled actions) on its own envs for ``rollout_steps`` agent-steps
    and record its action distribution and value on every state."""
    env = teacher.get_env()
    env.seed(seed)
    obs = env.reset()
    torch.manual_seed(seed)
    rows: list[np.ndarray] = []
    while sum(len(r) for r in rows) < rollout_steps:
        rows.append(np.asarray(obs, dtype=np.float32).reshape(env.num_envs, *obs.shape[1:]))
        actions, _ = teacher.policy.predict(obs, deterministic=False)
        obs, *_ = env.step(actions)
    states = torch.as_tensor(np.concatenate(rows)[:rollout_steps])
    log_probs, values = policy_outputs(teacher, states)
    return Targets(states, log_probs.detach(), values.detach())


def policy_outputs(model: PPO, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised action log-probabilities and state values of ``model``'s policy."""
    policy = model.policy
    if policy.share_features_extractor:
        features = policy.extract_features(obs, policy.pi_features_extractor)
        latent_pi, latent_vf = policy.mlp_extractor(features)
    else:  # a CNN policy: the value net reads its own conv stack (marlmod.cnn)
        pi_features, vf_features = policy.extract_features(obs)
        latent_pi = policy.mlp_extractor.forward_actor(pi_features)
        latent_vf = policy.mlp_extractor.forward_critic(vf_features)
    logits = policy.action_net(latent_pi)
    return F.log_softmax(logits, dim=-1), policy.value_net(latent_vf).flatten()


def distill(teacher: PPO, student: PPO, cfg: DistillConfig, seed: int) -> dict[str, float]:
    """Train ``student``'s policy to match ``teacher`` on the teacher's cooperative states;
    returns how close it got (mean KL, action agreement, value error) for the record."""
    targets = teacher_targets(teacher, cfg.rollout_steps, seed)
    params = list(student.policy.parameters())
    optimiser = torch.optim.Adam(params, lr=cfg.learning_rate)
    order = torch.Generator().manual_seed(seed)
    rows = len(targets.obs)
    for _ in range(cfg.epochs):
        for batch in torch.randperm(rows, generator=order).split(cfg.batch_size):
            log_probs, values = policy_outputs(student, targets.obs[batch])
            kl = F.kl_div(
                log_probs, targets.log_probs[batch], log_target=True, reduction="batchmean"
            )
            loss = kl + F.mse_loss(values, targets.values[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        log_probs, values = policy_outputs(student, targets.obs)
        kl = F.kl_div(log_probs, targets.log_probs, log_target=True, reduction="batchmean")
        agree = (log_probs.argmax(-1) == targets.log_probs.argmax(-1)).float().mean()
        value_error = F.mse_loss(values, targets.values)
    return {
        "kl": float(kl),
        "greedy_agreement": float(agree),
        "value_mse": float(value_error),
        "states": rows,
    }
