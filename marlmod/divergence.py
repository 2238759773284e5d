"""Divergence guard: training whose weights turn NaN or infinite stops at once, by name.

A diverged run (a learning rate far too high, a reward that overflows) otherwise keeps training
on NaN weights, or dies deep inside torch's sampling with a message about probability tensors,
and nothing says which task, stage or step. ``guarded_learn`` (used by ``marlmod.train.learn``,
through which every training goes) raises ``TrainingDiverged`` naming the stage, the agent-step
and the parameters instead:

- after every PPO update (at the start of each rollout, and when training ends) it checks that
  the weights are finite. A NaN or infinite loss gives non-finite gradients, which any optimiser
  step turns into non-finite weights (SB3 clips the gradient by its norm, spreading a NaN to
  every entry), so one check per update sees it; the gradients of the last step then tell
  whether the loss was the cause. Checking per update rather than per optimiser step keeps the
  cost to one fused ``isfinite`` per rollout (``benchmarks/divergence_guard.py``).
- weights still finite but so large that the policy's outputs overflow make torch's action
  sampling fail; that error is turned into the same ``TrainingDiverged`` when the policy's
  logits on the last observations are indeed non-finite.

It reads tensors only (no random numbers, no writes), so healthy training is bit for bit what
it was (``tests/test_divergence.py``).
"""

from __future__ import annotations

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import MaybeCallback

from marlmod.errors import TrainingDiverged


def all_finite(tensors: list[torch.Tensor]) -> bool:
    """True when every entry of every tensor is finite (one fused check)."""
    if not tensors:
        return True
    return bool(torch.isfinite(torch.cat([t.detach().reshape(-1) for t in tensors])).all())


def diverged(model: BaseAlgorithm, stage: str, what: str, bad: list[str]) -> TrainingDiverged:
    more = f" and {len(bad) - 2} more" if len(bad) > 2 else ""
    return TrainingDiverged(
        f"training diverged in {stage} at agent-step {model.num_timesteps}: non-finite {what}"
        + (f" in {', '.join(bad[:2])}{more}" if bad else "")
    )


def check_weights(model: BaseAlgorithm, stage: str) -> None:
    """Raise ``TrainingDiverged`` if any weight of the policy is NaN or infinite."""
    named = dict(model.policy.named_parameters())
    if all_finite(list(named.values())):
        return
    bad = [name for name, p in named.items() if not all_finite([p])]
    grads = [p.grad for p in named.values() if p.grad is not None]
    cause = "" if all_finite(grads) else " (after non-finite gradients: the loss was NaN or inf)"
    raise diverged(model, stage, f"weights{cause}", bad)


class DivergenceGuard(BaseCallback):
    """Checks the weights after every update: at each rollout's start and at training's end."""

    def __init__(self, stage: str) -> None:
        super().__init__()
        self.stage = stage

    def _on_rollout_start(self) -> None:
        check_weights(self.model, self.stage)

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        check_weights(self.model, self.stage)


def outputs_overflowed(model: BaseAlgorithm) -> bool:
    """Whether the policy's action logits on the last observations are non-finite."""
    obs = getattr(model, "_last_obs", None)
    if obs is None:
        return False
    policy = model.policy
    with torch.no_grad():  # the actor's forward pass, short of building a distribution
        obs_tensor = policy.obs_to_tensor(obs)[0]
        features = policy.extract_features(obs_tensor, policy.pi_features_extractor)
        logits = policy.action_net(policy.mlp_extractor.forward_actor(features))
    return not all_finite([logits])


def guarded_learn(model: BaseAlgorithm, stage: str, callback: MaybeCallback, **kwargs) -> None:
    """``model.learn(callback=callback, **kwargs)`` with the guard (see the module docstring)."""
    extra = callback if isinstance(callback, list) else [] if callback is None else [callback]
    try:
        callbacks = [DivergenceGuard(stage), *extra]  # alone, it replaces SB3's no-op callback
        model.learn(callback=callbacks if extra else callbacks[0], **kwargs)
    except RuntimeError as err:  # torch's sampling, when the policy's outputs overflowed
        if not outputs_overflowed(model):
            raise
        raise diverged(model, stage, "action logits (the weights grew too large)", []) from err
