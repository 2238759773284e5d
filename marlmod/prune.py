"""Module pruning: zero chosen hidden units, and keep them zero through retraining.

A prune is data — strategy, layer, fraction and unit indices — stored with the results. Applying
it builds a keep-mask for each affected parameter: a unit's incoming weights and bias (its row in
the producing Linear) and its outgoing weights (its column in the consuming Linear). Masks are
re-applied after every optimiser step by ``HoldMasks``, so pruned weights stay exactly zero even
though Adam's running moments would otherwise move them.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from marlmod.errors import MarlmodError
from marlmod.record import resolve_module
from marlmod.step_hooks import AfterEachStep

# Where a hidden layer's outputs go when it is the last layer of an SB3 MLP extractor.
HEAD_AFTER = {"mlp_extractor.policy_net": "action_net", "mlp_extractor.value_net": "value_net"}

Masks = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Prune:
    """Which units of which layer were removed, and how they were chosen."""

    strategy: str
    layer: str
    fraction: float
    units: tuple[int, ...]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Prune:
        return cls(
            data["strategy"],
            data["layer"],
            float(data["fraction"]),
            tuple(int(u) for u in data["units"]),
        )


@dataclass(frozen=True)
class HiddenLayer:
    """A hidden activation and the Linear layers that feed it and read it."""

    activation: str
    producer: str
    consumer: str


def hidden_layer(policy: nn.Module, path: str) -> HiddenLayer:
    """Find the Linear before and after the activation module at ``path`` in its Sequential."""
    resolve_module(policy, path)
    parent, _, index = path.rpartition(".")
    container = resolve_module(policy, parent) if parent else policy
    if not isinstance(container, nn.Sequential) or not index.isdigit():
        raise MarlmodError(f"{path!r} is not a layer inside an nn.Sequential")
    i = int(index)
    before = [j for j in range(i) if isinstance(container[j], nn.Linear)]
    after = [j for j in range(i + 1, len(container)) if isinstance(container[j], nn.Linear)]
    if not before:
        raise MarlmodError(f"no Linear layer feeds {path!r}")
    consumer = f"{parent}.{after[0]}" if after else HEAD_AFTER.get(parent)
    if consumer is None:
        raise MarlmodError(f"cannot tell which layer reads {path!r}")
    return HiddenLayer(path, f"{parent}.{before[-1]}", consumer)


def unit_masks(policy: nn.Module, prune: Prune) -> Masks:
    """Keep-masks (1 keep, 0 pruned) for every parameter touching the pruned units."""
    layer = hidden_layer(policy, prune.layer)
    producer = resolve_module(policy, layer.producer)
    consumer = resolve_module(policy, layer.consumer)
    units = torch.tensor(prune.units, dtype=torch.long)
    if len(units) and (units.min() < 0 or units.max() >= producer.out_features):
        raise MarlmodError(
            f"unit index out of range for {prune.layer} ({producer.out_features} units)"
        )
    masks = {
        f"{layer.producer}.weight": torch.ones_like(producer.weight),
        f"{layer.producer}.bias": torch.ones_like(producer.bias),
        f"{layer.consumer}.weight": torch.ones_like(consumer.weight),
    }
    masks[f"{layer.producer}.weight"][units, :] = 0
    masks[f"{layer.producer}.bias"][units] = 0
    masks[f"{layer.consumer}.weight"][:, units] = 0
    return masks


@torch.no_grad()
def apply_masks(module: nn.Module, masks: Masks) -> None:
    params = dict(module.named_parameters())
    for name, mask in masks.items():
        if name not in params:
            raise MarlmodError(f"mask names unknown parameter {name!r}")
        params[name].mul_(mask)


class HoldMasks(AfterEachStep):
    """Keep pruned weights at exactly zero for the whole of ``model.learn``: masks are applied at
    the start and again after every gradient step (Adam's moments would otherwise move them)."""

    def __init__(self, masks: Masks) -> None:
        super().__init__()
        self.masks = masks

    def prepare(self, policy: nn.Module) -> Callable[[], None]:
        apply_masks(policy, self.masks)
        return lambda: apply_masks(policy, self.masks)


def save_prune(prune: Prune, masks: Masks, directory: Path) -> None:
    from marlmod.atomic import write_json, write_with

    write_with(directory / "masks.pt", lambda tmp: torch.save(masks, tmp))
    write_json(directory / "prune.json", prune.to_json())


def load_prune(directory: Path) -> tuple[Prune, Masks]:
    """Load a stored prune; tensors only (``weights_only=True``), so a mask file runs no code."""
    try:
        prune = Prune.from_json(json.loads((directory / "prune.json").read_text()))
        masks = torch.load(directory / "masks.pt", weights_only=True)
    except (OSError, json.JSONDecodeError, KeyError, RuntimeError, pickle.UnpicklingError) as err:
        raise MarlmodError(f"corrupt or missing prune in {directory}: {err}") from err
    return prune, masks
