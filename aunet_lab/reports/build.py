"""The study report: a CSV of every run, PNG figures, and one PDF (title page, findings, figures,
table appendix), made from the study's MLflow runs. Headless (Agg); byte-identical for the same
store and SOURCE_DATE_EPOCH."""

from __future__ import annotations

import math
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aunet_lab.reports.collect import StudyRuns, collect
from aunet_lab.reports.coverage import Coverage, calibrate
from aunet_lab.reports.fits import (BOOTSTRAP, FitError, FrontierFit, compute_multiplier, fit_chinchilla, fit_frontier,
                                    seed_interval)

ARCH_ORDER = ["bpe", "aunet1", "aunet2", "aunet3", "aunet4"]
ARCH_LABEL = {"bpe": "BPE", "aunet1": "flat bytes", "aunet2": "AU-Net-2", "aunet3": "AU-Net-3", "aunet4": "AU-Net-4"}
COLOURS = {"bpe": "#4c72b0", "aunet1": "#8c8c8c", "aunet2": "#dd8452", "aunet3": "#55a868", "aunet4": "#c44e52"}
PAGE = (11.0, 8.5)  # inches, landscape letter


@dataclass
class Report:
    pdf: Path
    csv: Path
    figures: list[Path] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    pages: int = 0


def _archs(frame) -> list[str]:
    return [a for a in ARCH_ORDER if a in set(frame["arch"])]


def fits_by_arch(best, seed: int = 0) -> tuple[dict[str, FrontierFit], dict[str, str]]:
    """A compute-frontier fit per architecture to every budget's seeds (one cell per budget), or the
    reason there is none. The fits share ``seed``: their replicates draw the same seed indices at a
    shared budget label (paired)."""
    fits, reasons = {}, {}
    for arch in _archs(best):
        rows = best[(best["arch"] == arch) & best["compute"].notna() & best["test_bpb"].notna()]
        if "pretrain_cell" in rows:
            warm = rows["pretrain_cell"].fillna("") != ""
            if warm.any():  # their FLOPs leave out the pretraining they started from
                rows = rows[~warm]
                if rows["compute"].nunique() < 2:
                    reasons[arch] = "its cells are warm-started: their compute leaves out the pretraining"
                    continue
        # A frontier is a law of one training mixture (BPE's FLOPs per byte differ by language, so
        # mixtures at one data budget would look like a compute ladder): the mixture with the most
        # budgets is fitted.
        mixture = None
        if rows["mixture"].nunique() > 1:
            counts = rows.groupby("mixture")["compute"].nunique()
            if counts.max() < 2:
                reasons[arch] = "one budget per training mixture: no compute ladder to fit"
                continue
            mixture = sorted(counts.index, key=lambda m: (-counts[m], m))[0]
            rows = rows[rows["mixture"] == mixture]
        # One cell per budget (where several share one, as split functions do: the lowest validation
        # objective); its seeds are the fit's points at that budget, in seed order.
        rows = rows.sort_values(["val_objective", "cell"], na_position="last").drop_duplicates("budget")
        seeds = [[v for v in r.test_bpb_seeds if v is not None and v == v] for r in rows.itertuples()]
        compute = [r.compute for r, vs in zip(rows.itertuples(), seeds) for _ in vs]
        losses = [v for vs in seeds for v in vs]
        keys = [str(r.budget) for r, vs in zip(rows.itertuples(), seeds) for _ in vs]
        try:
            fits[arch] = fit_frontier(compute, losses, bootstrap=BOOTSTRAP, seed=seed, keys=keys)
            fits[arch].mixture = mixture
        except FitError as err:
            reasons[arch] = str(err) + (f" on {mixture}, the mixture with the most budgets" if mixture else "")
    return fits, reasons


def seeds_text(lo: int, hi: int | None = None) -> str:
    """``n=3 seeds``, ``n=2-3 seeds``, ``n=1 seed``."""
    hi = lo if hi is None else hi
    return f"n={lo} seed" if hi == 1 else f"n={lo} seeds" if lo == hi else f"n={lo}-{hi} seeds"


def interval_text(mean: float, lo: float, hi: float, n: int, fmt: str = "{:.3f}", sep: str = "-") -> str:
    """``95% CI lo-hi, n=3 seeds`` or, without an interval, why (``n=1 seed: no interval``)."""
    if n < 2 or not (lo == lo and hi == hi):
        return f"{seeds_text(n)}: no interval"
    return f"95% CI {fmt.format(lo)}{sep}{fmt.format(hi)}, {seeds_text(n)}"


def _paired_difference(a: list[float], b: list[float]) -> tuple[float, float, float, int]:
    """Mean of ``a`` minus ``b`` paired by seed index, with its Student-t interval over the paired seeds."""
    n = min(len(a), len(b))
    if n < 2:
        return float(np.mean(a) - np.mean(b)), math.nan, math.nan, n
    mean, lo, hi = seed_interval(np.asarray(a[:n]) - np.asarray(b[:n]))
    return mean, lo, hi, n


def findings(runs: StudyRuns, best, fits, reasons) -> list[str]:
    """The findings in sentences, each with its 95% interval and seed count or why it has none."""
    out = []
    counts = runs.counts()
    total = sum(counts.values())
    killed = f", {counts['killed']} stopped by a signal (resume them)" if counts["killed"] else ""
    seeds = (int(best["seeds"].min()), int(best["seeds"].max())) if len(best) else (0, 0)
    out.append(f"{total} trial runs: {counts['finished']} finished, {counts['pruned']} pruned, {counts['failed']} failed, "
               f"{counts['running']} still running{killed}; {best['cell'].nunique() if len(best) else 0} cells have a "
               f"result, {seeds_text(*seeds)} each (counts: no interval).")
    if counts["running"]:
        out.append("The study is not finished: figures and fits use the trials finished so far "
                   f"({seeds_text(*seeds)} per cell so far; a status: no interval).")
    for arch in _archs(best):
        if arch not in fits:
            out.append(f"{ARCH_LABEL[arch]}: no compute fit ({reasons.get(arch, 'no data')}; no interval).")
            continue
        f = fits[arch]
        law = f"{ARCH_LABEL[arch]}: L(C) = {f.law.E:.3f} + {f.law.A:.3g} C^-{f.law.alpha:.3f}"
        where = f"{f.n} budgets" + (f" on {f.mixture}" if f.mixture else "")
        if f.ci:
            (alo, ahi), (elo, ehi) = f.ci["alpha"], f.ci["E"]
            widened = (f", widened x{f.factors['alpha']:.2f} and x{f.factors['E']:.2f} to the simulated coverage"
                       if f.factors else "")
            sentence = (f"{law} (alpha 95% CI {alo:.3f}-{ahi:.3f}, E 95% CI {elo:.3f}-{ehi:.3f}{widened}; {where}, "
                        f"{f.seed_text()})")
            if elo <= 0:
                sentence += "; E's interval reaches 0: this ladder does not pin down the irreducible loss"
        else:
            sentence = f"{law} ({where}, {f.seed_text()}: {f.no_interval})"
        if f.holdout:
            h = f.holdout
            sentence += (f"; fitted to the {h['budgets']} smaller budgets alone ({h['law']}), it predicts the "
                         f"largest ({h['compute']:.2g} FLOPs) within {100 * abs(h['error']):.1f}% (a check, not "
                         "used for the multiplier: no interval)")
        out.append(sentence + ".")
    if "bpe" in fits:
        for arch in _archs(best):
            if arch == "bpe" or arch not in fits:
                continue
            try:
                m = compute_multiplier(fits["bpe"], fits[arch])
            except FitError as err:
                out.append(f"{ARCH_LABEL[arch]}: no compute multiplier against BPE ({err}; "
                           f"{seeds_text(int(fits[arch].seeds.min()))}, no interval).")
                continue
            if m.ci:
                ci = f"95% CI {m.ci[0]:.2f}-{m.ci[1]:.2f}, {seeds_text(m.seeds)}"
                if m.factor > 1:
                    ci += f", widened x{m.factor:.2f} to the coverage simulated at this study's shape"
            else:
                ci = f"{seeds_text(m.seeds)}: no interval"
            out.append(f"{ARCH_LABEL[arch]} reaches BPE's test BPB {m.loss:.3f} (BPE's at {m.reference:.2g} FLOPs) "
                       f"with {m.value:.2f}x the compute ({ci}; read inside both fitted budget ranges).")
    else:
        out.append("No compute multiplier against BPE: " + reasons.get("bpe", "the study has no BPE arm")
                   + " (no interval).")
    # Chinchilla's approach 3 where the study varies both model size and data.
    for arch in _archs(best):
        rows = best[(best["arch"] == arch) & best["params"].notna() & best["bytes"].notna()]
        if rows["params"].nunique() < 2 or rows["bytes"].nunique() < 2:
            continue
        try:
            c = fit_chinchilla(rows["params"].values, rows["bytes"].values, rows["test_bpb_mean"].values)
        except FitError as err:
            out.append(f"{ARCH_LABEL[arch]}: no L(N, D) fit ({err}; no interval).")
            continue
        out.append(f"{ARCH_LABEL[arch]}: L(N, D) = {c.E:.3f} + {c.A:.3g}/N^{c.a:.3f} + {c.B:.3g}/D^{c.b:.3f} "
                   f"(Chinchilla approach 3, Huber loss, {c.n} cells' seed means, "
                   f"{seeds_text(int(rows['seeds'].min()), int(rows['seeds'].max()))}; no interval: approach 3 is "
                   "not resampled).")
    # Cell by cell: AU-Net-k against BPE at the same budget and mixture, paired by seed.
    if len(best):
        keyed = {(r.budget, r.mixture, r.arch, r.split): r for r in best.itertuples()}
        bpe = {(r.budget, r.mixture): r for r in best.itertuples() if r.arch == "bpe"}
        several_splits = best[best["arch"] != "bpe"]["split"].nunique() > 1
        order = sorted(keyed, key=lambda k: (keyed[k].bytes or 0, keyed[k].compute or 0, k))
        for budget, mixture, arch, split in order:
            r = keyed[(budget, mixture, arch, split)]
            b = bpe.get((budget, mixture))
            if arch == "bpe" or b is None:
                continue
            diff, lo, hi, n = _paired_difference(list(r.test_bpb_seeds), list(b.test_bpb_seeds))
            name = ARCH_LABEL.get(arch, arch) + (f" ({split})" if several_splits else "")
            # A compute cell's label is its budget to one digit (2.2e12 reads "2e+12"): say its FLOPs.
            where = f"{r.compute:.2g} FLOPs" if r.budget_kind == "compute" and np.isfinite(r.compute or np.nan) \
                else budget
            out.append(f"{where} on {mixture}: {name} test BPB {r.test_bpb_mean:.3f} against "
                       f"BPE {b.test_bpb_mean:.3f} ({diff:+.3f}; "
                       f"{interval_text(diff, lo, hi, n, '{:+.3f}', ' to ')}{', paired by seed' if n > 1 else ''}).")
    return out


def methods(fits: dict[str, FrontierFit], coverage: Coverage | None) -> list[str]:
    """The methods page: the fit, the resampling, the seeds, the coverage simulated at this study's
    shape and the widening applied."""
    lines = [
        "Frontier: L(C) = E + A C^-alpha per architecture, fitted to every budget (no budget held out of it): "
        "weighted least squares on relative residuals of each cell's seed mean (weight: its seeds), E >= 0 and A >= 0 "
        "solved exactly for each alpha (variable projection), alpha found by a grid and scipy's bracketing minimiser. "
        "One cell per budget (the lowest validation objective where several share one). With K budgets the law has "
        "K - 3 residual degrees of freedom; the seeds carry the noise.",
        f"Intervals: {BOOTSTRAP} replicates; in each, every cell's seeds are drawn with replacement (the same seed "
        "indices for every architecture at a budget: paired) and each cell's deviation from its mean is scaled by "
        "sqrt(S/(S-1)) (S seeds); budgets are never resampled. 95% percentile intervals, widened about the estimate by "
        "the factor below. A cell with one seed gives no interval.",
        "Compute multiplier: the compute AU-Net needs to reach a loss over the compute BPE needs, read at the lowest "
        "loss both fitted frontiers reach inside their fitted budgets (an interpolation, never an extrapolation); the "
        "replicates pair the two architectures.",
        "Hold-out check: the smaller budgets fitted alone (E + A C^-alpha from three or more, a pure power law from "
        "two) predict the largest; that error is reported beside each fit and is not used for the multiplier.",
        "Cell-by-cell differences and the multilingual findings: each seed is a replicate of the study (paired across "
        "architectures by seed index), with a Student-t 95% interval over the seeds (n - 1 degrees of freedom); one "
        "seed gives no interval. Character-task accuracy: Wilson intervals over the items scored.",
        "",
    ]
    if fits:
        lines.append("Seeds per budget: " + "; ".join(
            f"{ARCH_LABEL.get(a, a)} " + ", ".join(f"{c:.2g}: {s}" for c, s in zip(f.compute, f.seeds))
            for a, f in fits.items()) + ".")
    if coverage is None:
        lines.append("Coverage: not simulated: " + ("no compute frontier was fitted." if not fits else
                     "no fit has two seeds in every cell to estimate the noise from, and the report gives no frontier "
                     "or multiplier intervals."))
        return lines
    shapes = "; ".join(f"{ARCH_LABEL.get(a, a)} {s.text()}" for a, s in coverage.shapes.items())
    lines += [
        f"Coverage, simulated at this study's shape ({shapes}): {coverage.n} ladders drawn from the fitted laws with "
        f"log-normal noise {100 * coverage.noise:.2f}% per seed (the seeds' pooled spread, {coverage.noise_dof} "
        f"degrees of freedom), each estimated as above with {coverage.bootstrap} replicates.",
    ]
    for q in ("multiplier", "alpha", "E"):
        if q in coverage.raw:
            short = "; short of 90% even so: read this interval as too narrow" if coverage.calibrated[q] < 0.9 else ""
            lines.append(f"  {q:10s} 95% intervals cover the truth in {100 * coverage.raw[q]:.0f}% as resampled; "
                         f"widened x{coverage.factor[q]:.2f}, {100 * coverage.calibrated[q]:.0f}% "
                         f"(cross-validated over {coverage.simulated[q]} intervals{short})")
    lines += [
        f"The widening is the {100 * coverage.target:.0f}th percentile of the factor each simulated interval needed "
        "to reach its truth (at least 1); the coverage after it is counted on the half of the simulations not used to "
        "choose it. The figure's bands are the replicates' pointwise percentiles widened by the largest factor; their "
        "coverage was not simulated.",
    ]
    return lines


# ------------------------------------------------------------------------------ figures
def _figure(title: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=PAGE)
    fig.suptitle(title, fontsize=15)
    return fig, ax


def fig_compute(best, fits):
    fig, ax = _figure("Test bits per byte against training compute (each cell's seeds and their mean;\n"
                      "curves: the fitted frontiers with their widened 95% bands)")
    for arch in _archs(best):
        rows = best[best["arch"] == arch]
        if arch in fits:  # the cells fitted: one per budget
            f = fits[arch]
            points = [(c, v) for c, vs in zip(f.compute, f.losses) for v in vs]
            ax.scatter([p[0] for p in points], [p[1] for p in points], color=COLOURS[arch], s=12, alpha=0.5, zorder=3)
            ax.scatter(f.compute, [np.mean(v) for v in f.losses], color=COLOURS[arch], s=45, zorder=4,
                       label=f"{ARCH_LABEL[arch]} ({f.seed_text()})")
            c = np.logspace(math.log10(f.compute.min()), math.log10(f.compute.max()), 100)
            lo, hi = f.band(c)
            ax.plot(c, f.law(c), color=COLOURS[arch], lw=1.5)
            ax.fill_between(c, lo, hi, color=COLOURS[arch], alpha=0.15, lw=0)
        else:
            ax.scatter(rows["compute"], rows["test_bpb_mean"], color=COLOURS[arch], s=40, zorder=3,
                       label=f"{ARCH_LABEL[arch]} (no fit)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_y(ax)
    ax.set_xlabel("training compute (FLOPs)")
    ax.set_ylabel("test bits per byte")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return fig


def _plain_y(ax) -> None:
    from matplotlib.ticker import FormatStrFormatter

    ax.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2f"))


def fig_data_budget(best):
    fig, ax = _figure("Test bits per byte against data budget, by stage depth")
    for arch in _archs(best):
        for mixture in sorted(set(best[best["arch"] == arch]["mixture"])):
            rows = best[(best["arch"] == arch) & (best["mixture"] == mixture)].sort_values("bytes")
            ax.plot(rows["bytes"], rows["test_bpb_mean"], marker="o", color=COLOURS[arch],
                    ls="-" if mixture == sorted(set(best["mixture"]))[0] else "--",
                    label=f"{ARCH_LABEL[arch]}, {mixture}")
    return _bytes_axes(ax, "training bytes", "test bits per byte")


def _bytes_axes(ax, xlabel: str, ylabel: str):
    """A log-scale bytes axis with its grid and legend; returns the figure."""
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    return ax.figure


def _heatmap(ax, matrix, rows, cols, fmt="{:.2f}", cmap="viridis_r"):
    im = ax.imshow(matrix, cmap=cmap, aspect="auto")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    finite = matrix[np.isfinite(matrix)]
    diverging = cmap.startswith("RdBu")
    if diverging:  # centred on zero: dark at both ends
        span = float(np.abs(finite).max()) if finite.size else 1.0
        im.set_clim(-span, span)
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0
    for i in range(len(rows)):
        for j in range(len(cols)):
            if np.isfinite(matrix[i, j]):
                dark = abs(matrix[i, j]) > span / 2 if diverging else matrix[i, j] > mid
                ax.text(j, i, fmt.format(matrix[i, j]), ha="center", va="center", fontsize=10,
                        color="white" if dark else "black")
    return im


def fig_language_heatmap(best, languages):
    fig, ax = _figure("Test bits per byte by language and architecture (mean over the best trials of its cells)")
    archs = _archs(best)
    matrix = np.full((len(archs), len(languages)), np.nan)
    for i, arch in enumerate(archs):
        rows = best[best["arch"] == arch]
        for j, lang in enumerate(languages):
            col = f"test/bpb/{lang}"
            if col in rows and rows[col].notna().any():
                matrix[i, j] = rows[col].mean()
    im = _heatmap(ax, matrix, [ARCH_LABEL[a] for a in archs], languages)
    fig.colorbar(im, ax=ax, label="test bits per byte")
    ax.set_xlabel("evaluation language")
    return fig


def fig_language_difference(best, languages):
    fig, ax = _figure("AU-Net minus BPE test bits per byte, by language (negative: AU-Net better)")
    archs = [a for a in _archs(best) if a != "bpe"]
    bpe = best[best["arch"] == "bpe"]
    width = 0.8 / max(1, len(archs))
    for k, arch in enumerate(archs):
        rows = best[best["arch"] == arch]
        diffs = [rows[f"test/bpb/{lang}"].mean() - bpe[f"test/bpb/{lang}"].mean()
                 if f"test/bpb/{lang}" in rows else np.nan for lang in languages]
        ax.bar(np.arange(len(languages)) + k * width, diffs, width, color=COLOURS[arch], label=ARCH_LABEL[arch])
    bpt = bpe.groupby("mixture")["bytes_per_token"].mean().to_dict()
    labels = [f"{lang}\n{bpt[lang]:.2f} B/tok" if lang in bpt and bpt[lang] == bpt[lang] else lang for lang in languages]
    ax.set_xticks(np.arange(len(languages)) + 0.4 - width / 2, labels)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("test BPB difference")
    ax.legend()
    return fig


def fig_splits(best):
    """Test BPB by training language and split function (AU-Net) against BPE, when the study varies
    the split function."""
    aunet = best[best["arch"] != "bpe"]
    splits = sorted(set(aunet["split"]))
    if len(splits) < 2:
        return None
    fig, ax = _figure("Test bits per byte by training mixture: AU-Net split functions against BPE")
    mixtures = sorted(set(best["mixture"]))
    groups = [("bpe", "BPE")] + [(sp, f"{ARCH_LABEL.get(a, a)} {sp}") for a in _archs(aunet) for sp in splits]
    width = 0.8 / len(groups)
    colours = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]
    for k, (key, label) in enumerate(groups):
        if key == "bpe":
            rows = best[best["arch"] == "bpe"]
        else:
            arch = label.split(" ")[0]
            rows = aunet[(aunet["split"] == key) & (aunet["arch"].map(lambda a: ARCH_LABEL.get(a, a)) == arch)]
        values = [rows[rows["mixture"] == m]["test_bpb_mean"].mean() for m in mixtures]
        ax.bar(np.arange(len(mixtures)) + k * width, values, width, label=label, color=colours[k % len(colours)])
    ax.set_xticks(np.arange(len(mixtures)) + 0.4 - width / 2, [_with_script(m) for m in mixtures])
    ax.set_ylabel("test bits per byte")
    ax.legend(fontsize=9)
    return fig


def fig_units(best):
    """Units per byte of each AU-Net stage (a panel each), by training mixture (x) and split
    function (bars), dropped boundaries in brackets."""
    rows = best[best["arch"] != "bpe"]
    cols = sorted(c for c in best.columns if c.startswith("aunet/units_per_byte/"))
    if rows.empty or not cols:
        return None
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cols), figsize=PAGE, squeeze=False)
    fig.suptitle("AU-Net units per byte by stage, training mixture and split function "
                 "(dropped boundaries in brackets)", fontsize=14)
    mixtures = sorted(set(rows["mixture"]))
    splits = sorted(set(rows["split"]))
    width = 0.8 / len(splits)
    for ax, col in zip(axes[0], cols):
        dropped = col.replace("units_per_byte", "dropped")
        for k, split in enumerate(splits):
            mine = [rows[(rows["mixture"] == m) & (rows["split"] == split)] for m in mixtures]
            bars = ax.bar(np.arange(len(mixtures)) + k * width, [r[col].mean() for r in mine], width, label=split)
            if dropped in rows:
                for bar, r in zip(bars, mine):
                    n = r[dropped].sum()
                    if n > 0:
                        ax.annotate(f"({int(n)})", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                                    ha="center", va="bottom", fontsize=8)
        ax.set_xticks(np.arange(len(mixtures)) + 0.4 - width / 2, [_with_script(m) for m in mixtures],
                      rotation=30 if len(mixtures) > 4 else 0, fontsize=9)
        ax.set_title(col.rsplit("/", 1)[1])
        ax.set_ylabel("units per byte")
        ax.legend(fontsize=9, title="split function" if len(splits) > 1 else None)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def _with_script(mixture: str) -> str:
    """A single-language mixture's label with its script (``hi (Deva)``); others as they are."""
    from aunet_lab.data.languages import LANGUAGES

    return f"{mixture} ({LANGUAGES[mixture].script})" if mixture in LANGUAGES else mixture


def fig_throughput(frame):
    rows = frame[frame["bytes_per_s"].notna()]
    if rows.empty:
        return None
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=PAGE)
    fig.suptitle("Training throughput and MFU by architecture (median over trial runs)", fontsize=15)
    archs = _archs(rows)
    a1.bar([ARCH_LABEL[a] for a in archs], [rows[rows["arch"] == a]["bytes_per_s"].median() for a in archs],
           color=[COLOURS[a] for a in archs])
    a1.set_ylabel("bytes per second")
    mfu = [rows[rows["arch"] == a]["mfu"].median() for a in archs]
    a2.set_ylabel("model FLOPs utilisation")
    if all(v is None or v != v for v in mfu):
        a2.set_xticks([])
        a2.set_yticks([])
        a2.text(0.5, 0.5, "no MFU: no peak FLOP/s was measured\n(run `aunet-lab peak` once)", ha="center",
                va="center", transform=a2.transAxes)
    else:
        a2.bar([ARCH_LABEL[a] for a in archs], [0 if v is None or v != v else v for v in mfu],
               color=[COLOURS[a] for a in archs])
    return fig


def fig_learning_curves(runs: StudyRuns, best):
    if best.empty:
        return None
    fig, ax = _figure("Learning curves of each cell's best trial (training bits per byte against bytes seen)")
    for r in best.itertuples():
        x, y = runs.learning_curve(r.run_id, "train/bpb")
        if x:
            ax.plot(x, y, color=COLOURS.get(r.arch, "black"), alpha=0.8, lw=1,
                    label=ARCH_LABEL.get(r.arch, r.arch))
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys())
    ax.set_xlabel("bytes seen")
    ax.set_ylabel("training bits per byte")
    ax.grid(True, alpha=0.3)
    return fig


# ------------------------------------------------------------------------------ pages
def _text_page(title: str, lines: list[str], size: int = 11):
    """One page of text (what does not fit is cut: see ``_text_pages``)."""
    return _text_pages(title, lines, size, limit=1)[0]


def _text_pages(title: str, lines: list[str], size: int = 11, limit: int | None = None) -> list:
    """Pages of text, as many as the lines need (``limit``: at most that many, the rest cut); a
    continued page's title says so."""
    import matplotlib.pyplot as plt

    parts = [(part, line.startswith("  ")) for line in lines
             for part in (textwrap.wrap(line, 120, subsequent_indent="    ") or [""])]
    step = 0.028 * size / 11
    per_page = max(1, int((0.86 - 0.05) / step) + 1)
    pages = []
    for start in range(0, max(1, len(parts)), per_page):
        if limit is not None and len(pages) >= limit:
            break
        fig = plt.figure(figsize=PAGE)
        fig.text(0.06, 0.93, title + (" (continued)" if pages else ""), fontsize=18, weight="bold", va="top")
        y = 0.86
        for part, mono in parts[start:start + per_page]:
            fig.text(0.06, y, part, fontsize=size, va="top", family="monospace" if mono else None)
            y -= step
        pages.append(fig)
    return pages


def _table_pages(best, per_page: int = 22):
    cols = ["cell", "arch", "budget", "mixture", "params", "compute", "lr", "val_objective", "test_bpb_mean", "seeds"]
    header = f"{'cell':28s} {'arch':7s} {'budget':8s} {'mixture':10s} {'params':>9s} {'compute':>9s} {'lr':>8s} " \
             f"{'val':>7s} {'test':>7s} {'seeds':>5s}"
    rows = []
    for r in best[cols].itertuples(index=False):
        rows.append(f"{r.cell[:28]:28s} {r.arch:7s} {str(r.budget)[:8]:8s} {str(r.mixture)[:10]:10s} "
                    f"{_num(r.params):>9s} {_num(r.compute):>9s} {_num(r.lr):>8s} {_num(r.val_objective, 4):>7s} "
                    f"{_num(r.test_bpb_mean, 4):>7s} {r.seeds:>5d}")
    pages = []
    for i in range(0, max(1, len(rows)), per_page):
        pages.append(_text_page("Appendix: best trial per cell" + (f" ({i // per_page + 1})" if len(rows) > per_page else ""),
                                ["  " + header] + ["  " + r for r in rows[i : i + per_page]], size=9))
    return pages


def _num(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and (abs(value) >= 1e4 or abs(value) < 1e-2):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def build_report(study: str, tracking_uri: str, out: Path | None = None, seed: int = 0,
                 runs: StudyRuns | None = None) -> Report:
    """The study's PDF report, from its MLflow runs, or from ``runs`` (a runs table,
    :func:`aunet_lab.reports.collect.load_runs_table`): the same pages either way."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    from aunet_lab.reports import multilingual

    from_table = runs is not None
    runs = runs if from_table else collect(study, tracking_uri)
    out = Path(out or Path("reports") / f"{study}.pdf")
    out.parent.mkdir(parents=True, exist_ok=True)
    csv = out.with_suffix(".csv")
    runs.runs.to_csv(csv, index=False)
    report = Report(out, csv)
    frame = runs.runs
    best = runs.best_per_cell() if not frame.empty else frame
    fits, reasons = fits_by_arch(best, seed) if len(best) else ({}, {})
    coverage = calibrate(fits, seed=seed) if fits else None  # widens the fits' intervals
    report.findings = findings(runs, best, fits, reasons) if len(best) else \
        [f"The study {study!r} has no finished trial yet ({sum(runs.counts().values())} runs: "
         + ", ".join(f"{v} {k}" for k, v in runs.counts().items()) + "): nothing to fit or plot (no interval)."]
    if len(best):
        report.findings += multilingual.findings(best, runs.languages, frame)
    tags = runs.parent.get("tags", {})
    commits = sorted(set(frame["git_commit"])) if not frame.empty else [tags.get("git.commit", "unknown")]
    hashes = sorted(set(frame["data_hash"])) if not frame.empty else []
    locks = _lock_hashes(sorted(set(frame["manifest"])) if not frame.empty else [])
    counts = runs.counts()
    source = f"runs table: {runs.source}" if from_table else f"MLflow: {tracking_uri}"
    counted = frame["head_counted"].astype(bool) if "head_counted" in frame else None
    convention = ("not recorded" if counted is None or frame.empty else
                  "the output head counted (sizing.count_head)" if counted.all() else
                  "the paper's, output head left out" if not counted.any() else
                  f"MIXED: head counted in {int(counted.sum())} of {len(counted)} runs")
    refused = runs.refused
    title = [f"Study: {study}    {source}",
             f"Compute (FLOPs per byte): {convention}",
             "Cells refused by the plan and skipped: " + ("; ".join(f"{c} ({r})" for c, r in refused.items())
                                                          if refused else "none"),
             f"Code commit: {', '.join(c[:12] for c in commits) or 'unknown'}",
             f"Data selections (data.hash): {', '.join(h[:16] for h in hashes) or 'none'}",
             f"Data locks (sha256): {'; '.join(locks) or 'none found'}",
             f"Runs: {counts['finished']} finished, {counts['failed']} failed, {counts['pruned']} pruned, "
             f"{counts['running']} running, {counts['killed']} killed; cells with a result: {best['cell'].nunique() if len(best) else 0}", "",
             "Spec:"] + ["  " + line for line in runs.spec_text.splitlines()[:40]]
    figures = [_text_page(f"aunet_lab report: {study}", title, 10), *_text_pages("Findings", report.findings)]
    if len(best):
        figures += _text_pages("Methods", methods(fits, coverage), 10)
    plots = {}
    if len(best):
        if best["compute"].notna().any():
            plots["bpb_vs_compute"] = fig_compute(best, fits)
        plots["bpb_vs_data"] = fig_data_budget(best)
        if runs.languages:
            plots["language_heatmap"] = fig_language_heatmap(best, runs.languages)
            if "bpe" in set(best["arch"]) and len(set(best["arch"])) > 1:
                plots["aunet_minus_bpe"] = fig_language_difference(best, runs.languages)
            plots["transfer"] = multilingual.fig_transfer(best, runs.languages)
        plots["lowresource"] = multilingual.fig_lowresource(best)
        plots["splits"] = fig_splits(best)
        plots["units_per_byte"] = fig_units(best)
        plots["char_tasks"] = multilingual.fig_chars(best)
        plots["diagnostics"] = multilingual.fig_diagnostics(best)
        plots["learning_curves"] = fig_learning_curves(runs, best)
    plots["throughput"] = fig_throughput(frame) if not frame.empty else None
    plots = {k: v for k, v in plots.items() if v is not None}
    folder = out.parent / f"{out.stem}-figures"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.png"):  # a page an earlier build had and this one does not
        if stale.stem not in plots:
            stale.unlink()
    for name, fig in plots.items():
        path = folder / f"{name}.png"
        fig.savefig(path, dpi=100, metadata={"Software": None})
        report.figures.append(path)
    pages = figures + list(plots.values()) + (_table_pages(best) if len(best) else [])
    # PdfPages takes the creation date from SOURCE_DATE_EPOCH when it is set: same store, same bytes.
    metadata = {"Title": f"aunet_lab report: {study}", "Creator": "aunet_lab", "Producer": "aunet_lab"}
    tmp = out.with_suffix(".pdf.tmp")
    with PdfPages(tmp, metadata=metadata) as pdf:
        for fig in pages:
            pdf.savefig(fig)
            plt.close(fig)
    os.replace(tmp, out)
    report.pages = len(pages)
    if runs.parent.get("run_id") and not from_table:
        _log_to_parent(runs, report)
    return report


def _lock_hashes(manifests: list[str]) -> list[str]:
    """``name: sha256`` of each manifest's lock file (what pins the corpus's sources), where it can be read."""
    import hashlib

    out = []
    for path in manifests:
        if not path:
            continue
        lock = Path(path).with_name(Path(path).stem + ".lock.yaml")
        if lock.is_file():
            out.append(f"{lock.name} {hashlib.sha256(lock.read_bytes()).hexdigest()[:16]}")
    return out


def _log_to_parent(runs: StudyRuns, report: Report) -> None:
    from aunet_lab.mlflow_client import client_for

    try:
        client = client_for(runs.tracking_uri)
        for path in report.figures:
            client.log_artifact(runs.parent["run_id"], str(path), "report/figures")
        client.log_artifact(runs.parent["run_id"], str(report.pdf), "report")
        client.log_artifact(runs.parent["run_id"], str(report.csv), "report")
    except Exception as err:  # the PDF is written; the upload is a convenience
        print(f"warning: report not logged to the study's parent run: {err}")
