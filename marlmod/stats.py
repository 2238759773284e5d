"""Statistics over seeds, as pure functions of arrays with an explicit ``random_state``.

Headline intervals are percentile-bootstrap 95% CIs of the mean over seeds (scipy's
``bootstrap``, as rliable recommends for RL results); Student-t intervals are kept alongside
because with 3–5 seeds the bootstrap is known to be too narrow. The interquartile mean (IQM) and
the probability of improvement (rliable's P(X > Y)) come from scipy as well.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from scipy import stats

CIMethod = Literal["bootstrap", "t"]
BOOTSTRAP_RESAMPLES = 10_000


class Estimate(NamedTuple):
    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        if self.n < 2 or not np.isfinite(self.low):
            return f"{self.mean:.3g}"
        return f"{self.mean:.3g} [{self.low:.3g}, {self.high:.3g}]"


def finite(values: np.ndarray | list[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[np.isfinite(x)]


def mean_ci(
    values: np.ndarray | list[float],
    confidence: float = 0.95,
    method: CIMethod = "t",
    random_state: int = 0,
) -> Estimate:
    """Mean and two-sided CI (``"t"``: Student's t; ``"bootstrap"``: percentile bootstrap).

    NaNs are dropped. A constant sample gets a zero-width interval.
    """
    x = finite(values)
    n = len(x)
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    mean = float(x.mean())
    if n < 2:
        return Estimate(mean, float("nan"), float("nan"), n)
    if np.ptp(x) == 0:
        return Estimate(mean, mean, mean, n)
    if method == "bootstrap":
        res = stats.bootstrap(
            (x,),
            np.mean,
            confidence_level=confidence,
            method="percentile",
            n_resamples=BOOTSTRAP_RESAMPLES,
            random_state=random_state,
        )
        return Estimate(
            mean, float(res.confidence_interval.low), float(res.confidence_interval.high), n
        )
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / np.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n)


def iqm(values: np.ndarray | list[float]) -> float:
    """Interquartile mean: the mean of the middle 50%, robust to one odd seed."""
    x = finite(values)
    return float(stats.trim_mean(x, 0.25)) if len(x) else float("nan")


def probability_of_improvement(x: np.ndarray | list[float], y: np.ndarray | list[float]) -> float:
    """P(X > Y) + ½ P(X = Y) over all pairs of runs (the Mann–Whitney U statistic / (n·m))."""
    x, y = finite(x), finite(y)
    if not len(x) or not len(y):
        return float("nan")
    return float(stats.mannwhitneyu(x, y).statistic / (len(x) * len(y)))


def area_under_curve(steps: np.ndarray, values: np.ndarray) -> float:
    """Trapezoid area per step: the mean trait rate over the retraining run."""
    steps = np.asarray(steps, dtype=float)
    if steps[-1] <= steps[0]:
        return float(values[0])
    return float(np.trapezoid(values, steps) / (steps[-1] - steps[0]))


def first_crossing(steps: np.ndarray, values: np.ndarray, threshold: float) -> float:
    """First step at which ``values`` reach ``threshold`` (NaN if never): time to relapse."""
    hit = np.flatnonzero(np.asarray(values) >= threshold)
    return float(steps[hit[0]]) if len(hit) else float("nan")


def interpolated_crossing(steps: np.ndarray, values: np.ndarray, threshold: float) -> float:
    """Step at which ``values`` first reach ``threshold``, interpolated linearly between the two
    evaluations around the crossing (NaN if never): less tied to where the evaluations fell
    than ``first_crossing``, which matters when evaluations are far apart."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    hit = np.flatnonzero(values >= threshold)
    if not len(hit):
        return float("nan")
    i = hit[0]
    if i == 0:
        return float(steps[0])
    rise = values[i] - values[i - 1]
    return float(steps[i - 1] + (threshold - values[i - 1]) / rise * (steps[i] - steps[i - 1]))
