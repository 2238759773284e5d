"""Helpers shared by the locating strategies: trait groups, effect sizes, layer wiring."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from marlmod.errors import MarlmodError, TraitNotObserved
from marlmod.prune import HiddenLayer, hidden_layer, layer_paths, unit_count
from marlmod.record import resolve_module
from marlmod.strategies.evidence import Evidence
from marlmod.strategies.moments import Moments, column_moments


def trait_groups(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the rows with and without the trait; fails clearly when one group is empty."""
    labels = labels.astype(bool)
    if labels.all() or not labels.any():
        raise TraitNotObserved(
            f"cannot contrast: the trait occurred on {int(labels.sum())} of {len(labels)} recorded "
            "steps; record more episodes or check that pretraining taught the trait"
        )
    return labels, ~labels


def split_by_trait(acts: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows with and without the trait, as float64 copies (for fits that need the rows)."""
    on, off = trait_groups(labels)
    return acts[on].astype(np.float64), acts[off].astype(np.float64)


def cohens_d(on: Moments, off: Moments) -> np.ndarray:
    """Signed (mean on − mean off) / pooled std per column; 0 where both groups are constant."""
    pooled = np.sqrt(0.5 * (on.var + off.var))
    diff = on.mean - off.mean
    return np.divide(diff, pooled, out=np.zeros_like(diff), where=pooled > 1e-12)


def trait_contrast(acts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cohen's d of every unit between trait and non-trait rows, in row chunks (no copies)."""
    on, off = trait_groups(labels)
    return cohens_d(column_moments(acts, on), column_moments(acts, off))


def need(ev: Evidence, field: str, strategy: str) -> Any:
    """``ev.<field>``, or a clear error naming the strategy that needed it."""
    value = getattr(ev, field)
    if value is None:
        raise MarlmodError(
            f"strategy {strategy!r} needs Evidence.{field}, which this evidence lacks; "
            "build it with SeedRun.evidence (or pass it explicitly)"
        )
    return value


@dataclass(frozen=True)
class LayerSlice:
    """One single layer behind ``Evidence.layer`` (all of it, or one hidden layer of
    ``all_hidden``): where its units are among the evidence's columns, and its wiring."""

    path: str
    columns: slice  # its units' columns in ``ev.acts``
    wiring: HiddenLayer
    producer: nn.Module  # the Linear or Conv2d that makes its units
    consumer: nn.Module  # the layer (or head) that reads them


def layer_slices(ev: Evidence, strategy: str) -> list[LayerSlice]:
    """The layers ``ev.layer`` spans, in the order of the evidence's columns (``all_hidden``:
    every hidden dense layer, input first), with the layer that produces each and the one that
    reads it."""
    policy: nn.Module = need(ev, "policy", strategy)
    layer = need(ev, "layer", strategy)
    slices, start = [], 0
    for path in layer_paths(policy, layer):
        wiring = hidden_layer(policy, path)
        producer = resolve_module(policy, wiring.producer)
        n = unit_count(producer)
        consumer = resolve_module(policy, wiring.consumer)
        slices.append(LayerSlice(path, slice(start, start + n), wiring, producer, consumer))
        start += n
    if start != ev.units:
        raise MarlmodError(f"{layer} has {start} units but the evidence has {ev.units}")
    return slices


def incoming_l1(producer: nn.Module) -> np.ndarray:
    """Per unit: the L1 norm of its incoming weights (a Linear's row, a Conv2d's kernel)."""
    with torch.no_grad():
        weight = producer.weight.abs()
        return weight.flatten(1).sum(dim=1).cpu().numpy().astype(np.float64)


def outgoing_l1(producer: nn.Module, consumer: nn.Module) -> np.ndarray:
    """Per unit: the L1 norm of every weight that reads it (a column of the next Linear, an input
    channel of the next Conv2d, or all positions of a channel after the ``Flatten``)."""
    n = unit_count(producer)
    with torch.no_grad():
        weight = consumer.weight.abs()
        if weight.dim() == 2 and weight.shape[1] == n:  # unit i is column i
            total = weight.sum(dim=0)
        else:  # [out, units, positions or kernel cells] -> one row per unit
            total = weight.reshape(weight.shape[0], n, -1).transpose(0, 1).reshape(n, -1).sum(1)
        return total.cpu().numpy().astype(np.float64)
