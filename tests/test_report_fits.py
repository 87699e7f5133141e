"""Scaling-law fits against synthetic data with a known truth."""

import math

import numpy as np
import pytest

from aunet_lab.reports.fits import (FitError, PowerLaw, compute_multiplier, fit_chinchilla, fit_frontier, fit_laws,
                                    resampled_means)
from aunet_lab.intervals import seed_interval

TRUTH = PowerLaw(E=1.2, A=30.0, alpha=0.15)
BUDGETS = np.logspace(11, 14, 10)
LADDER = np.array([1e12, 2.2e12, 4.6e12, 1e13])  # the shape of the CPU ladder: 4 budgets over 10x
BPE = PowerLaw(1.0, 1600.0, 0.25)  # about 2.6 to 1.9 bits per byte over the ladder


def shifted(law: PowerLaw, m: float) -> PowerLaw:
    """The law that reaches every loss with ``m`` times the compute: L(C / m)."""
    return PowerLaw(law.E, law.A * m ** law.alpha, law.alpha)


def runs(law, budgets, seeds, sigma, seed):
    """(compute, loss) of ``seeds`` runs per budget, log-normal noise ``sigma``."""
    rng = np.random.default_rng(seed)
    c = np.repeat(budgets, seeds)
    return c, law(c) * np.exp(rng.normal(0.0, sigma, len(c)))


def test_frontier_fit_recovers_known_parameters():
    fit = fit_frontier(*runs(TRUTH, BUDGETS, 3, 0.002, 0), bootstrap=50)
    assert fit.n == 10 and list(fit.seeds) == [3] * 10
    assert fit.law.E == pytest.approx(1.2, rel=0.1)
    assert fit.law.alpha == pytest.approx(0.15, rel=0.15)
    assert fit.law(1e13) == pytest.approx(float(TRUTH(1e13)), rel=0.005)
    assert fit.ci["alpha"][0] < fit.law.alpha < fit.ci["alpha"][1]
    exact = fit_frontier(BUDGETS, TRUTH(BUDGETS))
    assert (exact.law.E, exact.law.A, exact.law.alpha) == pytest.approx((1.2, 30.0, 0.15), rel=1e-6)
    assert exact.ci == {} and exact.no_interval == "one seed: no interval"
    # The batched fit agrees with scipy's least squares (several starts) on the same objective.
    from scipy.optimize import least_squares

    c, y = LADDER, BPE(LADDER) * np.exp(np.random.default_rng(1).normal(0, 0.01, 4))
    ours = fit_laws(c, y[None], 1 / y[None] ** 2)[0]
    x = np.log(c / 3e12)
    residual = lambda p: (p[0] + p[1] * np.exp(-p[2] * x) - y) / y  # noqa: E731
    theirs = min((least_squares(residual, [e, a, al], bounds=([0, 0, 0.005], [np.inf, np.inf, 3]))
                  for e in (0.2, 1.0, 1.8) for a in (0.3, 1.0) for al in (0.1, 0.5, 1.5)), key=lambda o: o.cost)
    cost = 0.5 * np.sum(residual([ours[0], ours[1] * 3e12 ** -ours[2], ours[2]]) ** 2)
    assert cost <= theirs.cost * (1 + 1e-6) + 1e-15


@pytest.mark.parametrize("m", [1.7, 0.6])
def test_multiplier_equals_a_known_value_on_synthetic_frontiers(m):
    # AU-Net's frontier is BPE's with m times the compute: L_au(C) = L_bpe(C / m), exactly.
    base = fit_frontier(LADDER, BPE(LADDER))
    other = fit_frontier(LADDER, shifted(BPE, m)(LADDER))
    result = compute_multiplier(base, other)
    assert result.value == pytest.approx(m, abs=1e-3)
    # Read inside both fitted ranges: the lowest loss both reach at or below their largest budget.
    assert result.loss == pytest.approx(max(BPE(1e13), shifted(BPE, m)(1e13)), rel=1e-9)
    assert 1e12 <= result.reference <= 1e13 and 1e12 <= result.reference * result.value <= 1e13 * (1 + 1e-9)
    assert result.ci is None and result.seeds == 1  # one seed: no interval
    # A frontier of another shape: the multiplier is the ratio of the true laws' computes at that loss.
    law = PowerLaw(0.8, 900.0, 0.22)
    result = compute_multiplier(base, fit_frontier(LADDER, law(LADDER)))
    assert result.value == pytest.approx(law.inverse(result.loss) / BPE.inverse(result.loss), rel=1e-6)


def test_multiplier_with_seeds_has_a_paired_interval_that_covers_it():
    base = fit_frontier(*runs(BPE, LADDER, 3, 0.01, 2), seed=5)
    other = fit_frontier(*runs(shifted(BPE, 1.7), LADDER, 3, 0.01, 3), seed=5)
    result = compute_multiplier(base, other)
    assert result.seeds == 3 and result.ci[0] < 1.7 < result.ci[1]
    assert result.value == pytest.approx(1.7, rel=0.15)
    # Paired replicates: an architecture against an exact copy of itself has no spread at all.
    twin = fit_frontier(*runs(BPE, LADDER, 3, 0.01, 2), seed=5)
    assert compute_multiplier(base, twin).ci == pytest.approx((1.0, 1.0))
    unpaired = fit_frontier(*runs(BPE, LADDER, 3, 0.01, 2), seed=6)
    lo, hi = compute_multiplier(base, unpaired).ci
    assert hi - lo > 0.05


def test_multiplier_is_never_an_extrapolation():
    base = fit_frontier(LADDER, BPE(LADDER))
    far = fit_frontier(LADDER, shifted(BPE, 20.0)(LADDER))  # reaches BPE's losses only beyond 10x the ladder
    with pytest.raises(FitError, match="no common loss inside their fitted budgets"):
        compute_multiplier(base, far)


def test_seed_resampling_keeps_every_budget_and_pairs_by_seed_index():
    y = np.array([[[1.0, 2.0, 3.0], [10.0, 20.0, np.nan]]])  # two cells: three seeds, two seeds
    uniforms = np.random.default_rng(0).random((1, 500, 2, 3))
    plain = resampled_means(y, [3, 2], uniforms, correct=False)[0]
    assert ((plain[:, 0] >= 1) & (plain[:, 0] <= 3)).all() and ((plain[:, 1] >= 10) & (plain[:, 1] <= 20)).all()
    assert plain[:, 0].var() == pytest.approx(np.var([1, 2, 3]) / 3, rel=0.2)  # the bootstrap's (S-1)/S shrinkage
    scaled = resampled_means(y, [3, 2], uniforms)[0]
    assert scaled[:, 0].var() == pytest.approx(np.var([1, 2, 3], ddof=1) / 3, rel=0.2)  # corrected to s^2 / S
    assert scaled[:, 1].var() == pytest.approx(np.var([10, 20], ddof=1) / 2, rel=0.2)


def test_holdout_check_too_few_budgets_and_one_seed():
    c, y = runs(TRUTH, BUDGETS, 2, 0.002, 1)
    fit = fit_frontier(c, y, bootstrap=20)
    assert fit.n == 10 and fit.holdout["compute"] == BUDGETS[-1] and fit.holdout["budgets"] == 9
    assert fit.holdout["observed"] == pytest.approx(y[-2:].mean())
    assert abs(fit.holdout["error"]) < 0.02
    # Three budgets: the two smaller ones only identify a pure power law, which predicts an exact one.
    pure = PowerLaw(0.0, 50.0, 0.1)
    three = fit_frontier(LADDER[:3], pure(LADDER[:3]))
    assert three.holdout["law"] == "power law A C^-alpha" and abs(three.holdout["error"]) < 1e-6
    with pytest.raises(FitError, match="2 distinct budgets; a law of three parameters needs at least 3"):
        fit_frontier(LADDER[:2], BPE(LADDER[:2]))
    c, y = runs(BPE, LADDER, 2, 0.01, 4)
    mixed = fit_frontier(c[1:], y[1:])  # the smallest budget has one seed
    assert mixed.ci == {} and mixed.no_interval == "a cell with one seed: no interval"


def test_seed_interval_is_student_t_over_seeds():
    from scipy import stats

    mean, lo, hi = seed_interval([0.10, 0.14, 0.12])
    half = stats.t.ppf(0.975, 2) * np.std([0.10, 0.14, 0.12], ddof=1) / math.sqrt(3)
    assert (mean, lo, hi) == pytest.approx((0.12, 0.12 - half, 0.12 + half))
    assert math.isnan(seed_interval([0.1])[1])


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
