"""Helpers shared by the locating strategies: group splits, effect sizes, layer lookup."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from marlmod.errors import MarlmodError
from marlmod.prune import hidden_layer
from marlmod.record import resolve_module

if TYPE_CHECKING:
    from marlmod.locate import Evidence


def split_by_trait(acts: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows with and without the trait; fails clearly when one group is empty."""
    labels = labels.astype(bool)
    if labels.all() or not labels.any():
        raise MarlmodError(
            f"cannot contrast: the trait occurred on {int(labels.sum())} of {len(labels)} recorded "
            "steps; record more episodes or check that pretraining taught the trait"
        )
    return acts[labels].astype(np.float64), acts[~labels].astype(np.float64)


def cohens_d(on: np.ndarray, off: np.ndarray) -> np.ndarray:
    """Signed (mean on − mean off) / pooled std per column; 0 where both groups are constant."""
    pooled = np.sqrt(0.5 * (on.var(axis=0) + off.var(axis=0)))
    diff = on.mean(axis=0) - off.mean(axis=0)
    return np.divide(diff, pooled, out=np.zeros_like(diff), where=pooled > 1e-12)


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
