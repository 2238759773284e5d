"""Helpers shared by the locating strategies: trait groups, effect sizes, layer lookup."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from marlmod.errors import MarlmodError
from marlmod.prune import hidden_layer
from marlmod.record import resolve_module
from marlmod.strategies.evidence import Evidence
from marlmod.strategies.moments import Moments, column_moments


def trait_groups(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the rows with and without the trait; fails clearly when one group is empty."""
    labels = labels.astype(bool)
    if labels.all() or not labels.any():
        raise MarlmodError(
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


def layer_linears(ev: Evidence, strategy: str) -> tuple[nn.Linear, nn.Linear]:
    """The Linear that produces ``ev.layer``'s units and the one (or the head) that reads them."""
    policy: nn.Module = need(ev, "policy", strategy)
    layer = hidden_layer(policy, need(ev, "layer", strategy))
    producer = resolve_module(policy, layer.producer)
    consumer = resolve_module(policy, layer.consumer)
    if producer.out_features != ev.units:
        raise MarlmodError(
            f"{layer.producer} has {producer.out_features} units but the evidence has {ev.units}"
        )
    return producer, consumer
