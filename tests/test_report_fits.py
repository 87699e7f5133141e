"""Scaling-law fits against synthetic data with a known truth."""

import math

import numpy as np
import pytest

from aunet_lab.reports.fits import FitError, PowerLaw, compute_multiplier, fit_chinchilla, fit_frontier

TRUTH = PowerLaw(E=1.2, A=30.0, alpha=0.15)
BUDGETS = np.logspace(11, 14, 10)


def noisy(law, c, sigma, seed):
    rng = np.random.default_rng(seed)
    return law(c) * np.exp(rng.normal(0.0, sigma, len(c)))


def test_frontier_fit_recovers_known_parameters():
    fit = fit_frontier(BUDGETS, noisy(TRUTH, BUDGETS, 0.002, 0), bootstrap=50)
    assert fit.law.E == pytest.approx(1.2, rel=0.1)
    assert fit.law.alpha == pytest.approx(0.15, rel=0.15)
    assert fit.law(1e13) == pytest.approx(float(TRUTH(1e13)), rel=0.005)
    exact = fit_frontier(BUDGETS, TRUTH(BUDGETS), bootstrap=0)
    assert (exact.law.E, exact.law.A, exact.law.alpha) == pytest.approx((1.2, 30.0, 0.15), rel=1e-3)


def test_frontier_interval_covers_the_truth_in_90_to_99_of_100_datasets():
    covered = {"E": 0, "alpha": 0}
    for seed in range(100):
        fit = fit_frontier(BUDGETS, noisy(TRUTH, BUDGETS, 0.01, 1000 + seed), bootstrap=60, seed=seed)
        for key in covered:
            lo, hi = fit.ci[key]
            covered[key] += lo <= getattr(TRUTH, key) <= hi
    for key, count in covered.items():
        assert 90 <= count <= 99, (key, count)


def test_holdout_error_and_too_few_points():
    y = noisy(TRUTH, BUDGETS, 0.002, 1)
    fit = fit_frontier(BUDGETS, y, bootstrap=20, holdout=True)
    assert fit.n == 9 and fit.holdout["compute"] == BUDGETS[-1]
    assert fit.holdout["observed"] == pytest.approx(y[-1])
    assert abs(fit.holdout["error"]) < 0.02
    with pytest.raises(FitError, match="4 distinct budgets after holding out the largest; a fit needs at least 5"):
        fit_frontier(BUDGETS[:5], y[:5], holdout=True, bootstrap=0)
    with pytest.raises(FitError, match="4 distinct budgets"):
        fit_frontier(BUDGETS[:4], y[:4], bootstrap=0)


def test_compute_multiplier_of_a_shifted_law():
    # Another architecture that reaches any loss with half the compute: A' = A * 0.5^alpha.
    other = PowerLaw(TRUTH.E, TRUTH.A * 0.5 ** TRUTH.alpha, TRUTH.alpha)
    base_fit = fit_frontier(BUDGETS, noisy(TRUTH, BUDGETS, 0.002, 2), bootstrap=100, seed=1)
    other_fit = fit_frontier(BUDGETS, noisy(other, BUDGETS, 0.002, 3), bootstrap=100, seed=2)
    m = compute_multiplier(base_fit, other_fit, reference=1e14)
    assert m.value == pytest.approx(0.5, rel=0.2)
    assert m.ci[0] < 0.5 < m.ci[1]
    assert math.isinf(PowerLaw(2.0, 1.0, 0.1).inverse(1.5))


def test_chinchilla_approach_3_recovers_known_exponents():
    rng = np.random.default_rng(0)
    n = np.repeat(np.logspace(6, 8, 5), 5)
    d = np.tile(np.logspace(8, 10, 5), 5)
    loss = (1.5 + 400 / n ** 0.34 + 1200 / d ** 0.28) * np.exp(rng.normal(0, 0.002, len(n)))
    fit = fit_chinchilla(n, d, loss)
    assert fit.a == pytest.approx(0.34, abs=0.05) and fit.b == pytest.approx(0.28, abs=0.05)
    assert fit.E == pytest.approx(1.5, rel=0.1)
    with pytest.raises(FitError, match="varies only one"):
        fit_chinchilla(np.full(6, 1e7), np.logspace(8, 10, 6), loss[:6])
