"""Locating at weight granularity: one score per weight around the pruned layer.

A unit prune zeroes everything a unit touches. A weight prune zeroes individual entries of the
same parameters — the producing Linear's weight and bias (the layer's incoming side) and the
consuming Linear's weight (its outgoing side) — so the two granularities draw from one pool and
are compared at the same count of zeroed entries (``SeedRun`` takes it from the unit prune of the
same fraction). Scores come from each strategy's own unit scores (``credit``), so ``<s>~weights``
vs ``<s>`` compares granularity, not locating methods; ``random`` picks uniformly random entries.
"""

from __future__ import annotations

import numpy as np
import torch

from marlmod.errors import MarlmodError
from marlmod.prune import WeightIndices
from marlmod.record import inputs_on
from marlmod.strategies.common import LayerSlice, layer_slices, need
from marlmod.strategies.evidence import Evidence
from marlmod.strategies.moments import column_mean, square

WeightScores = dict[str, np.ndarray]  # parameter name -> one score per entry, its shape


def per_weight_scores(
    strategy: str, ev: Evidence, unit_scores: np.ndarray, rng: np.random.Generator
) -> WeightScores:
    """Scores of every candidate weight for ``strategy`` (higher = prune first).

    ``random``'s unit scores are a permutation that carries no evidence; crediting them to
    weights would favour big weights, so the weight-level random baseline is uniform instead.
    """
    if strategy == "random":
        return {name: rng.random(tuple(p.shape)) for name, p in candidates(ev).items()}
    return credit(ev, unit_scores)


def candidates(ev: Evidence) -> dict[str, torch.Tensor]:
    """The parameters a prune of ``ev.layer`` may zero, by name: producer weight and bias,
    consumer weight of each layer it spans (the same entries a unit prune zeroes)."""
    out: dict[str, torch.Tensor] = {}
    for s in layer_slices(ev, "weights"):
        out[f"{s.wiring.producer}.weight"] = s.producer.weight
        out[f"{s.wiring.producer}.bias"] = s.producer.bias
        out[f"{s.wiring.consumer}.weight"] = s.consumer.weight
    return out


def credit(ev: Evidence, unit_scores: np.ndarray) -> WeightScores:
    """Per-weight score = the score of the unit the weight touches × the weight's share of that
    unit's signal on trait steps.

    A unit's score says how responsible the unit is for the trait; a weight is responsible for
    the part of that which flows through it. Its share is its Wanda importance (Sun et al. 2023:
    |w| × RMS of the input it multiplies — the size of its contribution) over the total of the
    unit's weights on the same side:

    - incoming (unit u's row of the producer, and its bias as a weight on a constant input 1):
      |W[u, j]|·rms(x_j) / (Σ_j' |W[u, j']|·rms(x_j') + |b_u|), x the producer's input;
    - outgoing (unit u's column of the consumer): |W[i, u]|·rms(h_u) / Σ_i' |W[i', u]|·rms(h_u),
      which is |W[i, u]| / Σ_i' |W[i', u]|: every weight of the column multiplies the same
      input, so rms(h_u) cancels and only zeroes the shares of a unit silent on trait rows.

    Each side's shares sum to one, so each side carries the unit's whole score: cutting all of a
    unit's incoming weights, or all of its outgoing ones, silences it as a unit prune does. RMS is
    over *trait* rows: a weight whose input is silent whenever the trait happens cannot carry the
    trait, and zeroing it would cost capability only. Signs carry over: units that fall quiet
    during the trait (pruning them mimics it) give negative weight scores and rank last.

    A conv channel is a unit the same way: its incoming weights are its kernel, where x_j is input
    channel j (its RMS over rows and positions, one per channel like the unit itself), and its
    outgoing weights are all those that read it (``marlmod.prune.consumer_columns``), with
    h_u its recorded spatial mean. Over ``all_hidden`` each layer is credited on its own and a
    weight between two hidden layers, which touches a unit of each, sums both credits.

    Chosen over weight-level gradient × weight because it works from *every* strategy's unit
    scores: gradient × weight would be one more locating method (attribution's), the same for
    every strategy. Scores that encode only ranks (``cluster``, ``routed``) keep their order of
    units, but the product is calibrated only within their top group.
    """
    scores = np.asarray(unit_scores, dtype=np.float64)
    if scores.shape != (ev.units,) or not np.isfinite(scores).all():
        raise MarlmodError(f"need {ev.units} finite unit scores, got shape {scores.shape}")
    trait = ev.trait.astype(bool)
    if not trait.any():
        raise MarlmodError("weight-level scores need trait rows; the trait never occurred")
    policy = need(ev, "policy", "weights")
    obs = need(ev, "obs", "weights")[trait]
    out: WeightScores = {}
    for layer in layer_slices(ev, "weights"):
        x = inputs_on(policy, layer.wiring.producer, obs)
        x_rms = _rms(x, channels=_in_channels(layer.producer))
        h_rms = _rms(ev.acts[:, layer.columns], trait)
        for name, value in _layer_credit(layer, scores[layer.columns], x_rms, h_rms).items():
            out[name] = out[name] + value if name in out else value
    return out


def _layer_credit(
    layer: LayerSlice, scores: np.ndarray, x_rms: np.ndarray, h_rms: np.ndarray
) -> WeightScores:
    """``credit`` for one layer: unit score × share on the producer's weight (a row, or a
    kernel whose input channel j has RMS ``x_rms[j]``) and bias, and on every consumer weight
    that reads a unit."""
    w_in = layer.producer.weight.detach().cpu().numpy().astype(np.float64)
    bias = layer.producer.bias.detach().cpu().numpy().astype(np.float64)
    w_out = layer.consumer.weight.detach().cpu().numpy().astype(np.float64)
    per_cell = (slice(None),) + (None,) * (w_in.ndim - 1)  # a unit's value on each of its cells
    incoming = np.abs(w_in) * x_rms.reshape(1, -1, *([1] * (w_in.ndim - 2)))
    in_total = incoming.reshape(len(w_in), -1).sum(axis=1) + np.abs(bias)
    n = len(scores)
    if w_out.ndim == 2 and w_out.shape[1] == n:  # a unit is one column
        outgoing = np.abs(w_out) * h_rms[None, :]
        out_score = scores[None, :] * _divide(outgoing, outgoing.sum(axis=0)[None, :])
    else:  # [out, units, positions or kernel cells]: every cell of a unit's slice reads it
        grouped = np.abs(w_out).reshape(len(w_out), n, -1) * h_rms[None, :, None]
        share = _divide(grouped, grouped.sum(axis=(0, 2))[None, :, None])
        out_score = (scores[None, :, None] * share).reshape(w_out.shape)
    return {
        f"{layer.wiring.producer}.weight": scores[per_cell] * _divide(incoming, in_total[per_cell]),
        f"{layer.wiring.producer}.bias": scores * _divide(np.abs(bias), in_total),
        f"{layer.wiring.consumer}.weight": out_score,
    }


def _in_channels(producer: torch.nn.Module) -> int | None:
    """Input channels of a Conv2d (its input's RMS is taken per channel), None for a Linear."""
    return producer.in_channels if isinstance(producer, torch.nn.Conv2d) else None


def top_weights(scores: WeightScores, count: int) -> WeightIndices:
    """The ``count`` highest-scoring entries over all parameters, as sorted flat indices per
    parameter (ties: earlier parameter, lower index first)."""
    names = list(scores)
    flat = np.concatenate([scores[n].ravel() for n in names])
    if not 0 < count <= len(flat):
        raise MarlmodError(f"cannot prune {count} of {len(flat)} weights")
    chosen = np.sort(np.argsort(-flat, kind="stable")[:count])
    bounds = np.cumsum([0, *(scores[n].size for n in names)])
    return tuple(
        (name, tuple(int(i - lo) for i in chosen[(chosen >= lo) & (chosen < hi)]))
        for name, lo, hi in zip(names, bounds[:-1], bounds[1:], strict=True)
    )


def _rms(x: np.ndarray, rows: np.ndarray | None = None, channels: int | None = None) -> np.ndarray:
    """Root mean square of each column over ``rows`` (in row chunks: the rows are not copied);
    with ``channels``, ``x``'s columns are channel-major maps and each channel's RMS is over
    rows and positions."""
    if channels is None:
        return np.sqrt(column_mean(x, rows, square))
    maps = x.reshape(len(x), channels, -1)
    return np.sqrt(np.mean(np.square(maps.astype(np.float64)), axis=(0, 2)))


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (a unit with no live connection on that side)."""
    den = np.broadcast_to(den, num.shape)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)
