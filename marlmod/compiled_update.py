"""The ``compiled`` training backend (``ppo.backend: compiled``): each minibatch step as one graph.

Why: after ``LeanPPO`` removed SB3's Python bookkeeping, an update on marlmod's 64-wide MLPs is
mostly PyTorch's per-operation overhead: the loss's dozens of tiny kernels, the autograd engine
walking them backwards, ``clip_grad_norm_`` and Adam each launching their own kernels per
parameter. ``ppo_step`` writes the whole minibatch step — SB3's loss (``marlmod.ppo_loss``, the
one the eager update uses too), its gradient (``torch.func.grad``), gradient-norm clipping and
Adam's update rule — as one function over tensors, and ``torch.compile`` turns it into a single
generated C++ graph that updates the weights and Adam's moments in place (~3x faster per
minibatch than loss, ``backward`` and ``Adam.step`` done separately;
``benchmarks/throughput.py``).

The price: the arithmetic is reordered, so weights are no longer bitwise SB3's (they differ from
the first update in the last float bits, and trajectories diverge from there). Whether learning
is unchanged is measured, not assumed: ``benchmarks/learning_quality.py`` with a ``+compiled``
setting (docs/benchmarks.md). It needs a C++ compiler at run time (``torch.compile``'s CPU
backend).

Adam's moments live in the optimiser's own ``state`` (same keys and layout as
``torch.optim.Adam``), so checkpoints save and resume as ever, and the step runs inside
``Optimizer.profile_hook_step`` so step hooks — pruning masks, the wiring cost — still run after
every step. Only plain MLP policies without module hooks qualify
(``marlmod.functional_policy.functional``): gradient routing's hook must see the forward pass,
so ``LeanPPO.use_compiled_update`` refuses routed pretraining (``ppo.backend: lean`` trains it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from marlmod.errors import MarlmodError
from marlmod.functional_policy import Architecture, policy_outputs
from marlmod.ppo_loss import Minibatch, ppo_loss

# The Adam settings ``ppo_step`` implements; ``check_adam`` refuses any other value.
ADAM_AS_IMPLEMENTED = {
    "weight_decay": 0,
    "amsgrad": False,
    "maximize": False,
    "capturable": False,
    "differentiable": False,
}


@functools.cache
def cpp_compiler() -> str | None:
    """The C++ compiler ``torch.compile``'s CPU backend would use, or None if it finds none."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        return get_cpp_compiler()
    except Exception:  # no compiler, or a PyTorch that moved this helper
        return None


@dataclass(frozen=True)
class AdamTensors:
    """The tensors one fused step reads and updates in place: weights (detached views of the
    policy's parameters) and the optimiser's own moment and step-count tensors."""

    params: list[torch.Tensor]
    exp_avgs: list[torch.Tensor]
    exp_avg_sqs: list[torch.Tensor]
    steps: list[torch.Tensor]

    @classmethod
    def of(cls, optimizer: torch.optim.Optimizer, params: Sequence[torch.nn.Parameter]):
        """Adam's state for ``params``, created as ``torch.optim.Adam`` creates it if new."""
        check_adam(optimizer)
        states = []
        for p in params:
            state = optimizer.state[p]
            if not state:
                state["step"] = torch.tensor(0.0)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            states.append(state)
        return cls(
            [p.detach() for p in params],
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [s["step"] for s in states],
        )


def check_adam(optimizer: torch.optim.Optimizer) -> None:
    """Refuse an optimiser whose update ``ppo_step`` would not reproduce."""
    if not isinstance(optimizer, torch.optim.Adam):
        raise MarlmodError(
            f"ppo.backend compiled needs an Adam optimiser, got {type(optimizer).__name__}"
        )
    if len(optimizer.param_groups) != 1:
        raise MarlmodError("ppo.backend compiled needs one Adam parameter group")
    group = optimizer.param_groups[0]
    for key, supported in ADAM_AS_IMPLEMENTED.items():
        if group.get(key, supported) != supported:
            raise MarlmodError(f"ppo.backend compiled implements Adam with {key}={supported} only")


def ppo_step(
    adam: AdamTensors,
    batch: Minibatch,
    arch: Architecture,
    lr: torch.Tensor,
    clip_range: torch.Tensor,
    ent_coef: float,
    vf_coef: float,
    max_grad_norm: float,
    betas: tuple[float, float],
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One PPO minibatch step, in place: ``ppo_loss``'s gradient, ``clip_grad_norm_`` and
    ``torch.optim.Adam``'s update (no weight decay). Returns the loss and ``ppo_loss``'s stats."""

    def loss_of(params: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = policy_outputs(params, batch.observations, arch)
        return ppo_loss(outputs, batch, clip_range, ent_coef, vf_coef)

    grads, (loss, stats) = torch.func.grad_and_value(loss_of, has_aux=True)(adam.params)
    norms = torch.stack([torch.linalg.vector_norm(g) for g in grads])
    clip_coef = torch.clamp(max_grad_norm / (torch.linalg.vector_norm(norms) + 1e-6), max=1.0)
    beta1, beta2 = betas
    for count in adam.steps:  # Adam keeps one step count per parameter; they move together
        count.add_(1)
    step = adam.steps[0]
    step_size = lr / (1 - beta1**step)
    bias_correction2_sqrt = torch.sqrt(1 - beta2**step)
    for param, grad, exp_avg, exp_avg_sq in zip(
        adam.params, grads, adam.exp_avgs, adam.exp_avg_sqs, strict=True
    ):
        grad = grad * clip_coef
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + eps
        param.sub_(step_size * exp_avg / denom)
    return loss.detach(), stats


@functools.cache
def compiled_ppo_step() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """``ppo_step`` compiled once per process (recompiled only for a new shape or constant)."""
    return torch.compile(ppo_step, fullgraph=True, dynamic=False)


def as_optimizer_step(optimizer: torch.optim.Optimizer, update: Callable[[], object]) -> None:
    """Run ``update`` as if it were ``optimizer.step()``: the optimiser's step pre- and
    post-hooks (pruning masks, the wiring cost) run around it, through torch's public wrapper."""
    torch.optim.Optimizer.profile_hook_step(lambda _optimizer: update())(optimizer)
