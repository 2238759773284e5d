"""Statistics over seeds, as pure functions of arrays.

Few seeds make percentile-bootstrap intervals too narrow, so the headline interval for a mean is
Student's t (exact for normal data, honest at n = 3); paired differences between strategies use
the same per-seed pairing the pipeline guarantees (same pretrained model and eval episodes).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats


class Estimate(NamedTuple):
    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        if self.n < 2 or not np.isfinite(self.low):
            return f"{self.mean:.3g}"
        return f"{self.mean:.3g} [{self.low:.3g}, {self.high:.3g}]"


def mean_ci(values: np.ndarray | list[float], confidence: float = 0.95) -> Estimate:
    """Mean and two-sided Student-t confidence interval; NaNs are dropped."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    mean = float(x.mean())
    if n < 2:
        return Estimate(mean, float("nan"), float("nan"), n)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / np.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n)


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
