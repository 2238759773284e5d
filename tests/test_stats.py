"""Statistics on tiny hand-computed arrays."""

from __future__ import annotations

import numpy as np
import pytest

from marlmod.stats import area_under_curve, first_crossing, iqm, mean_ci, probability_of_improvement


def test_t_interval_matches_hand_computation() -> None:
    est = mean_ci([1.0, 2.0, 3.0], method="t")
    half = 4.302652729911275 / np.sqrt(3)  # t(0.975, df=2) × sd 1 / √3
    assert (est.mean, est.low, est.high, est.n) == pytest.approx((2.0, 2 - half, 2 + half, 3))


def test_bootstrap_interval_is_reproducible_and_inside_the_range() -> None:
    values = [0.1, 0.4, 0.35, 0.2, 0.3]
    a = mean_ci(values, method="bootstrap", random_state=3)
    assert a == mean_ci(values, method="bootstrap", random_state=3)
    assert 0.1 <= a.low < a.mean < a.high <= 0.4


def test_degenerate_samples() -> None:
    assert mean_ci([]).n == 0 and np.isnan(mean_ci([]).mean)
    assert str(mean_ci([5.0])) == "5"
    assert mean_ci([2.0, 2.0, 2.0], method="bootstrap")[:3] == (2.0, 2.0, 2.0)
    assert mean_ci([1.0, np.nan, 3.0]).n == 2


def test_iqm_ignores_the_outer_quartiles() -> None:
    assert iqm([1, 2, 3, 4, 5, 6, 7, 1000]) == pytest.approx(4.5)


def test_probability_of_improvement() -> None:
    assert probability_of_improvement([3, 4], [1, 2]) == 1.0
    assert probability_of_improvement([1, 2], [3, 4]) == 0.0
    assert probability_of_improvement([1, 2], [1, 2]) == 0.5


def test_relapse_summaries() -> None:
    steps, rates = np.array([0, 10, 20]), np.array([0.0, 0.2, 0.4])
    assert area_under_curve(steps, rates) == pytest.approx(0.2)  # (0.1·10 + 0.3·10) / 20
    assert first_crossing(steps, rates, 0.2) == 10
    assert np.isnan(first_crossing(steps, rates, 0.5))


def test_interpolated_crossing_falls_between_the_evaluations_around_it() -> None:
    from marlmod.stats import interpolated_crossing

    steps, values = np.array([0, 100, 200, 400]), np.array([0.0, 0.1, 0.3, 0.5])
    assert interpolated_crossing(steps, values, 0.2) == pytest.approx(150.0)
    assert interpolated_crossing(steps, values, 0.0) == 0.0
    assert interpolated_crossing(steps, values, 0.5) == pytest.approx(400.0)
    assert np.isnan(interpolated_crossing(steps, values, 0.6))  # censored


def test_geometric_chunks_end_at_halvings_of_the_budget() -> None:
    from marlmod.retrain import chunk_sizes

    assert chunk_sizes(200_000, 4, "geometric") == [25_000, 25_000, 50_000, 100_000]
    assert chunk_sizes(200_000, 4) == [50_000] * 4
    assert sum(chunk_sizes(1000, 12, "geometric")) >= 1000 - 12  # tiny chunks stay >= 1 step
