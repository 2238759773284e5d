"""Module pruning: zero chosen hidden units (or weights), and keep them zero through retraining.

A prune is data — strategy, layer, fraction, granularity and what was removed — stored with the
results. Applying it builds a keep-mask for each affected parameter:

- ``units`` of a hidden layer: a unit's incoming weights and bias (its row in the producing
  Linear) and its outgoing weights (its column in the consuming Linear);
- ``units`` of the action head (``layer: action_net``, only where a config asks): the logit's row
  and bias in ``action_net``, so that logit is held at zero;
- ``weights``: individual entries of those same parameters, named by flat index.

Masks are re-applied after every optimiser step by ``HoldMasks``, so pruned weights stay exactly
zero even though Adam's running moments would otherwise move them.
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
from marlmod.layers import ACTION_HEAD
from marlmod.record import resolve_module
from marlmod.step_hooks import AfterEachStep

# Where a hidden layer's outputs go when it is the last layer of an SB3 MLP extractor.
HEAD_AFTER = {"mlp_extractor.policy_net": "action_net", "mlp_extractor.value_net": "value_net"}
GRANULARITIES = ("units", "weights")

Masks = dict[str, torch.Tensor]
WeightIndices = tuple[tuple[str, tuple[int, ...]], ...]  # (parameter name, flat indices) pairs


@dataclass(frozen=True)
class Prune:
    """What was removed from which layer, and how it was chosen.

    ``units`` for unit granularity (hidden units, or logits when ``layer`` is the action head);
    ``weights`` for weight granularity. Stored prunes made before weight granularity existed
    have neither of the last two keys and are unit prunes.
    """

    strategy: str
    layer: str
    fraction: float
    units: tuple[int, ...]
    granularity: str = "units"
    weights: WeightIndices = ()

    def __post_init__(self) -> None:
        if self.granularity not in GRANULARITIES:
            raise MarlmodError(
                f"unknown prune granularity {self.granularity!r}; valid: {', '.join(GRANULARITIES)}"
            )
        # One order (by parameter name, as JSON stores it), so a loaded prune equals the saved one.
        object.__setattr__(self, "weights", tuple(sorted(self.weights)))

    @property
    def action_head(self) -> bool:
        """Masks the action logits themselves (results mark it: that is not finding a module)."""
        return self.layer == ACTION_HEAD

    def to_json(self) -> dict:
        data = asdict(self)
        data["weights"] = {name: list(indices) for name, indices in self.weights}
        return data

    @classmethod
    def from_json(cls, data: dict) -> Prune:
        return cls(
            data["strategy"],
            data["layer"],
            float(data["fraction"]),
            tuple(int(u) for u in data["units"]),
            data.get("granularity", "units"),
            tuple(
                (str(name), tuple(int(i) for i in indices))
                for name, indices in data.get("weights", {}).items()
            ),
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


def masks_for(policy: nn.Module, prune: Prune) -> Masks:
    """Keep-masks (1 keep, 0 pruned) for any prune: weights, head logits or hidden units."""
    if prune.granularity == "weights":
        return weight_masks(policy, prune)
    if prune.action_head:
        return head_masks(policy, prune)
    return unit_masks(policy, prune)


def unit_masks(policy: nn.Module, prune: Prune) -> Masks:
    """Keep-masks (1 keep, 0 pruned) for every parameter touching the pruned hidden units."""
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


def head_masks(policy: nn.Module, prune: Prune) -> Masks:
    """Keep-masks holding the pruned logits of the action head at zero (row and bias)."""
    head = resolve_module(policy, ACTION_HEAD)
    if not isinstance(head, nn.Linear):
        raise MarlmodError(f"{ACTION_HEAD} is a {type(head).__name__}, not a Linear")
    rows = torch.tensor(prune.units, dtype=torch.long)
    if len(rows) and (rows.min() < 0 or rows.max() >= head.out_features):
        raise MarlmodError(f"logit index out of range for {ACTION_HEAD} ({head.out_features})")
    masks = {f"{ACTION_HEAD}.weight": torch.ones_like(head.weight)}
    masks[f"{ACTION_HEAD}.bias"] = torch.ones_like(head.bias)
    masks[f"{ACTION_HEAD}.weight"][rows, :] = 0
    masks[f"{ACTION_HEAD}.bias"][rows] = 0
    return masks


def weight_masks(policy: nn.Module, prune: Prune) -> Masks:
    """Keep-masks zeroing the individual entries (flat indices) a weight-level prune names."""
    params = dict(policy.named_parameters())
    masks = {}
    for name, indices in prune.weights:
        if name not in params:
            raise MarlmodError(f"prune names unknown parameter {name!r}")
        mask = torch.ones_like(params[name])
        flat = torch.tensor(indices, dtype=torch.long)
        if len(flat) and (flat.min() < 0 or flat.max() >= mask.numel()):
            raise MarlmodError(f"weight index out of range for {name} ({mask.numel()} entries)")
        mask.view(-1)[flat] = 0
        masks[name] = mask
    return masks


def zeroed(masks: Masks) -> int:
    """How many parameter entries (weights and biases) a set of masks holds at zero."""
    return sum(int((mask == 0).sum()) for mask in masks.values())


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
    except (
        OSError,
        json.JSONDecodeError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        RuntimeError,
        pickle.UnpicklingError,
        MarlmodError,
    ) as err:
        raise MarlmodError(f"corrupt or missing prune in {directory}: {err}") from err
    return prune, masks
