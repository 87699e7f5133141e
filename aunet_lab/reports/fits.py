"""Scaling-law fits: the compute frontier L(C) = E + A * C^-alpha, seeded intervals that resample
seeds within each cell (never the budgets), the compute multiplier of one architecture against
another read inside the fitted budgets (interpolation only), the error of a fit to the smaller
budgets at the largest (a check, reported on its own), Student-t intervals over seeds as replicates,
and Chinchilla's approach 3 L(N, D) = E + A / N^a + B / D^b (Huber loss on log L from a grid of
starts).

The frontier is fitted by variable projection: for a fixed alpha, E >= 0 and A >= 0 follow by
weighted linear least squares on relative residuals (weights: seeds per cell / cell mean^2), so
the fit is a one-dimensional minimisation over log alpha (a grid, then scipy's elementwise
bracketing minimiser), vectorised over datasets: the bootstrap and the coverage simulation
(``aunet_lab.reports.coverage``) run thousands of fits in a second."""

from __future__ import annotations

import itertools
import math
import zlib
from dataclasses import dataclass, field

import numpy as np

MIN_BUDGETS = 3  # a frontier has three parameters: at least three budgets (each cell's seeds are its points)
MIN_POINTS = 5  # Chinchilla's approach 3: at least this many distinct (model size, data) points
BOOTSTRAP = 200  # replicates of the seed resampling
ALPHA_RANGE = (0.005, 3.0)  # the exponents searched
_GRID = 48


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
        return float(_inverse(loss, self.E, self.A, self.alpha))


def _inverse(loss, E, A, alpha):
    """Vectorised ``PowerLaw.inverse`` (inf where the loss is never reached)."""
    with np.errstate(all="ignore"):
        return np.where((loss > E) & (A > 0), ((loss - E) / A) ** (-1.0 / alpha), np.inf)


# ------------------------------------------------------------------------------ the batched fit
def _profile(log_alpha, x, y, w, fixed_e: bool = False):
    """For fixed alpha (``log_alpha``, shape (...)), the weighted least-squares E >= 0 and A >= 0 of
    y = E + A * exp(-alpha * x) (x: log compute, centred; y, w: (..., K)) and the residual sum."""
    z = np.exp(-np.exp(log_alpha)[..., None] * x)
    sums = w.sum(-1), (w * z).sum(-1), (w * z * z).sum(-1), (w * y).sum(-1), (w * z * y).sum(-1)
    e, a = _solve(*sums, fixed_e)
    r = y - e[..., None] - a[..., None] * z
    return e, a, (w * r * r).sum(-1)


def _grid_rss(grid, x, y, w, fixed_e: bool = False):
    """The residual sum of ``_profile`` at every log alpha of ``grid`` (G,) for rows of y, w (N, K)
    sharing x (K,): (N, G), from weighted sums rather than residuals (einsum, not matrix products:
    threaded BLAS stalls on a busy machine)."""
    z = np.exp(-np.exp(grid)[:, None] * x[None, :])  # (G, K)
    wy = w * y
    sw, sz, szz = w.sum(-1)[:, None], np.einsum("nk,gk->ng", w, z), np.einsum("nk,gk->ng", w, z * z)
    sy, szy, syy = wy.sum(-1)[:, None], np.einsum("nk,gk->ng", wy, z), (wy * y).sum(-1)[:, None]
    e, a = _solve(sw, sz, szz, sy, szy, fixed_e)
    return syy - 2 * e * sy - 2 * a * szy + e * e * sw + 2 * e * a * sz + a * a * szz


def _solve(sw, sz, szz, sy, szy, fixed_e: bool):
    """E >= 0 and A >= 0 minimising sum w (y - E - A z)^2, from its weighted sums."""
    with np.errstate(all="ignore"):
        det = sw * szz - sz * sz
        e = (szz * sy - sz * szy) / det
        a = (sw * szy - sz * sy) / det
        neg = fixed_e | ~np.isfinite(e) | (e < 0)  # E at its bound: a pure power law through the origin
        e = np.where(neg, 0.0, e)
        a = np.where(neg, szy / szz, a)
        flat = a < 0  # loss rising with compute: the best law is flat
        a = np.where(flat, 0.0, a)
        e = np.where(flat, sy / sw, e)
    return e, a


def fit_laws(compute, means, weights, fixed_e: bool = False) -> np.ndarray:
    """Fit L(C) = E + A C^-alpha to each row of ``means`` (N, K) at ``compute`` ((K,) or (N, K))
    with ``weights`` (N, K); E = 0 where ``fixed_e`` (a pure power law). Returns (N, 3): E, A, alpha."""
    from scipy.optimize import elementwise

    y = np.atleast_2d(np.asarray(means, float))
    w = np.broadcast_to(np.asarray(weights, float), y.shape)
    lc = np.broadcast_to(np.log(np.asarray(compute, float)), y.shape)
    centre = lc.mean(-1, keepdims=True)  # C normalised for conditioning
    x = lc - centre
    grid = np.linspace(math.log(ALPHA_RANGE[0]), math.log(ALPHA_RANGE[1]), _GRID)
    if np.ndim(compute) == 1:  # one ladder for every row: the grid from weighted sums
        rss = _grid_rss(grid, x[0], y, w, fixed_e)
    else:
        rss = _profile(np.broadcast_to(grid, (len(y), _GRID)), x[:, None, :], y[:, None, :], w[:, None, :], fixed_e)[2]
    j = np.argmin(rss, axis=1)
    best = grid[j]
    inner = np.nonzero((j > 0) & (j < _GRID - 1))[0]
    if len(inner):
        def objective(la, i):
            i = i.astype(int)
            return _profile(la, x[i], y[i], w[i], fixed_e)[2]

        out = elementwise.find_minimum(objective, (grid[j[inner] - 1], best[inner], grid[j[inner] + 1]),
                                       args=(inner.astype(float),),
                                       tolerances={"xatol": 1e-8, "xrtol": 0.0, "fatol": 0.0, "frtol": 0.0})
        best = best.copy()
        best[inner] = np.where(np.isfinite(out.x), out.x, best[inner])
    e, a, _ = _profile(best, x, y, w, fixed_e)
    alpha = np.exp(best)
    with np.errstate(over="ignore"):
        a = a * np.exp(alpha * centre[:, 0])  # back to C in FLOPs
    return np.stack([e, a, alpha], axis=1)


def resampled_means(y, seeds, uniforms, correct: bool = True) -> np.ndarray:
    """Cell means of seeds drawn with replacement within each cell. ``y``: (N, K, S) losses (NaN past
    a cell's seeds), ``seeds``: (K,) seeds per cell, ``uniforms``: (N, B, K, S) in [0, 1) (column s
    draws the s-th seed of a replicate; arms that share them are paired). ``correct``: scale each
    replicate's deviation from the cell mean by sqrt(S / (S - 1)), so its variance is the sample
    variance of the mean rather than (S - 1) / S of it. Returns (N, B, K)."""
    seeds = np.asarray(seeds)
    n, b, k, s = uniforms.shape
    idx = np.minimum((uniforms * seeds[:, None]).astype(int), seeds[:, None] - 1)
    take = np.take_along_axis(np.broadcast_to(y[:, None], (n, b, k, y.shape[2]))[..., :s], idx, axis=-1)
    live = np.arange(s)[None, :] < seeds[:, None]  # (K, S)
    draw = np.where(live, take, 0.0).sum(-1) / seeds
    if not correct:
        return draw
    mean = np.nanmean(y, axis=2)[:, None]
    scale = np.sqrt(seeds / np.maximum(seeds - 1, 1))
    return mean + scale * (draw - mean)


def estimate(compute, y, seeds, uniforms=None, correct: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """The frontier of each of N datasets (``y``: (N, K, S), NaN past a cell's seeds) and, given
    ``uniforms`` (N, B, K, S), of its B seed-resampled replicates: (N, 3) and (N, B, 3) of E, A, alpha."""
    seeds = np.asarray(seeds, float)
    means = np.nanmean(y, axis=2)
    point = fit_laws(compute, means, seeds / means ** 2)
    if uniforms is None:
        return point, None
    n, b, k, _ = uniforms.shape
    draws = resampled_means(y, seeds.astype(int), uniforms, correct).reshape(n * b, k)
    return point, fit_laws(compute, draws, seeds / draws ** 2).reshape(n, b, 3)


def widen(point, lo, hi, factor):
    """An interval about ``point`` with each side ``factor`` times its distance from the point to
    [lo, hi] (the interval itself, or the point, where the point lies outside it)."""
    return point - factor * np.maximum(point - lo, 0.0), point + factor * np.maximum(hi - point, 0.0)


def needed_factor(point, lo, hi, truth):
    """The smallest factor by which ``widen`` would make [lo, hi] reach ``truth`` (inf: never)."""
    with np.errstate(all="ignore"):
        f = np.where(truth < point, (point - truth) / np.maximum(point - lo, 0.0),
                     (truth - point) / np.maximum(hi - point, 0.0))
    return np.where(truth == point, 0.0, np.nan_to_num(f, nan=np.inf))


def percentile_interval(draws, axis=-1):
    """The 2.5th and 97.5th percentiles of ``draws`` along ``axis`` (NaN draws left out)."""
    import warnings

    with warnings.catch_warnings():  # an all-NaN slice (no finite draw) is NaN, said where it is used
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(draws, [2.5, 97.5], axis=axis)
    return lo, hi


# ------------------------------------------------------------------------------ one frontier
@dataclass
class FrontierFit:
    """One architecture's frontier: fitted to every budget's seeds (``losses``, in seed order), with
    seed-resampled replicates ``boot`` ((B, 3): E, A, alpha; None where a cell has one seed) and the
    widening ``factors`` (by quantity: "E", "alpha", "multiplier") a coverage simulation calibrated."""

    law: PowerLaw
    compute: np.ndarray
    losses: list[np.ndarray]
    keys: list[str]
    boot: np.ndarray | None = None
    holdout: dict | None = None  # {"compute", "observed", "predicted", "error", "law"}: the largest budget predicted
    mixture: str | None = None  # the training mixture fitted, where the study has several
    factors: dict[str, float] = field(default_factory=dict)
    no_interval: str | None = None  # why there is no interval

    @property
    def n(self) -> int:
        """Budgets fitted."""
        return len(self.compute)

    @property
    def seeds(self) -> np.ndarray:
        return np.array([len(v) for v in self.losses])

    def seed_text(self) -> str:
        lo, hi = int(self.seeds.min()), int(self.seeds.max())
        return f"n={lo} seed{'s' if hi != 1 else ''}" if lo == hi else f"n={lo}-{hi} seeds"

    @property
    def ci(self) -> dict[str, tuple[float, float]]:
        """95% intervals of E and alpha: percentiles of the replicates, widened by ``factors`` (and
        kept at or above 0)."""
        if self.boot is None:
            return {}
        out = {}
        for k, key in ((0, "E"), (2, "alpha")):
            lo, hi = widen(getattr(self.law, key), *percentile_interval(self.boot[:, k]), self.factors.get(key, 1.0))
            out[key] = (max(float(lo), 0.0), float(hi))
        return out

    def band(self, c, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise band of the fitted curve at computes ``c``: percentiles of the replicates'
        curves, widened by the largest of ``factors``."""
        y = self.law(c)
        if self.boot is None:
            return y, y
        curves = self.boot[:, :1] + self.boot[:, 1:2] * np.power(np.asarray(c, float)[None], -self.boot[:, 2:3])
        tail = 50 * (1 - level)
        lo, hi = np.nanpercentile(curves, [tail, 100 - tail], axis=0)
        return widen(y, lo, hi, max(self.factors.values(), default=1.0))


def _cells(compute, loss, keys):
    """(compute per budget, seeds' losses per budget, keys), ascending in compute."""
    c = np.asarray(compute, dtype=float)
    y = np.asarray(loss, dtype=float)
    if c.shape != y.shape or c.ndim != 1:
        raise FitError("compute and loss must be two equal-length lists")
    if np.any(c <= 0) or np.any(y <= 0) or not np.all(np.isfinite(c)) or not np.all(np.isfinite(y)):
        raise FitError("compute and loss must be positive and finite")
    keys = [repr(float(v)) for v in c] if keys is None else [str(k) for k in keys]
    order = list(dict.fromkeys(keys))
    groups = {k: [i for i, key in enumerate(keys) if key == k] for k in order}
    cells = sorted(((float(c[i].mean()), y[i], k) for k, i in groups.items()), key=lambda t: (t[0], t[2]))
    return np.array([t[0] for t in cells]), [t[1] for t in cells], [t[2] for t in cells]


def _padded(losses) -> np.ndarray:
    s = max(len(v) for v in losses)
    return np.array([np.pad(np.asarray(v, float), (0, s - len(v)), constant_values=np.nan) for v in losses])


def key_uniforms(keys, seeds, bootstrap: int, seed: int) -> np.ndarray:
    """(1, B, K, S) uniforms for ``resampled_means``, drawn per cell from a generator seeded by
    (``seed``, the cell's key): two architectures fitted with one seed draw the same seed indices
    at a shared budget (paired replicates)."""
    s = int(max(seeds))
    out = np.zeros((1, bootstrap, len(keys), s))
    for k, (key, n) in enumerate(zip(keys, seeds)):
        rng = np.random.default_rng([seed, zlib.crc32(str(key).encode())])
        out[0, :, k, :n] = rng.random((n, bootstrap)).T  # row s: seed draw s, whatever the cell's count
    return out


def fit_frontier(compute, loss, bootstrap: int = BOOTSTRAP, seed: int = 0, keys=None,
                 holdout: bool = True) -> FrontierFit:
    """Fit L(C) = E + A C^-alpha to runs (``compute``, ``loss``: one entry per run; the runs of one
    cell share a key, by default their compute, and are its seeds in seed order). Every budget is
    fitted; the interval replicates resample each cell's seeds (paired across architectures by
    ``keys`` and ``seed``), never the budgets. ``holdout``: also fit the smaller budgets alone and
    report the error of that fit's prediction at the largest (a check; the fit above is unchanged)."""
    c, losses, keys = _cells(compute, loss, keys)
    if len(c) < MIN_BUDGETS:
        raise FitError(f"{len(c)} distinct budget{'s' if len(c) != 1 else ''}; a law of three parameters "
                       f"needs at least {MIN_BUDGETS}")
    seeds = np.array([len(v) for v in losses])
    y = _padded(losses)[None]
    uniforms = key_uniforms(keys, seeds, bootstrap, seed) if bootstrap and seeds.min() >= 2 else None
    point, boot = estimate(c, y, seeds, uniforms)
    fit = FrontierFit(PowerLaw(*map(float, point[0])), c, losses, keys, boot=None if boot is None else boot[0])
    if boot is None:
        fit.no_interval = ("one seed: no interval" if seeds.max() == 1 else
                           "a cell with one seed: no interval" if seeds.min() == 1 else "no replicates asked")
    if holdout:
        fit.holdout = _holdout(c, losses)
    return fit


def _holdout(c, losses) -> dict | None:
    """The fit to every budget but the largest (E + A C^-alpha from three budgets, a pure power law
    from two), its prediction at the largest and the relative error against the cell mean there."""
    if len(c) < 3:
        return None
    means = np.array([np.mean(v) for v in losses])
    seeds = np.array([len(v) for v in losses])
    pure = len(c) - 1 < MIN_BUDGETS
    law = PowerLaw(*map(float, fit_laws(c[:-1], means[None, :-1], (seeds / means ** 2)[None, :-1], fixed_e=pure)[0]))
    predicted = float(law(c[-1]))
    return {"compute": float(c[-1]), "observed": float(means[-1]), "predicted": predicted,
            "error": (predicted - means[-1]) / means[-1], "budgets": len(c) - 1,
            "law": "power law A C^-alpha" if pure else "E + A C^-alpha"}


# ------------------------------------------------------------------------------ the multiplier
@dataclass
class Multiplier:
    """The compute ``other`` needs to reach ``loss`` as a multiple of what ``base`` needs (below 1:
    ``other`` needs less). ``loss`` is reached by both fitted frontiers inside their fitted budgets;
    ``reference`` is the compute at which ``base`` reaches it."""

    value: float
    ci: tuple[float, float] | None
    reference: float
    loss: float
    seeds: int = 1
    factor: float = 1.0


def reading_loss(base_laws, base_c, other_laws, other_c):
    """The lowest loss both frontiers reach inside their fitted budgets: the higher of their losses
    at their largest budgets (laws as (..., 3) arrays; NaN where one's smallest-budget loss is below
    it, so that no loss is inside both ranges)."""
    def at(laws, c):
        return laws[..., 0] + laws[..., 1] * np.power(c, -laws[..., 2])

    loss = np.maximum(at(base_laws, np.max(base_c)), at(other_laws, np.max(other_c)))
    top = np.minimum(at(base_laws, np.min(base_c)), at(other_laws, np.min(other_c)))
    return np.where(loss < top, loss, np.nan)


def log_multiplier(loss, base_laws, other_laws):
    """log(compute other needs / compute base needs) at ``loss`` (laws as (..., 3) arrays); NaN
    where neither reaches it."""
    with np.errstate(all="ignore"):
        ratio = (np.log(_inverse(loss, *np.moveaxis(other_laws, -1, 0)))
                 - np.log(_inverse(loss, *np.moveaxis(base_laws, -1, 0))))
    return np.where(np.isnan(ratio), np.nan, np.clip(ratio, -50.0, 50.0))


def compute_multiplier(base: FrontierFit, other: FrontierFit, loss: float | None = None) -> Multiplier:
    """``other``'s compute multiplier against ``base`` at ``loss`` (default: the lowest loss both
    reach inside their fitted budgets: an interpolation, never an extrapolation). Its interval pairs
    the two fits' replicates and is widened by ``other.factors["multiplier"]``."""
    laws = [np.array([f.law.E, f.law.A, f.law.alpha]) for f in (base, other)]
    if loss is None:
        loss = float(reading_loss(laws[0], base.compute, laws[1], other.compute))
        if math.isnan(loss):
            raise FitError("the two frontiers reach no common loss inside their fitted budgets: a multiplier "
                           "would be an extrapolation")
    value = float(np.exp(log_multiplier(loss, *laws)))
    seeds = int(min(base.seeds.min(), other.seeds.min()))
    factor = other.factors.get("multiplier", 1.0)
    ci = None
    if base.boot is not None and other.boot is not None and len(base.boot) == len(other.boot):
        draws = log_multiplier(loss, base.boot, other.boot)
        lo, hi = widen(math.log(value), *percentile_interval(draws), factor)
        ci = (float(np.exp(lo)), float(np.exp(hi)))
    return Multiplier(value, ci, base.law.inverse(loss), loss, seeds, factor)


# ------------------------------------------------------------------------------ seeds as replicates
def seed_noise(fits) -> tuple[float, int]:
    """The seeds' spread: the pooled within-cell standard deviation of log loss over every cell of
    ``fits`` (FrontierFit objects), with its degrees of freedom (0 when no cell has two seeds)."""
    ss, dof = 0.0, 0
    for f in fits:
        for v in f.losses:
            if len(v) > 1:
                lv = np.log(np.asarray(v, float))
                ss += float(((lv - lv.mean()) ** 2).sum())
                dof += len(v) - 1
    return (math.sqrt(ss / dof) if dof else math.nan), dof


# ------------------------------------------------------------------------------ Chinchilla's approach 3
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
    BFGS (analytic gradient) from a grid of starts, parameters as logs (E = e^e, A = e^alog, B = e^blog)."""
    from scipy.optimize import minimize
    from scipy.special import huber

    n = np.asarray(params, float)
    d = np.asarray(data, float)
    y = np.log(np.asarray(loss, float))
    if len({(a, b) for a, b in zip(n, d)}) < MIN_POINTS:
        raise FitError(f"{len(set(zip(n, d)))} distinct (model size, data) points; a fit needs at least {MIN_POINTS}")
    if len(np.unique(n)) < 2 or len(np.unique(d)) < 2:
        raise FitError("the study varies only one of model size and data; approach 3 needs both")
    ln, ld = np.log(n), np.log(d)

    def objective(p):  # the Huber loss and its gradient (the terms' softmax weights times the clipped residuals)
        alog, blog, e, a, b = p
        terms = np.stack([alog - a * ln, blog - b * ld, np.full_like(ln, e)])
        pred = np.logaddexp.reduce(terms, axis=0)  # scipy's logsumexp costs 20x more on arrays this small
        g = np.clip(pred - y, -delta, delta) * np.exp(terms - pred)
        return huber(delta, pred - y).sum(), np.array([g[0].sum(), g[1].sum(), g[2].sum(), -(g[0] * ln).sum(),
                                                       -(g[1] * ld).sum()])

    best = None
    for alog, blog, e, a, b in itertools.product((0, 5, 10), (0, 5, 10), (-1, 0.5), (0.2, 0.5), (0.2, 0.5)):
        # BFGS: L-BFGS's full-memory form (five parameters), free of the BLAS calls that make
        # L-BFGS-B stall 10x on a busy machine.
        out = minimize(objective, [alog, blog, e, a, b], jac=True, method="BFGS")
        if best is None or out.fun < best.fun:
            best = out
    alog, blog, e, a, b = best.x
    return ChinchillaFit(math.exp(e), math.exp(alog), float(a), math.exp(blog), float(b), len(n))
