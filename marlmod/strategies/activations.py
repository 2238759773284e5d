"""Strategies that read only recorded activations and labels (no weights, no gradients), and
the ``random`` baseline, which reads nothing but the number of units.

All are signed towards "fires *for* the trait": pruning sets a unit to zero, so the units worth
removing are those whose activity drives the trait, not those that fall silent during it (see
``standardised_mean_difference``). Group means and variances are taken in row chunks
(``marlmod.strategies.moments``), so a million-row recording is never copied whole.
"""

from __future__ import annotations

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

from marlmod.errors import MarlmodError, TraitNotObserved
from marlmod.strategies.common import cohens_d, need, split_by_trait, trait_contrast, trait_groups
from marlmod.strategies.evidence import Evidence
from marlmod.strategies.moments import absolute, column_mean, column_moments

MIN_GROUP_ROWS = 10  # fewer rows than this in a group gives an effect size that is mostly noise
SELECTIVE_EPS = 1e-3  # floor of the ratio's denominator, as a fraction of the layer's mean |act|
PROBE_C = 0.05  # inverse L1 strength on standardised activations: a handful of units survive
CONTROL_RIDGE = 1.0  # ridge penalty when predicting pretrained units from the control's layer


def standardised_mean_difference(ev: Evidence, rng: np.random.Generator) -> np.ndarray:
    """Cohen's d of each unit: (mean on trait rows − mean off) / pooled std, *signed*.

    Signed on purpose: pruning sets a unit to zero, i.e. "not firing". Removing units that fire
    *for* the trait removes its drive; removing units that are *quiet* during the trait mimics the
    trait state and, measured on the aggression scenario, raises the attack rate several-fold.
    A unit constant in both groups scores 0 rather than dividing by zero.
    """
    return trait_contrast(ev.acts, ev.trait)


def random_units(ev: Evidence, rng: np.random.Generator) -> np.ndarray:
    """The baseline every locating method must beat: a random order of the units."""
    return rng.permutation(ev.units).astype(np.float64)


def selective(ev: Evidence, rng: np.random.Generator) -> np.ndarray:
    """Pochinkov & Schoots (2023) selective pruning: mean |activation| on trait rows ("forget")
    divided by mean |activation| on non-trait rows ("retain").

    Measures how much more a unit is used for the trait than for everything else, so pruning
    the top units should cost the trait much and the task little — their stated goal. A unit
    silent on non-trait rows would divide by zero, so the denominator is floored at
    ``SELECTIVE_EPS`` × the layer's mean |activation| (scale-free; a dead unit scores 0, a unit
    that fires only on the trait scores highest but finitely).
    """
    on, off = trait_groups(ev.trait)
    forget, retain = column_mean(ev.acts, on, absolute), column_mean(ev.acts, off, absolute)
    floor = max(SELECTIVE_EPS * float(np.abs(ev.acts).mean()), 1e-12)
    return forget / np.maximum(retain, floor)


def activation_magnitude(ev: Evidence, rng: np.random.Generator) -> np.ndarray:
    """Baseline: mean |activation| over all rows, *most* active units first.

    The trait-blind counterpart of ``selective`` (its numerator without the labels): if pruning
    the busiest units cuts the trait as much as ``selective`` does, the selective score adds
    nothing beyond "this unit is big". (Classic activation pruning removes the *least* active
    units to save capability; that mostly removes dead units and changes nothing, so it makes a
    weak control here.)
    """
    return column_mean(ev.acts, transform=absolute)


def opportunity(ev: Evidence, rng: np.random.Generator) -> np.ndarray:
    """Signed Cohen's d between trait and non-trait rows, using only rows where the trait was
    possible (``ev.opportunity``).

    The plain contrast partly measures *context*: an attack needs a rival in range, so units
    that merely detect "a rival is near" also separate attack rows from the rest. Within
    opportunity rows the context is shared, so what is left is the decision to misbehave.
    (An env that labels no opportunity records all True, and this equals ``contrast``.)
    """
    possible = need(ev, "opportunity", "opportunity").astype(bool)
    trait = ev.trait.astype(bool)
    on, off = possible & trait, possible & ~trait
    n_on, n_off = int(on.sum()), int(off.sum())
    if min(n_on, n_off) < MIN_GROUP_ROWS:
        raise TraitNotObserved(
            f"opportunity contrast needs ≥{MIN_GROUP_ROWS} rows per group among the "
            f"{int(possible.sum())} opportunity rows; got {n_on} with the trait and {n_off} "
            "without — record more episodes"
        )
    return cohens_d(column_moments(ev.acts, on), column_moments(ev.acts, off))


def probe(ev: Evidence, rng: np.random.Generator) -> np.ndarray:
    """Coefficients of a sparse (L1) logistic-regression probe predicting the trait from the
    standardised activations of the layer.

    Unlike a per-unit contrast, the probe weighs units jointly: of several redundant units
    carrying the same signal it keeps few, and a unit only useful together with others can
    still score. Classes are balanced (the trait is rare). Positive coefficients — "more
    activity, more trait" — rank first, because pruning silences units. L1 zeroes most
    coefficients; those units are ordered among themselves by a tiny multiple of their signed
    Cohen's d (kept below every non-zero coefficient), so a fraction larger than the probe's
    support still takes the next most trait-driving units rather than the lowest indices.
    Deterministic given ``rng`` (it seeds the solver).
    """
    d = trait_contrast(ev.acts, ev.trait)  # fails clearly on a one-class label vector
    x = StandardScaler().fit_transform(ev.acts.astype(np.float64))
    model = LogisticRegression(
        **_l1(),
        C=PROBE_C,
        solver="liblinear",
        class_weight="balanced",
        random_state=int(rng.integers(2**31 - 1)),
        max_iter=1000,
    ).fit(x, ev.trait.astype(int))
    coef = model.coef_[0].astype(np.float64)
    nonzero = np.abs(coef[coef != 0])
    tiny = 1e-3 * (nonzero.min() if len(nonzero) else 1.0)
    zero = coef == 0
    coef[zero] = tiny * np.tanh(d[zero])
    return coef


def _l1() -> dict[str, object]:
    """An L1 penalty in the spelling of the installed scikit-learn (1.8 deprecated ``penalty``)."""
    major, minor = (int(v) for v in sklearn.__version__.split(".")[:2])
    return {"l1_ratio": 1.0} if (major, minor) >= (1, 8) else {"penalty": "l1"}


def control(ev: Evidence, rng: np.random.Generator) -> np.ndarray:
    """How much more each unit fires on trait rows than the *control* network's representation
    of the same states predicts.

    The control policy (same budget, never rewarded for the trait) is a different network, so
    its unit *i* has nothing to do with the pretrained unit *i*: comparing units by index is
    meaningless. What is meaningful is the control's whole layer as a description of the state
    features any policy on this env computes. So: on non-trait rows, fit a ridge regression
    from the control layer (standardised) to each pretrained unit; on trait rows, score the
    mean residual (actual − predicted) in units of the non-trait residual std. A unit that fires
    on attack steps only because attacks happen near rivals — which the control encodes too —
    is predicted well and scores ~0; a unit carrying the decision itself is not.

    Rejected alternative: z-scoring each unit's trait contrast against the distribution of the
    control units' contrasts is a monotone transform of ``contrast`` and ranks identically.
    Caveat: the control layer must be rich enough to encode the context; a unit that the
    control happens not to represent is credited to the trait.
    """
    ctrl = need(ev, "control_acts", "control").astype(np.float64)
    if ctrl.shape[0] != ev.acts.shape[0]:
        raise MarlmodError(f"control activations {ctrl.shape} do not align with {ev.acts.shape}")
    trait = ev.trait.astype(bool)
    on, off = split_by_trait(ev.acts, trait)
    if min(len(on), len(off)) < MIN_GROUP_ROWS:
        raise TraitNotObserved(
            f"control contrast needs ≥{MIN_GROUP_ROWS} rows per group; got {len(on)} with the "
            f"trait and {len(off)} without — record more episodes"
        )
    scaler = StandardScaler().fit(ctrl[~trait])
    fit = Ridge(alpha=CONTROL_RIDGE).fit(scaler.transform(ctrl[~trait]), off)
    residual_off = off - fit.predict(scaler.transform(ctrl[~trait]))
    residual_on = on - fit.predict(scaler.transform(ctrl[trait]))
    spread = residual_off.std(axis=0)
    surprise = residual_on.mean(axis=0)
    return np.divide(surprise, spread, out=np.zeros_like(surprise), where=spread > 1e-12)
