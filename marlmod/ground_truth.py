"""Ground-truth localisation: how well does each strategy's unit ranking find units known, by
construction, to carry the trait?

On an ordinary trained net nobody knows where the trait lives, so a strategy is judged by what
its prune does. Here the answer is built in, and each ranking is scored against it with

- **AUROC**: the probability that a known unit outranks an other unit (ties count half), so 0.5
  is chance whatever the number of known units, and 1 puts every known unit first;
- **precision at k**: the share of known units among the top k, k = the number of known units
  (expected value over a random order of tied scores, so no strategy gains from unit indices).

Two constructions (``CONSTRUCTIONS``):

``routed``
    a net pretrained with gradient routing at full label coverage (``pretrain.method: routing``,
    ``label_coverage: 1``, no placebo): every labelled trait step's gradient reached only the
    routed units of ``prune.layer``, so they are the known module
    (``marlmod.routing.designated_units``).
``grafted``
    a trained net that never learned the trait (the seed's control) with a module grafted in: k
    units of its last hidden layer, drawn at random, are overwritten to compute one *state
    feature* — a logistic detector of the env's opportunity label (Gathering: a rival in zap
    range), fitted on the layer's inputs — and the action head reads them only into the trait
    action's logit. The trait is then carried by those units by construction; how much trait the
    graft adds is reported beside the scores (``trait_rate_base``, ``trait_rate_grafted``).

Evidence is gathered as for a run's own locating (recorded on the misbehaving env, control
activations on the same states), so every strategy reads what it reads in the pipeline; the
``control`` strategy's control here is the un-grafted base net, a favourable reference. The
``routed`` strategy is not scored: it is the answer. ``experiments/ground_truth.py`` runs this
over finished runs and writes the table.
"""

from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler
from torch import nn

from marlmod.errors import MarlmodError
from marlmod.layers import ACTION_HEAD, LayerKind
from marlmod.locate import score_units
from marlmod.prune import hidden_layer
from marlmod.record import activations_on, inputs_on, resolve_module
from marlmod.rollout import rollout
from marlmod.strategies.evidence import Evidence
from marlmod.strategies.registry import STRATEGIES, names_for

if TYPE_CHECKING:
    from marlmod.pipeline import SeedRun

CONSTRUCTIONS = ("routed", "grafted")
GRAFT_SEED_OFFSET = 40_000  # rollouts of the graft never reuse the run's evaluation episodes
DETECTOR_C = 1.0  # inverse L2 strength of the feature detector (standardised inputs)
GRAFT_GAIN = 2.0  # trait logit added per unit of detector log-odds (summed over the module)


# ---------------------------------------------------------------- scoring a ranking
def auroc(scores: np.ndarray, known: tuple[int, ...]) -> float:
    """P(a known unit outranks an other unit), ties counting half."""
    labels = np.zeros(len(scores), dtype=bool)
    labels[list(known)] = True
    if labels.all() or not labels.any():
        raise MarlmodError(f"AUROC needs known and other units; {len(known)} of {len(scores)}")
    return float(roc_auc_score(labels, np.asarray(scores, dtype=np.float64)))


def precision_at_k(scores: np.ndarray, known: tuple[int, ...]) -> float:
    """Share of known units among the top k (k = number of known units), in expectation over a
    random order of the units tied at the k-th score."""
    scores = np.asarray(scores, dtype=np.float64)
    k = len(known)
    is_known = np.zeros(len(scores), dtype=bool)
    is_known[list(known)] = True
    threshold = np.sort(scores)[::-1][k - 1]
    above, tied = scores > threshold, scores == threshold
    slots = k - int(above.sum())
    expected = (is_known & above).sum() + slots * (is_known & tied).sum() / tied.sum()
    return float(expected / k)


def scorable_strategies(ev: Evidence) -> tuple[str, ...]:
    """Every registered strategy that ranks a hidden dense layer and finds what it reads in
    ``ev``, but ``routed`` (it is the answer, not a search)."""
    present = {name for name in vars(ev) if getattr(ev, name) is not None}
    return tuple(
        name
        for name in names_for(LayerKind.HIDDEN)
        if name != "routed" and STRATEGIES[name].evidence_fields() <= present
    )


def score_strategies(ev: Evidence, known: tuple[int, ...], seed: int) -> list[dict]:
    """One row per strategy: its AUROC and precision at k against ``known``. Seeded per
    strategy as the pipeline seeds it; a strategy that cannot score this evidence (too few rows
    for a group, say) gets NaN and its reason."""
    rows = []
    for name in scorable_strategies(ev):
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        try:
            scores = score_units(name, ev, rng)
            row = {"auroc": auroc(scores, known), "precision_at_k": precision_at_k(scores, known)}
        except MarlmodError as err:
            row = {"auroc": float("nan"), "precision_at_k": float("nan"), "error": str(err)}
        rows.append({"strategy": name, **row})
    return rows


# ---------------------------------------------------------------- construction (a): routed
def routed_truth(seed: SeedRun) -> tuple[Evidence, tuple[int, ...]]:
    """The pretrained routed net's evidence (the run's own recording) and its routed units."""
    cfg = seed.scenario.pretrain
    if cfg.method != "routing" or cfg.label_coverage != 1.0 or cfg.placebo:
        raise MarlmodError(
            "the routed ground truth needs pretrain.method routing with label_coverage 1.0 and "
            f"no placebo; {seed.scenario.name} has {cfg.method}, coverage {cfg.label_coverage}"
        )
    ev = seed.evidence(seed.pretrained_model())
    return ev, seed.routed_units() or ()


# ---------------------------------------------------------------- construction (b): grafted
@dataclass(frozen=True)
class Graft:
    """What was grafted: ``units`` of ``layer`` detect a state feature and drive ``action``."""

    layer: str
    units: tuple[int, ...]
    action: int
    weights: np.ndarray  # the detector, over the layer's inputs
    bias: float
    gain: float = GRAFT_GAIN


def last_hidden_layer(policy: nn.Module, layers: tuple[str, ...]) -> str:
    """The hidden layer the action head reads: the one a graft can wire to the trait logit."""
    layer = layers[-1]
    if hidden_layer(policy, layer).consumer != ACTION_HEAD:
        raise MarlmodError(f"{layer!r} does not feed the action head; nothing to graft into")
    return layer


def fit_detector(x: np.ndarray, feature: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    """A logistic detector of ``feature`` from ``x``, as raw weights and bias: w·x + b is the
    log-odds, so a ReLU unit computing it fires exactly where the feature is more likely than
    not. Balanced classes (the feature may be rare)."""
    feature = np.asarray(feature, dtype=bool)
    if feature.all() or not feature.any():
        raise MarlmodError(
            f"a graft detects a state feature, but the opportunity label is {feature.mean():.0%} "
            "true on the recorded rows (an env that labels no opportunity cannot be grafted)"
        )
    scaler = StandardScaler().fit(x.astype(np.float64))
    model = LogisticRegression(
        C=DETECTOR_C, class_weight="balanced", max_iter=2000, random_state=seed
    ).fit(scaler.transform(x.astype(np.float64)), feature)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    weights = model.coef_[0] / scale
    bias = float(model.intercept_[0] - (model.coef_[0] * scaler.mean_ / scale).sum())
    return weights, bias


@torch.no_grad()
def apply_graft(policy: nn.Module, graft: Graft) -> None:
    """Overwrite ``graft.units`` in place: incoming weights = the detector, outgoing = only into
    the trait action's logit, ``gain`` per unit of log-odds shared over the units."""
    wiring = hidden_layer(policy, graft.layer)
    producer = resolve_module(policy, wiring.producer)
    head = resolve_module(policy, wiring.consumer)
    units = torch.tensor(graft.units, dtype=torch.long)
    producer.weight[units] = torch.as_tensor(graft.weights, dtype=producer.weight.dtype)
    producer.bias[units] = graft.bias
    head.weight[:, units] = 0.0
    head.weight[graft.action, units] = graft.gain / len(graft.units)


def trait_action(ev: Evidence) -> int:
    """The action taken most often on trait steps (Gathering's zap), from a run's evidence."""
    actions = np.asarray(ev.actions)[ev.trait.astype(bool)]
    if not len(actions):
        raise MarlmodError("the trait never occurred in the recording; no trait action to wire")
    return int(np.bincount(actions.astype(np.int64)).argmax())


def grafted_truth(
    seed: SeedRun, units: int, episodes: int | None = None
) -> tuple[Evidence, tuple[int, ...], dict[str, float]]:
    """Graft ``units`` trait units into the seed's control net and record evidence on it.

    Returns the evidence, the grafted units and the trait rate before and after the graft."""
    base = seed.control_model().policy
    layers = seed.scenario.network.policy_layers
    layer = last_hidden_layer(base, layers)
    width = seed.scenario.network.hidden[-1]
    if not 0 < units < width:
        raise MarlmodError(f"graft {units} units into a layer of {width}: need 0 < units < width")
    episodes = episodes or seed.scenario.record_episodes
    offset = GRAFT_SEED_OFFSET + seed.seed
    role = seed.scenario.env.trait_role
    before = rollout(base, seed.aggressive, episodes, offset, seed.trait)
    rows = before.rows_of(role)
    x = inputs_on(base, hidden_layer(base, layer).producer, before.obs[rows])
    weights, bias = fit_detector(x, before.opportunity[rows], seed.seed)
    chosen = np.random.default_rng([seed.seed, width, units]).choice(width, units, replace=False)
    action = trait_action(seed.evidence(seed.pretrained_model()))
    graft = Graft(layer, tuple(sorted(int(u) for u in chosen)), action, weights, bias)
    grafted = copy.deepcopy(base)
    apply_graft(grafted, graft)
    after = rollout(grafted, seed.aggressive, episodes, offset + 1, seed.trait, record=[layer])
    rows = after.rows_of(role)
    ev = Evidence(
        acts=after.activations[layer][rows],
        trait=after.trait[rows],
        opportunity=after.opportunity[rows],
        obs=after.obs[rows],
        actions=after.actions[rows],
        control_acts=activations_on(base, layer, after.obs[rows]),
        policy=grafted,
        layer=layer,
    )
    rates = {
        "trait_rate_base": before.trait_rate(role),
        "trait_rate_grafted": after.trait_rate(role),
    }
    return ev, graft.units, rates
