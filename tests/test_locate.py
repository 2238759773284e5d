"""Locating strategies on data where the right answer is planted."""

from __future__ import annotations

import numpy as np
import pytest

from marlmod.errors import MarlmodError
from marlmod.locate import score_units, top_units
from marlmod.strategies.evidence import Evidence
from marlmod.strategies.registry import STRATEGIES


def planted(rows: int = 400, units: int = 10, unit: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.random(rows) < 0.3
    acts = np.abs(rng.normal(size=(rows, units)))
    acts[:, unit] += 2.0 * labels  # fires on trait rows
    acts[:, 2] -= 2.0 * labels  # quiet on trait rows: pruning it would mimic the trait
    return Evidence(acts=acts, trait=labels)


def test_contrast_ranks_the_planted_unit_first_and_the_quiet_unit_last() -> None:
    scores = score_units("contrast", planted(), np.random.default_rng(0))
    assert int(np.argmax(scores)) == 6
    assert int(np.argmin(scores)) == 2


def test_random_is_a_seeded_permutation() -> None:
    a = score_units("random", planted(), np.random.default_rng(1))
    b = score_units("random", planted(), np.random.default_rng(1))
    assert sorted(a) == list(range(10)) and np.array_equal(a, b)


def test_constant_units_score_zero_not_nan() -> None:
    ev = planted()
    ev.acts[:, 0] = 1.0
    assert score_units("contrast", ev, np.random.default_rng(0))[0] == 0.0


def test_top_units_takes_the_fraction_rounded_and_at_least_one() -> None:
    scores = np.arange(8.0)
    assert list(top_units(scores, 0.25)) == [6, 7]
    assert list(top_units(scores, 0.01)) == [7]


def test_unknown_strategy_lists_valid_ones() -> None:
    with pytest.raises(MarlmodError, match="valid: " + ", ".join(STRATEGIES)):
        score_units("magic", planted(), np.random.default_rng(0))


def test_contrast_needs_both_kinds_of_rows() -> None:
    ev = planted()
    never = Evidence(acts=ev.acts, trait=np.zeros_like(ev.trait))
    with pytest.raises(MarlmodError, match="trait occurred on 0 of"):
        score_units("contrast", never, np.random.default_rng(0))
