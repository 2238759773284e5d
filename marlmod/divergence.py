"""Divergence guard: training whose gradients or weights turn NaN or infinite stops at once.

A diverged run (a learning rate far too high, a reward that overflows) otherwise keeps training
on NaN weights and stores metrics of a broken policy as if they were results. The guard checks,
around every optimiser step of ``model.learn``, that the gradients about to be applied and the
weights just updated are finite, and raises ``TrainingDiverged`` naming the stage, the agent-step
and the parameters that went bad. A NaN or infinite loss shows up as non-finite gradients (SB3
clips the gradient by its norm, which spreads a NaN to every entry); on ``ppo.compile``'s route,
which keeps no ``.grad``, as non-finite weights right after the step.

It uses the optimiser's public step hooks (as ``marlmod.step_hooks`` does), reads tensors only
(no random numbers, no writes), so healthy training is bit for bit what it was. One fused check
per hook keeps it cheap: a concatenation and an ``isfinite`` over all parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from stable_baselines3.common.base_class import BaseAlgorithm

from marlmod.errors import TrainingDiverged


def all_finite(tensors: list[torch.Tensor]) -> bool:
    """True when every entry of every tensor is finite (one fused check)."""
    if not tensors:
        return True
    return bool(torch.isfinite(torch.cat([t.detach().reshape(-1) for t in tensors])).all())


@contextmanager
def divergence_guard(model: BaseAlgorithm, stage: str) -> Iterator[None]:
    """Check gradients before and weights after every optimiser step of ``model`` inside the
    block; the hooks are removed on exit, also after an exception."""
    optimizer = model.policy.optimizer
    params = [p for group in optimizer.param_groups for p in group["params"]]
    names = {id(p): name for name, p in model.policy.named_parameters()}
    names.update({id(p): f"parameter {i}" for i, p in enumerate(params) if id(p) not in names})

    def fail(what: str, tensors: dict[str, torch.Tensor]) -> None:
        bad = [name for name, tensor in tensors.items() if not all_finite([tensor])]
        more = f" and {len(bad) - 2} more" if len(bad) > 2 else ""
        raise TrainingDiverged(
            f"training diverged in {stage} at agent-step {model.num_timesteps}: non-finite "
            f"{what} in {', '.join(bad[:2])}{more}"
        )

    def before_step(*_: object) -> None:
        grads = [p.grad for p in params if p.grad is not None]
        if not all_finite(grads):
            named = {names[id(p)]: p.grad for p in params if p.grad is not None}
            fail("gradients (the loss was NaN or infinite)", named)

    def after_step(*_: object) -> None:
        if not all_finite(params):
            fail("weights", {names[id(p)]: p for p in params})

    handles = [
        optimizer.register_step_pre_hook(before_step),
        optimizer.register_step_post_hook(after_step),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
