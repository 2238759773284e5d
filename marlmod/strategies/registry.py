"""Every locating strategy, by name, with what it needs and which layers it can rank.

A strategy maps the ``Evidence`` about one layer to one score per unit (higher = prune first).
Each entry here says, without importing the scorer:

- ``summary``: what it ranks first (one line, as in docs/concepts.md's table);
- ``scorer``: where its function lives (``module:function``), imported only when scoring, so
  reading the registry — config validation, ``marlmod validate`` — never loads torch, SB3 or
  scikit-learn;
- ``needs``: what it reads beyond the activations (``Need``: labels, the control model, the
  policy's weights or gradients, routed pretraining); config validation refuses a strategy whose
  needs the scenario cannot meet, and each ``Need`` names the ``Evidence`` fields it stands for;
- ``layer_kinds``: which kinds of layer it can rank (``marlmod.layers.LayerKind``), and
  ``layer_limit``, why not the others — the reason a config that asks for another kind is given;
- ``per_channel``: for a strategy that ranks the channels of a convolutional layer, what it reads
  of a channel (required exactly then). A channel's activation is a map over positions, and a
  score needs one number per channel: the strategies that read recorded activations read the
  channel's *spatial mean* (``marlmod.record``: for ReLU it is zero exactly when the channel is
  silent everywhere — the state a prune puts it in — and it is linear in the activations, as
  everything downstream of the channel is; the maximum would follow one position and ignore how
  widely the channel fires); the others say what they read instead.

Adding a strategy: write its function next to those that read the same things (``activations``,
``weights``, ``cluster``, ``routed``) and add one entry below.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from marlmod.layers import LayerKind

if TYPE_CHECKING:
    import numpy as np

    from marlmod.strategies.evidence import Evidence

UnitScorer = Callable[["Evidence", "np.random.Generator"], "np.ndarray"]


class Need(Enum):
    """Something a strategy reads besides the layer's activations, and the ``Evidence`` fields
    that carry it."""

    TRAIT_LABELS = ("trait labels", ("trait",))
    OPPORTUNITY_LABELS = ("opportunity labels", ("opportunity",))
    CONTROL_MODEL = ("the control model's activations", ("control_acts",))
    POLICY_WEIGHTS = ("the policy's weights", ("policy", "layer"))
    POLICY_GRADIENTS = ("the policy's gradients", ("policy", "layer", "obs", "actions"))
    ROUTED_PRETRAINING = ("routed pretraining", ("routed_units",))

    def __init__(self, phrase: str, fields: tuple[str, ...]) -> None:
        self.phrase = phrase
        self.fields = fields


EVERY_LAYER_KIND = frozenset(LayerKind)


@dataclass(frozen=True)
class StrategySpec:
    """One locating strategy: its name, what it does, where its scorer is, what it needs."""

    name: str
    summary: str
    scorer: str  # "package.module:function", imported by ``load``
    needs: frozenset[Need]
    layer_kinds: frozenset[LayerKind]
    layer_limit: str = ""  # what it reads that the other layer kinds lack
    per_channel: str = ""  # what it reads of a conv channel, when it ranks conv channels

    def __post_init__(self) -> None:
        module, _, function = self.scorer.partition(":")
        if not module or not function:
            raise ValueError(f"strategy {self.name!r}: scorer must be 'module:function'")
        if not self.layer_kinds:
            raise ValueError(f"strategy {self.name!r} ranks no layer kind")
        if (self.layer_kinds != EVERY_LAYER_KIND) != bool(self.layer_limit):
            raise ValueError(
                f"strategy {self.name!r}: give layer_limit exactly when some layer kind is missing"
            )
        if (LayerKind.CONV_CHANNELS in self.layer_kinds) != bool(self.per_channel):
            raise ValueError(
                f"strategy {self.name!r}: give per_channel exactly when it ranks conv channels"
            )

    def load(self) -> UnitScorer:
        """The scoring function (its module is imported now, not when the registry is)."""
        module, _, function = self.scorer.partition(":")
        return getattr(importlib.import_module(module), function)

    def evidence_fields(self) -> frozenset[str]:
        """The ``Evidence`` fields beyond ``acts`` that the scorer reads."""
        return frozenset(field for need in self.needs for field in need.fields)

    def refusal(self, kind: LayerKind) -> str | None:
        """Why this strategy cannot rank a layer of ``kind`` (``None`` when it can)."""
        if kind in self.layer_kinds:
            return None
        kinds = [k.value for k in LayerKind if k in self.layer_kinds]  # in the enum's order
        ranks = kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"
        return f"cannot rank {kind.value}, only {ranks}: it {self.layer_limit}"


def _spec(
    name: str,
    summary: str,
    scorer: str,
    needs: tuple[Need, ...] = (),
    layer_kinds: tuple[LayerKind, ...] = (
        LayerKind.HIDDEN,
        LayerKind.CONV_CHANNELS,
        LayerKind.ALL_HIDDEN,
        LayerKind.ACTION_HEAD,
    ),
    layer_limit: str = "",
    per_channel: str = "",
) -> StrategySpec:
    """An entry; the default layer kinds are listed, not "every kind", so a new kind is claimed
    by no strategy until its entry says so (or says why not: ``layer_limit``)."""
    return StrategySpec(
        name, summary, scorer, frozenset(needs), frozenset(layer_kinds), layer_limit, per_channel
    )


_ACTIVATIONS = "marlmod.strategies.activations"
_WEIGHTS = "marlmod.strategies.weights"
_WIRING = "reads the wiring around a hidden layer (the layer before it and the one after)"
_NOT_HEAD = (LayerKind.HIDDEN, LayerKind.CONV_CHANNELS, LayerKind.ALL_HIDDEN)
_LABELS = Need.TRAIT_LABELS
_MEAN = "the spatial mean of the channel's activations"

STRATEGIES: dict[str, StrategySpec] = {
    spec.name: spec
    for spec in (
        _spec(
            "contrast",
            "signed standardised mean difference, trait vs non-trait steps",
            f"{_ACTIVATIONS}:standardised_mean_difference",
            needs=(_LABELS,),
            per_channel=_MEAN,
        ),
        _spec(
            "random",
            "a random order (the baseline every method must beat)",
            f"{_ACTIVATIONS}:random_units",
            per_channel="nothing but the number of channels",
        ),
        _spec(
            "selective",
            "mean |activation| on trait steps ÷ on other steps (Pochinkov & Schoots 2023)",
            f"{_ACTIVATIONS}:selective",
            needs=(_LABELS,),
            per_channel=_MEAN,
        ),
        _spec(
            "opportunity",
            "`contrast` restricted to steps where the trait was possible",
            f"{_ACTIVATIONS}:opportunity",
            needs=(_LABELS, Need.OPPORTUNITY_LABELS),
            per_channel=_MEAN,
        ),
        _spec(
            "probe",
            "positive coefficients of a sparse (L1) logistic probe for the trait",
            f"{_ACTIVATIONS}:probe",
            needs=(_LABELS,),
            per_channel=_MEAN,
        ),
        _spec(
            "control",
            "activity on trait steps that the control network's layer does not predict",
            f"{_ACTIVATIONS}:control",
            needs=(_LABELS, Need.CONTROL_MODEL),
            per_channel=_MEAN,
        ),
        _spec(
            "attribution",
            "gradient × activation of the log-probability of the action taken, on trait steps",
            f"{_WEIGHTS}:attribution",
            needs=(_LABELS, Need.POLICY_GRADIENTS),
            per_channel="gradient × activation summed over the channel's positions: the "
            "first-order effect of zeroing the whole channel",
        ),
        _spec(
            "cluster",
            "whole spectral clusters of the weight graph (Filan et al.), most trait-associated "
            "first",
            "marlmod.strategies.cluster:cluster",
            needs=(_LABELS, Need.POLICY_WEIGHTS),
            layer_kinds=_NOT_HEAD,
            layer_limit="clusters the weight graph of the policy's hidden layers",
            per_channel="the channel as one node of the weight graph (edges: L1 norms of kernel "
            "slices, marlmod.clusterability); clusters ranked by its spatial-mean contrast",
        ),
        _spec(
            "weight_magnitude",
            "least important by weight magnitude (a standard pruning baseline)",
            f"{_WEIGHTS}:weight_magnitude",
            needs=(Need.POLICY_WEIGHTS,),
            layer_kinds=_NOT_HEAD,
            layer_limit=_WIRING,
            per_channel="the L1 norm of the channel's kernel and of every weight that reads it",
        ),
        _spec(
            "wanda",
            "least important by Wanda: |outgoing weights| × activation RMS (a pruning baseline)",
            f"{_WEIGHTS}:wanda",
            needs=(Need.POLICY_WEIGHTS,),
            layer_kinds=_NOT_HEAD,
            layer_limit=_WIRING,
            per_channel="the RMS of the channel's activations over rows and positions × the L1 "
            "norm of every weight that reads it",
        ),
        _spec(
            "activation_magnitude",
            "most active units (selectivity without labels)",
            f"{_ACTIVATIONS}:activation_magnitude",
            per_channel=_MEAN,
        ),
        _spec(
            "routed",
            "the units gradient routing trained the trait into",
            "marlmod.strategies.routed:routed",
            needs=(Need.ROUTED_PRETRAINING,),
            layer_kinds=(LayerKind.HIDDEN,),
            layer_limit="ranks the units routed pretraining put the trait in, which lie in one "
            "hidden dense layer",
        ),
    )
}


def unknown_strategy(name: str) -> str:
    """The message for a name that is not registered, listing the valid ones."""
    return f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}"


def names_for(kind: LayerKind) -> tuple[str, ...]:
    """The strategies that can rank a layer of ``kind``, in registry order."""
    return tuple(name for name, spec in STRATEGIES.items() if kind in spec.layer_kinds)
