"""Scaling-law fits: the compute frontier L(C) = E + A * C^-alpha (least squares in log L), Chinchilla's
approach 3 L(N, D) = E + A / N^a + B / D^b (Huber loss on log L from a grid of starts), seeded
bootstrap confidence intervals over runs, the extrapolation error on a held-out largest budget, and
the compute multiplier of one architecture against another."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

MIN_POINTS = 5  # a fit needs at least this many points (after the hold-out)


class FitError(ValueError):
    """Not enough (or unusable) data for a fit; the message says why."""


@dataclass
class PowerLaw:
    """L(C) = E + A * C^-alpha."""

    E: float
    A: float
    alpha: float

    def __call__(self, c):
        return self.E + self.A * np.power(np.asarray(c, dtype=float), -self.alpha)

    def inverse(self, loss: float) -> float:
        """The compute at which the law reaches ``loss`` (inf if ``loss`` <= E)."""
        if loss <= self.E:
            return math.inf
        return float(((loss - self.E) / self.A) ** (-1.0 / self.alpha))


@dataclass
class FrontierFit:
    law: PowerLaw
    n: int
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)  # 95% bootstrap intervals
    boot: list[PowerLaw] = field(default_factory=list)
    holdout: dict | None = None  # {"compute", "observed", "predicted", "error"}: the largest budget held out
    mixture: str | None = None  # the training mixture fitted, where the study has several

    def band(self, c, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise bootstrap band of the fitted curve at computes ``c``."""
        if not self.boot:
            y = self.law(c)
            return y, y
        curves = np.array([b(c) for b in self.boot])
        lo, hi = np.percentile(curves, [50 * (1 - level), 100 - 50 * (1 - level)], axis=0)
        return lo, hi


def _fit_once(c: np.ndarray, loss: np.ndarray, start: PowerLaw | None = None) -> PowerLaw:
    from scipy.optimize import least_squares

    logc = np.log(c)
    y = np.log(loss)
    scale = logc.mean()

    x = logc - scale

    def residual(p):
        e, a, alpha = p
        # E + A C^-alpha with E = exp(e), A = exp(a + alpha * scale): C normalised for conditioning.
        return np.logaddexp(e, a - alpha * x) - y

    def jacobian(p):
        e, a, alpha = p
        share = 1.0 / (1.0 + np.exp(a - alpha * x - e))  # d residual / d e
        return np.stack([share, 1.0 - share, -(1.0 - share) * x], axis=1)

    best = None
    floor = float(loss.min())
    starts = [(e0, math.log(max(float(loss.mean()) - math.exp(e0), 1e-6)), alpha0) for e0, alpha0 in
              itertools.product((math.log(floor * 0.3), math.log(floor * 0.7), math.log(floor * 0.95)), (0.05, 0.2, 0.5))]
    if start is not None:  # a bootstrap refit starts from the full fit (one start is enough there)
        starts = [(math.log(min(start.E, floor * 1.4)), math.log(start.A) - start.alpha * scale, start.alpha)]
    for e0, a0, alpha0 in starts:
        try:
            out = least_squares(residual, [e0, a0, alpha0], jac=jacobian, bounds=([-30, -30, 1e-4], [math.log(floor * 1.5), 30, 5]),
                                method="trf")
        except ValueError:
            continue
        if best is None or out.cost < best.cost:
            best = out
    if best is None:
        raise FitError("the optimiser found no fit")
    e, a, alpha = best.x
    return PowerLaw(math.exp(e), math.exp(a + alpha * scale), float(alpha))


def fit_frontier(compute, loss, bootstrap: int = 200, seed: int = 0, holdout: bool = False) -> FrontierFit:
    """Fit L(C) = E + A C^-alpha to (compute, loss) points. ``holdout``: leave the largest compute
    out of the fit and report how far the fit's prediction there is from what was measured."""
    c = np.asarray(compute, dtype=float)
    y = np.asarray(loss, dtype=float)
    if c.shape != y.shape or c.ndim != 1:
        raise FitError("compute and loss must be two equal-length lists")
    if np.any(c <= 0) or np.any(y <= 0) or not np.all(np.isfinite(c)) or not np.all(np.isfinite(y)):
        raise FitError("compute and loss must be positive and finite")
    held = None
    if holdout:
        top = float(c.max())
        keep = c < top
        held = (top, float(y[~keep].mean()))
        c, y = c[keep], y[keep]
    if len(np.unique(c)) < MIN_POINTS:
        raise FitError(f"{len(np.unique(c))} distinct budgets{' after holding out the largest' if holdout else ''}; "
                       f"a fit needs at least {MIN_POINTS}")
    law = _fit_once(c, y)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(bootstrap):
        idx = rng.integers(0, len(c), len(c))
        if len(np.unique(c[idx])) < 3:
            continue
        try:
            boot.append(_fit_once(c[idx], y[idx], law))
        except FitError:
            continue
    fit = FrontierFit(law, len(c), boot=boot)
    if boot:
        for key in ("E", "A", "alpha"):
            values = np.array([getattr(b, key) for b in boot])
            fit.ci[key] = (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5)))
    if held is not None:
        predicted = float(law(held[0]))
        fit.holdout = {"compute": held[0], "observed": held[1], "predicted": predicted,
                       "error": (predicted - held[1]) / held[1]}
    return fit


@dataclass
class Multiplier:
    """How much compute ``other`` needs to reach ``base``'s loss at ``reference``, as a multiple of
    ``reference`` (below 1: ``other`` needs less)."""

    value: float
    ci: tuple[float, float] | None
    reference: float
    loss: float


def compute_multiplier(base: FrontierFit, other: FrontierFit, reference: float) -> Multiplier:
    loss = float(base.law(reference))
    value = other.law.inverse(loss) / reference
    ci = None
    pairs = list(zip(base.boot, other.boot))
    if pairs:
        values = np.array([o.inverse(float(b(reference))) / reference for b, o in pairs])
        ci = (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5)))
    return Multiplier(value, ci, reference, loss)


@dataclass
class ChinchillaFit:
    """L(N, D) = E + A / N^a + B / D^b."""

    E: float
    A: float
    a: float
    B: float
    b: float
    n: int

    def __call__(self, n, d):
        return self.E + self.A / np.power(np.asarray(n, float), self.a) + self.B / np.power(np.asarray(d, float), self.b)


def fit_chinchilla(params, data, loss, delta: float = 1e-3) -> ChinchillaFit:
    """Chinchilla's approach 3: minimise the Huber loss (``delta``) of log-space residuals with
    L-BFGS from a grid of starts, parameters as logs (E = e^e, A = e^alog, B = e^blog)."""
    from scipy.optimize import minimize
    from scipy.special import huber, logsumexp

    n = np.asarray(params, float)
    d = np.asarray(data, float)
    y = np.log(np.asarray(loss, float))
    if len({(a, b) for a, b in zip(n, d)}) < MIN_POINTS:
        raise FitError(f"{len(set(zip(n, d)))} distinct (model size, data) points; a fit needs at least {MIN_POINTS}")
    if len(np.unique(n)) < 2 or len(np.unique(d)) < 2:
        raise FitError("the study varies only one of model size and data; approach 3 needs both")
    ln, ld = np.log(n), np.log(d)

    def objective(p):
        alog, blog, e, a, b = p
        pred = logsumexp(np.stack([alog - a * ln, blog - b * ld, np.full_like(ln, e)]), axis=0)
        return huber(delta, pred - y).sum()

    best = None
    for alog, blog, e, a, b in itertools.product((0, 5, 10), (0, 5, 10), (-1, 0.5), (0.2, 0.5), (0.2, 0.5)):
        out = minimize(objective, [alog, blog, e, a, b], method="L-BFGS-B")
        if best is None or out.fun < best.fun:
            best = out
    alog, blog, e, a, b = best.x
    return ChinchillaFit(math.exp(e), math.exp(alog), float(a), math.exp(blog), float(b), len(n))
