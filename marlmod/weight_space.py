"""Where did retraining take the weights? Distance and the straight path from the pretrained model.

Work on unlearning finds that how far an edited model moved from the original — and whether the
two sit in one connected low-loss region — predicts whether a removal survives fine-tuning
("From dormant to deleted", 2025). Per cell this measures the L2 distance between the pretrained
and the retrained policy's parameters, and the trait rate and task return at points along the
straight line between them (``alpha`` 0 = pretrained, 1 = retrained). A trait that reappears
midway sits close by; a path that loses the task midway crosses a barrier. The report tests
whether these predict relearning speed across cells and seeds.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from stable_baselines3 import PPO

from marlmod.metrics import Metrics

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def policy_parameters(model: PPO) -> dict[str, torch.Tensor]:
    """Every parameter that shapes the actions (the policy's conv stack, if any, its MLP and the
    action head)."""
    return {
        name: p.detach().clone()
        for name, p in model.policy.named_parameters()
        if not name.startswith(("mlp_extractor.value_net", "value_net", "vf_features_extractor"))
    }


def l2_distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return float(torch.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in a)))


@torch.no_grad()
def interpolate(model: PPO, start: dict, end: dict, alpha: float) -> None:
    """Set ``model``'s weights (all of them) to ``(1 − alpha)·start + alpha·end``."""
    mixed = {k: (1 - alpha) * start[k] + alpha * end[k] for k in start}
    model.policy.load_state_dict(mixed)


def straight_path(
    pretrained: PPO, retrained: PPO, evaluate: Callable[[PPO], Metrics]
) -> dict[str, object]:
    """L2 distance of the policy weights, and trait rate and task return along the line."""
    start = {k: v.clone() for k, v in pretrained.policy.state_dict().items()}
    end = {k: v.clone() for k, v in retrained.policy.state_dict().items()}
    distance = l2_distance(policy_parameters(pretrained), policy_parameters(retrained))
    points = []
    for alpha in ALPHAS:
        interpolate(pretrained, start, end, alpha)
        points.append({"alpha": alpha, **evaluate(pretrained).to_json()})
    interpolate(pretrained, start, end, 0.0)
    return {"l2_to_pretrained": distance, "path": points}
