"""Hand-sized policies for tests that plant an answer in the weights."""

from __future__ import annotations

import gymnasium as gym
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn


def policy_3_4_4_3() -> ActorCriticPolicy:
    """obs 3 → 4 → 4 → 3 actions, ReLU (value net: one hidden layer of 4); callers wire it."""
    return ActorCriticPolicy(
        gym.spaces.Box(0.0, 1.0, (3,)),
        gym.spaces.Discrete(3),
        lr_schedule=lambda _: 1e-3,
        net_arch={"pi": [4, 4], "vf": [4]},
        activation_fn=nn.ReLU,
    )


def cnn_policy(conv: tuple = ((3, 3, 1, 0),), hidden: tuple = (4,)) -> ActorCriticPolicy:
    """obs planes (4, 5, 5) → conv layers (channels, kernel, stride, padding) → dense → 3 actions,
    ReLU, built as ``marlmod.train.policy_kwargs`` builds a CNN policy; callers wire it."""
    from marlmod.cnn import PlanesCNN

    return ActorCriticPolicy(
        gym.spaces.Box(0.0, 1.0, (4, 5, 5)),
        gym.spaces.Discrete(3),
        lr_schedule=lambda _: 1e-3,
        net_arch={"pi": list(hidden), "vf": [4]},
        activation_fn=nn.ReLU,
        features_extractor_class=PlanesCNN,
        features_extractor_kwargs={"conv": list(conv), "activation": "relu"},
        share_features_extractor=False,
    )
