"""How often the report's 95% intervals cover the truth, measured by simulation on a study's own
shape (its budgets and seeds per cell, noise as its seeds spread), and the widening that brings them
to their nominal level.

Each simulated ladder draws every cell's seeds from a known frontier per architecture (log-normal
noise), then runs the report's own estimation (``fits.estimate``: the fit to every budget, the
seed resampling paired across architectures, the multiplier read inside the fitted budgets) and
asks, for the multiplier, alpha and E, how far each interval would have to be widened about its
point estimate to reach the truth. The widening applied in a report is the ``target`` quantile of
those factors (at least 1); the coverage it achieves is cross-validated (chosen on one half of the
simulations, counted on the other), so the coverage a report states was not used to choose it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aunet_lab.reports.fits import (BOOTSTRAP, FrontierFit, PowerLaw, estimate, fit_laws, log_multiplier,
                                    needed_factor, percentile_interval, reading_loss, seed_noise)

QUANTITIES = ("multiplier", "alpha", "E")
METHODS = {"seeds": "seeds resampled within each cell, deviations scaled by sqrt(S/(S-1))",
           "naive": "seeds resampled within each cell, unscaled",
           "budgets": "budgets resampled (one mean per budget)"}
SIMULATIONS = 200


@dataclass(frozen=True)
class Shape:
    """A ladder: its budgets (FLOPs) and the seeds of each budget's cell."""

    budgets: tuple[float, ...]
    seeds: tuple[int, ...]

    @classmethod
    def of(cls, fit: FrontierFit) -> "Shape":
        return cls(tuple(float(c) for c in fit.compute), tuple(int(s) for s in fit.seeds))

    @classmethod
    def uniform(cls, budgets, seeds: int) -> "Shape":
        return cls(tuple(float(c) for c in budgets), (int(seeds),) * len(budgets))

    def text(self) -> str:
        s = sorted(set(self.seeds))
        seeds = f"{s[0]}" if len(s) == 1 else f"{s[0]}-{s[-1]}"
        return f"{len(self.budgets)} budgets {min(self.budgets):.2g}-{max(self.budgets):.2g} FLOPs x {seeds} seeds"


@dataclass
class Coverage:
    """Coverage of the 95% intervals by quantity: ``raw`` as estimated, ``factor`` the widening that
    brings every simulation's intervals to ``target``, ``calibrated`` the coverage after widening,
    cross-validated (the widening chosen on one half of the simulations, counted on the other);
    ``simulated`` the intervals each figure rests on."""

    raw: dict[str, float]
    factor: dict[str, float]
    calibrated: dict[str, float]
    simulated: dict[str, int]
    noise: float
    n: int
    bootstrap: int
    method: str
    target: float
    shapes: dict[str, Shape] = field(default_factory=dict)
    noise_dof: int = 0

    def text(self, quantity: str) -> str:
        return (f"{quantity}: {100 * self.raw[quantity]:.0f}% as resampled, widened x{self.factor[quantity]:.2f}, "
                f"{100 * self.calibrated[quantity]:.0f}% after widening")


def _draw(law: PowerLaw, shape: Shape, noise: float, n: int, smax: int, rng) -> np.ndarray:
    """(n, K, smax) losses of ``shape``'s cells around ``law`` (NaN past a cell's seeds)."""
    c = np.asarray(shape.budgets)
    y = law(c)[None, :, None] * np.exp(noise * rng.standard_normal((n, len(c), smax)))
    return np.where(np.arange(smax)[None, None, :] < np.asarray(shape.seeds)[None, :, None], y, np.nan)


def _budget_bootstrap(c, y, seeds, bootstrap: int, rng):
    """The resampling this module replaced, for comparison: one mean per budget, budgets drawn with
    replacement (replicates with fewer than three distinct budgets dropped)."""
    n, k = y.shape[:2]
    means = np.nanmean(y, axis=2)
    point = fit_laws(c, means, seeds / means ** 2)
    idx = rng.integers(0, k, (n, bootstrap, k))
    draws = np.take_along_axis(np.broadcast_to(means[:, None], (n, bootstrap, k)), idx, axis=-1).reshape(-1, k)
    flat = idx.reshape(-1, k)
    boot = fit_laws(c[flat], draws, seeds[flat] / draws ** 2)
    distinct = (np.diff(np.sort(flat, axis=1), axis=1) > 0).sum(1) + 1
    boot[distinct < 3] = np.nan
    return point, boot.reshape(n, bootstrap, 3)


def simulate_coverage(shape, truth: dict[str, PowerLaw], noise: float, n: int = SIMULATIONS,
                      bootstrap: int = BOOTSTRAP, seed: int = 0, base: str = "bpe", method: str = "seeds",
                      target: float = 0.95) -> Coverage:
    """Draw ``n`` ladders of ``shape`` (one Shape for every architecture, or one each) from
    ``truth`` (a PowerLaw per architecture) with log-normal ``noise`` per seed, estimate as the
    report does (``method``: see METHODS) with ``bootstrap`` replicates, and measure how often the
    95% intervals of alpha, E (every architecture) and the multiplier against ``base`` (every other
    architecture, read at the lowest loss both reach inside the budgets) cover the truth."""
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}")
    shapes = dict(shape) if isinstance(shape, dict) else {arm: shape for arm in truth}
    rng = np.random.default_rng(seed)
    budgets = sorted({c for arm in truth for c in shapes[arm].budgets})
    smax = max(max(shapes[arm].seeds) for arm in truth)
    uniforms = rng.random((n, bootstrap, len(budgets), smax))  # shared: paired across architectures
    needs = {q: [] for q in QUANTITIES}
    est = {}
    for arm, law in truth.items():
        sh = shapes[arm]
        c, seeds = np.asarray(sh.budgets), np.asarray(sh.seeds)
        y = _draw(law, sh, noise, n, smax, rng)
        if method == "budgets":
            point, boot = _budget_bootstrap(c, y, seeds, bootstrap, rng)
        else:
            cols = [budgets.index(b) for b in sh.budgets]
            point, boot = estimate(c, y, seeds, uniforms[:, :, cols, :], correct=method == "seeds")
        est[arm] = (point, boot, c)
        for k, q in ((0, "E"), (2, "alpha")):
            lo, hi = percentile_interval(boot[..., k], axis=1)
            needs[q].append(needed_factor(point[:, k], lo, hi, getattr(law, q)))
    if base in truth:
        pb, bb, cb = est[base]
        tb = np.array([truth[base].E, truth[base].A, truth[base].alpha])
        for arm in truth:
            if arm == base:
                continue
            po, bo, co = est[arm]
            to = np.array([truth[arm].E, truth[arm].A, truth[arm].alpha])
            loss = reading_loss(pb, cb, po, co)  # NaN: no multiplier would be read (left out)
            point = log_multiplier(loss, pb, po)
            lo, hi = percentile_interval(log_multiplier(loss[:, None], bb, bo), axis=1)
            f = needed_factor(point, lo, hi, log_multiplier(loss, tb[None], to[None]))
            needs["multiplier"].append(np.where(np.isnan(loss), np.nan, f))
    raw, factor, calibrated, simulated = {}, {}, {}, {}
    halves = (np.arange(n) < n // 2, np.arange(n) >= n // 2)
    for q, parts in needs.items():
        if not parts:
            continue
        f = np.stack(parts)  # (architectures, n); NaN: no multiplier read in that simulation
        folds = [f[:, h].ravel() for h in halves]
        folds = [v[~np.isnan(v)] for v in folds]
        if not all(len(v) for v in folds):
            continue
        every = np.concatenate(folds)
        raw[q] = float(np.mean(every <= 1))
        factor[q] = _factor(every, target)
        # Two-fold cross-validation: the widening chosen on one half, its coverage counted on the other.
        hits = sum(int(np.sum(folds[1 - i] <= _factor(folds[i], target))) for i in range(2))
        calibrated[q] = hits / len(every)
        simulated[q] = len(every)
    return Coverage(raw, factor, calibrated, simulated, noise, n, bootstrap, method, target,
                    {arm: shapes[arm] for arm in truth})


def _factor(needed: np.ndarray, target: float) -> float:
    """The smallest widening (at least 1) that covers a ``target`` share of the simulations, or,
    where no widening can (intervals of zero width on the truth's side), the largest finite one: the
    coverage reported then says how far short it falls."""
    factor = float(np.quantile(needed, target, method="higher"))
    if not np.isfinite(factor):
        finite = needed[np.isfinite(needed)]
        factor = float(finite.max()) if len(finite) else 1.0
    return max(1.0, factor)


def calibrate(fits: dict[str, FrontierFit], base: str = "bpe", n: int = SIMULATIONS, seed: int = 0,
              target: float = 0.95) -> Coverage | None:
    """Measure the coverage of ``fits``' intervals at their own shape, the fitted laws as the truth
    and the noise the seeds' pooled spread, and widen them (``FrontierFit.factors``) to ``target``.
    None where no fit has replicates (one seed) or no cell has two seeds to estimate the noise."""
    live = {arm: f for arm, f in fits.items() if f.boot is not None}
    noise, dof = seed_noise(live.values())
    if not live or not dof:
        return None
    cov = simulate_coverage({arm: Shape.of(f) for arm, f in live.items()}, {arm: f.law for arm, f in live.items()},
                            noise, n=n, bootstrap=min(len(f.boot) for f in live.values()), seed=seed, base=base,
                            target=target)
    cov.noise_dof = dof
    for f in live.values():
        f.factors = dict(cov.factor)
    return cov
