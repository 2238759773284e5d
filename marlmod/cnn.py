"""The CNN policy's feature extractor: conv layers over image-shaped observations, flattened.

``network.kind: cnn`` builds SB3's ``ActorCriticPolicy`` with ``PlanesCNN`` as its
``features_extractor_class`` (``marlmod.train.policy_kwargs``) — SB3's public route for a custom
network — and one extractor for the policy, another for the value net
(``share_features_extractor=False``), so a pruned policy channel never touches the critic. The
policy's hidden dense layers (``network.hidden``) then read the flattened maps.

Module paths, as ``prune.layer`` and recording name them (``marlmod.layers``):
``features_extractor.cnn.<2i>`` is the i-th ``Conv2d``, ``features_extractor.cnn.<2i+1>`` its
activation — a layer whose units are its output *channels* — and the last module is the
``Flatten``, read by ``mlp_extractor.policy_net.0`` channel-major (channel ``c``'s positions are
its inputs ``c·H·W … (c+1)·H·W − 1``; ``marlmod.prune`` zeroes them all to prune ``c``).

Observations must be ``(channels, height, width)`` Boxes: Gathering's ``observation: "planes"``,
the Lab2D games' ``observation: "planes"`` or ``"rgb"`` (SB3 wraps an env of uint8 channel-last
images in ``VecTransposeImage`` before the policy is built, and scales them to [0, 1]).
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from marlmod.errors import MarlmodError

ConvSpec = tuple[int, int, int, int]  # channels, kernel, stride, padding
# ``network.activation`` -> module, for the conv layers and the MLPs (``marlmod.train``)
ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def conv_output(size: tuple[int, int], spec: ConvSpec) -> tuple[int, int]:
    """Height and width after one conv layer (PyTorch's formula, dilation 1)."""
    _, kernel, stride, padding = spec
    return tuple((s + 2 * padding - kernel) // stride + 1 for s in size)  # type: ignore[return-value]


class PlanesCNN(BaseFeaturesExtractor):
    """Conv layers (each followed by the network's activation), then a ``Flatten``."""

    def __init__(
        self, observation_space: gym.spaces.Box, conv: Sequence[ConvSpec], activation: str = "relu"
    ) -> None:
        shape = observation_space.shape
        if shape is None or len(shape) != 3:
            raise MarlmodError(
                f"network.kind cnn needs image-shaped observations (channels, height, width); "
                f"the env gives shape {shape} (Gathering: set env.kwargs.observation: planes)"
            )
        channels, size = shape[0], (shape[1], shape[2])
        layers: list[nn.Module] = []
        for spec in conv:
            size = conv_output(size, spec)
            if min(size) < 1:
                raise MarlmodError(
                    f"network.conv shrinks the {shape[1]}×{shape[2]} observation to nothing at "
                    f"{spec}; use smaller kernels or strides, or padding"
                )
            layers += [nn.Conv2d(channels, spec[0], spec[1], spec[2], spec[3])]
            layers += [ACTIVATIONS[activation]()]
            channels = spec[0]
        super().__init__(observation_space, channels * size[0] * size[1])
        self.cnn = nn.Sequential(*layers, nn.Flatten())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.cnn(observations)
