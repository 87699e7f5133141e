"""Interval methods, one per kind of result (docs/evaluation.md, "Intervals"), used by the summaries,
``aunet-lab eval`` and the reports alike:

- an accuracy over scored items (character tasks): a 95% Wilson interval, and none below
  ``MIN_ITEMS`` items (a handful of items says nothing, whatever an interval would claim);
- a statistic replicated over seeds (a bits-per-byte difference paired by seed): the mean with a 95%
  Student-t interval over the seeds, none with one seed.

Scaling-law fits resample seeds within cells instead (reports/fits.py), widened by the coverage
the report measures (reports/coverage.py).
"""

from __future__ import annotations

import math

import numpy as np

MIN_ITEMS = 10


def accuracy_interval(correct: int, items: int) -> tuple[float, float, float]:
    """(accuracy, low, high): the 95% Wilson interval over ``items`` independent items; NaN bounds
    below MIN_ITEMS items, NaN everything with none."""
    if items <= 0:
        return math.nan, math.nan, math.nan
    accuracy = correct / items
    if items < MIN_ITEMS:
        return accuracy, math.nan, math.nan
    from scipy.stats import binomtest

    ci = binomtest(int(correct), int(items)).proportion_ci(confidence_level=0.95, method="wilson")
    return accuracy, float(ci.low), float(ci.high)


def above_chance(low: float, chance: float) -> bool:
    """Whether the interval's lower bound clears chance; never without an interval."""
    return bool(np.isfinite(low) and low > chance)


def seed_interval(values) -> tuple[float, float, float]:
    """Mean of per-seed replicates of a statistic with its 95% Student-t interval over the seeds
    (n - 1 degrees of freedom); NaN interval with fewer than two seeds."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return (float(v.mean()) if len(v) else math.nan), math.nan, math.nan
    from scipy import stats

    if np.ptp(v) == 0:
        return float(v[0]), float(v[0]), float(v[0])
    ci = stats.ttest_1samp(v, 0.0).confidence_interval(0.95)
    return float(v.mean()), float(ci.low), float(ci.high)


def items_text(items: int) -> str:
    """How the number of items scored reads beside an accuracy (with the no-interval rule)."""
    return f"n={items} items" if items >= MIN_ITEMS else f"n={items} items, fewer than {MIN_ITEMS}: no interval"
