"""The study report: a CSV of every run, PNG figures, and one PDF (title page, findings, figures,
table appendix), made from the study's MLflow runs. Headless (Agg); byte-identical for the same
store and SOURCE_DATE_EPOCH."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aunet_lab.intervals import seed_interval
from aunet_lab.reports import boundaries, figures, multilingual
from aunet_lab.reports.collect import StudyRuns, collect
from aunet_lab.reports.coverage import Coverage, calibrate
from aunet_lab.reports.fits import BOOTSTRAP, FitError, FrontierFit, compute_multiplier, fit_chinchilla, fit_frontier
from aunet_lab.reports.pages import table_pages, text_page, text_pages
from aunet_lab.reports.style import ARCH_LABEL, ARCH_ORDER, archs_in, interval_text, seeds_text, split_name


@dataclass
class Report:
    pdf: Path
    csv: Path
    figures: list[Path] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    pages: int = 0


def fits_by_arch(best, seed: int = 0) -> tuple[dict[str, FrontierFit], dict[str, str]]:
    """A compute-frontier fit per architecture to every budget's seeds (one cell per budget), or the
    reason there is none. The fits share ``seed``: their replicates draw the same seed indices at a
    shared budget label (paired)."""
    fits, reasons = {}, {}
    for arch in archs_in(best):
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
    for arch in archs_in(best):
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
            sentence = (f"{law} (alpha 95% CI {alo:.3f} to {ahi:.3f}, E 95% CI {elo:.3f} to {ehi:.3f}{widened}; {where}, "
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
        for arch in archs_in(best):
            if arch == "bpe" or arch not in fits:
                continue
            try:
                m = compute_multiplier(fits["bpe"], fits[arch])
            except FitError as err:
                out.append(f"{ARCH_LABEL[arch]}: no compute multiplier against BPE ({err}; "
                           f"{seeds_text(int(fits[arch].seeds.min()))}, no interval).")
                continue
            if m.ci:
                ci = f"95% CI {m.ci[0]:.2f} to {m.ci[1]:.2f}, {seeds_text(m.seeds)}"
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
    for arch in archs_in(best):
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
        # budget by budget (by its size), then mixture, architecture and split function
        order = sorted(keyed, key=lambda k: (keyed[k].bytes or 0, k[0], k[1], ARCH_ORDER.index(k[2])
                                             if k[2] in ARCH_ORDER else len(ARCH_ORDER), k[3]))
        for budget, mixture, arch, split in order:
            r = keyed[(budget, mixture, arch, split)]
            b = bpe.get((budget, mixture))
            if arch == "bpe" or b is None:
                continue
            diff, lo, hi, n = _paired_difference(list(r.test_bpb_seeds), list(b.test_bpb_seeds))
            name = ARCH_LABEL.get(arch, arch) + (f" ({split_name(split)})" if several_splits else "")
            # A compute cell's label is its budget to one digit (2.2e12 reads "2e+12"): say its FLOPs.
            where = f"{r.compute:.2g} FLOPs" if r.budget_kind == "compute" and np.isfinite(r.compute or np.nan) \
                else budget
            out.append(f"{where} on {mixture}: {name} test BPB {r.test_bpb_mean:.3f} against "
                       f"BPE {b.test_bpb_mean:.3f} ({diff:+.3f}; "
                       f"{interval_text(diff, lo, hi, n, '{:+.3f}')}{', paired by seed' if n > 1 else ''}).")
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


def build_report(study: str, tracking_uri: str, out: Path | None = None, seed: int = 0,
                 runs: StudyRuns | None = None) -> Report:
    """The study's PDF report, from its MLflow runs, or from ``runs`` (a runs table,
    :func:`aunet_lab.reports.collect.load_runs_table`): the same pages either way."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

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
        report.findings += boundaries.findings(best, runs.languages)
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
    plots = _plots(runs, best, fits)
    # A page that would be (near) empty is a line of text instead, listed after the findings.
    left_out = [v for v in plots.values() if isinstance(v, str)]
    plots = {k: v for k, v in plots.items() if v is not None and not isinstance(v, str)}
    if left_out:
        report.findings += left_out  # each says what it would have shown and why it has no page
    figures = [text_page(f"aunet_lab report: {study}", title, 10), *text_pages("Findings", report.findings)]
    if len(best):
        figures += text_pages("Methods", methods(fits, coverage), 10)
    folder = out.parent / f"{out.stem}-figures"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.png"):  # a page an earlier build had and this one does not
        if stale.stem not in plots:
            stale.unlink()
    for name, fig in plots.items():
        path = folder / f"{name}.png"
        fig.savefig(path, dpi=100, metadata={"Software": None})
        report.figures.append(path)
    pages = figures + list(plots.values()) + (table_pages(best) if len(best) else [])
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


def _plots(runs: StudyRuns, best, fits) -> dict:
    """Every figure page by name: a figure, a line of text where it would be near empty, or None
    where the study has nothing of its kind."""
    frame = runs.runs
    plots = {}
    if len(best):
        if best["compute"].notna().any():
            plots["bpb_vs_compute"] = figures.fig_compute(best, fits)
        plots["bpb_vs_data"] = figures.fig_data_budget(best)
        replicates = multilingual.seed_replicates(best, frame)
        if runs.languages:
            plots["language_heatmap"] = figures.fig_language_heatmap(best, runs.languages)
            if "bpe" in set(best["arch"]) and len(set(best["arch"])) > 1:
                plots["aunet_minus_bpe"] = figures.fig_language_difference(best, runs.languages, replicates)
            plots["transfer"] = multilingual.fig_transfer(best, runs.languages, replicates)
        plots["lowresource"] = multilingual.fig_lowresource(best, replicates)
        if boundaries.has_boundaries(best):  # its first panel is the splits page's bars, by language
            plots["boundaries"] = boundaries.fig_boundaries(best, runs.languages)
            plots["boundary_examples"] = boundaries.examples_page(best, runs.languages)
        else:
            plots["splits"] = figures.fig_splits(best)
        plots["units_per_byte"] = figures.fig_units(best)
        plots["char_tasks"] = multilingual.fig_chars(best)
        plots["diagnostics"] = multilingual.fig_diagnostics(best, replicates)
        plots["learning_curves"] = figures.fig_learning_curves(runs, best)
    plots["throughput"] = figures.fig_throughput(frame) if not frame.empty else None
    return plots


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
