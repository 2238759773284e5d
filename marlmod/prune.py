"""Module pruning: zero chosen hidden units (or weights), and keep them zero through retraining.

A prune is data — strategy, layer, fraction, granularity and what was removed — stored with the
results. Applying it builds a keep-mask for each affected parameter:

- ``units`` of a hidden layer: a unit's incoming weights and bias (its row in the producing
  Linear) and its outgoing weights (its column in the consuming Linear);
- ``units`` of a convolutional layer (its channels): the channel's kernel and bias in the
  producing ``Conv2d`` and every weight that reads the channel — the next conv's input channel,
  or, after the ``Flatten``, the first dense layer's columns of all the channel's positions;
- ``units`` of ``all_hidden``: each hidden dense layer's units as above, stored per layer
  (``layer_units``); a Linear between two hidden layers carries the masks of both;
- ``units`` of the action head (``layer: action_net``, only where a config asks): the logit's row
  and bias in ``action_net``, so that logit is held at zero;
- ``weights``: individual entries of those same parameters, named by flat index.

Masks are re-applied after every optimiser step by ``HoldMasks``, so pruned weights stay exactly
zero even though Adam's running moments would otherwise move them.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from marlmod.errors import MarlmodError
from marlmod.layers import ACTION_HEAD, ALL_HIDDEN, CONV_NET, POLICY_NET
from marlmod.record import resolve_module
from marlmod.step_hooks import AfterEachStep

# Where a hidden layer's outputs go when it is the last layer of an SB3 MLP extractor.
HEAD_AFTER = {POLICY_NET: "action_net", "mlp_extractor.value_net": "value_net"}
# ... and where a layer's outputs go when it is the last of its container (a CNN's conv stack
# feeds the policy's first dense layer, through its Flatten).
CONSUMER_AFTER = {**HEAD_AFTER, CONV_NET: f"{POLICY_NET}.0"}
UNIT_LAYERS = (nn.Linear, nn.Conv2d)  # the layers whose outputs are units (rows / channels)
GRANULARITIES = ("units", "weights")

Masks = dict[str, torch.Tensor]
WeightIndices = tuple[tuple[str, tuple[int, ...]], ...]  # (parameter name, flat indices) pairs
LayerUnits = tuple[tuple[str, tuple[int, ...]], ...]  # (layer path, unit indices) pairs


@dataclass(frozen=True)
class Prune:
    """What was removed from which layer, and how it was chosen.

    ``units`` for unit granularity (hidden units, conv channels, or logits when ``layer`` is the
    action head); ``weights`` for weight granularity. Stored prunes made before weight
    granularity existed have neither of the last two keys and are unit prunes. A unit prune of
    ``all_hidden`` numbers its ``units`` across the hidden layers in order (layer 1's units,
    then layer 2's, ...) and also stores them per layer, in each layer's own numbering
    (``layer_units``, written to ``prune.json`` only for such a prune).
    """

    strategy: str
    layer: str
    fraction: float
    units: tuple[int, ...]
    granularity: str = "units"
    weights: WeightIndices = ()
    layer_units: LayerUnits = ()

    def __post_init__(self) -> None:
        if self.granularity not in GRANULARITIES:
            raise MarlmodError(
                f"unknown prune granularity {self.granularity!r}; valid: {', '.join(GRANULARITIES)}"
            )
        # One order (by parameter name, as JSON stores it), so a loaded prune equals the saved one.
        object.__setattr__(self, "weights", tuple(sorted(self.weights)))
        across = self.layer == ALL_HIDDEN and self.granularity == "units"
        if across != bool(self.layer_units) or (
            across and sum(len(u) for _, u in self.layer_units) != len(self.units)
        ):
            raise MarlmodError(
                "a unit prune of all_hidden lists its units per layer (layer_units), and only it"
            )

    @property
    def action_head(self) -> bool:
        """Masks the action logits themselves (results mark it: that is not finding a module)."""
        return self.layer == ACTION_HEAD

    def to_json(self) -> dict:
        data = asdict(self)
        data["weights"] = {name: list(indices) for name, indices in self.weights}
        layer_units = data.pop("layer_units")  # kept out of single-layer prunes: files as before
        if layer_units:
            data["layer_units"] = {path: list(units) for path, units in layer_units}
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
            tuple(
                (str(path), tuple(int(u) for u in units))
                for path, units in data.get("layer_units", {}).items()
            ),
        )


def unit_prune(
    strategy: str,
    layer: str,
    fraction: float,
    units: Sequence[int],
    layers: Sequence[tuple[str, int]],
) -> Prune:
    """A unit prune of ``layer``; ``units`` number the units of ``layers`` (``(path, width)``
    pairs, ``NetworkConfig.units``) in order, and a prune of ``all_hidden`` also gets them per
    layer."""
    units = tuple(int(u) for u in units)
    if layer != ALL_HIDDEN:
        return Prune(strategy, layer, fraction, units)
    bounds = np.cumsum([0, *(width for _, width in layers)])
    if any(not 0 <= u < bounds[-1] for u in units):
        raise MarlmodError(f"unit index out of range for {layer} ({bounds[-1]} units)")
    layer_units = tuple(
        (path, tuple(int(u - lo) for u in units if lo <= u < hi))
        for (path, _), lo, hi in zip(layers, bounds[:-1], bounds[1:], strict=True)
    )
    return Prune(strategy, layer, fraction, units, layer_units=layer_units)


@dataclass(frozen=True)
class HiddenLayer:
    """A hidden activation and the Linear layers that feed it and read it."""

    activation: str
    producer: str
    consumer: str


def hidden_layer(policy: nn.Module, path: str) -> HiddenLayer:
    """Find the layer (Linear or Conv2d) before and after the activation module at ``path`` in
    its Sequential; after the last one of a container, the layer ``CONSUMER_AFTER`` names."""
    resolve_module(policy, path)
    parent, _, index = path.rpartition(".")
    container = resolve_module(policy, parent) if parent else policy
    if not isinstance(container, nn.Sequential) or not index.isdigit():
        raise MarlmodError(f"{path!r} is not a layer inside an nn.Sequential")
    i = int(index)
    before = [j for j in range(i) if isinstance(container[j], UNIT_LAYERS)]
    after = [j for j in range(i + 1, len(container)) if isinstance(container[j], UNIT_LAYERS)]
    if not before:
        raise MarlmodError(f"no Linear or Conv2d layer feeds {path!r}")
    consumer = f"{parent}.{after[0]}" if after else CONSUMER_AFTER.get(parent)
    if consumer is None:
        raise MarlmodError(f"cannot tell which layer reads {path!r}")
    return HiddenLayer(path, f"{parent}.{before[-1]}", consumer)


def dense_layers(policy: nn.Module) -> list[str]:
    """Module paths of the policy's hidden dense activations, input first (``all_hidden``)."""
    net = resolve_module(policy, POLICY_NET)
    return [f"{POLICY_NET}.{i}" for i, m in enumerate(net) if not isinstance(m, UNIT_LAYERS)]


def layer_paths(policy: nn.Module, layer: str) -> list[str]:
    """The single layers a prune of ``layer`` spans: every hidden dense layer for
    ``all_hidden``, else ``layer`` itself."""
    return dense_layers(policy) if layer == ALL_HIDDEN else [layer]


def unit_count(module: nn.Module) -> int:
    """Units a Linear (its outputs) or Conv2d (its output channels) produces."""
    if isinstance(module, nn.Conv2d):
        return module.out_channels
    if isinstance(module, nn.Linear):
        return module.out_features
    raise MarlmodError(f"a {type(module).__name__} has no units marlmod can prune")


def consumer_columns(producer: nn.Module, consumer: nn.Module, units: torch.Tensor) -> torch.Tensor:
    """The input indices (dimension 1 of its weight) through which ``consumer`` reads ``units``
    of ``producer``: the units themselves, or — for a Linear after a conv stack's ``Flatten`` —
    every position of each channel (channel-major: channel c is inputs c·P … (c+1)·P − 1)."""
    n = unit_count(producer)
    reads = consumer.in_channels if isinstance(consumer, nn.Conv2d) else consumer.in_features
    if reads == n:
        return units
    if not isinstance(producer, nn.Conv2d) or reads % n:
        raise MarlmodError(f"a layer of {reads} inputs cannot read {n} units one by one")
    positions = reads // n
    return (units[:, None] * positions + torch.arange(positions)[None, :]).reshape(-1)


def masks_for(policy: nn.Module, prune: Prune) -> Masks:
    """Keep-masks (1 keep, 0 pruned) for any prune: weights, head logits or hidden units."""
    if prune.granularity == "weights":
        return weight_masks(policy, prune)
    if prune.action_head:
        return head_masks(policy, prune)
    return unit_masks(policy, prune)


def unit_masks(policy: nn.Module, prune: Prune) -> Masks:
    """Keep-masks (1 keep, 0 pruned) for every parameter touching the pruned units: of one
    layer, or of every hidden layer of an ``all_hidden`` prune (masks of a parameter that two
    layers touch are multiplied)."""
    if prune.layer != ALL_HIDDEN:
        return layer_unit_masks(policy, prune.layer, prune.units)
    masks: Masks = {}
    for path, units in prune.layer_units:
        for name, mask in layer_unit_masks(policy, path, units).items():
            masks[name] = masks[name] * mask if name in masks else mask
    return masks


def layer_unit_masks(policy: nn.Module, path: str, units_: Sequence[int]) -> Masks:
    """Keep-masks for pruning ``units_`` of the layer at ``path``: the producer's rows (kernels)
    and biases, and the consumer's inputs that read them."""
    layer = hidden_layer(policy, path)
    producer = resolve_module(policy, layer.producer)
    consumer = resolve_module(policy, layer.consumer)
    units = torch.tensor(units_, dtype=torch.long)
    n = unit_count(producer)
    if len(units) and (units.min() < 0 or units.max() >= n):
        raise MarlmodError(f"unit index out of range for {path} ({n} units)")
    masks = {
        f"{layer.producer}.weight": torch.ones_like(producer.weight),
        f"{layer.producer}.bias": torch.ones_like(producer.bias),
        f"{layer.consumer}.weight": torch.ones_like(consumer.weight),
    }
    masks[f"{layer.producer}.weight"][units] = 0
    masks[f"{layer.producer}.bias"][units] = 0
    masks[f"{layer.consumer}.weight"][:, consumer_columns(producer, consumer, units)] = 0
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
