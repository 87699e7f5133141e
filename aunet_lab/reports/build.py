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
from aunet_lab.reports.fits import FitError, FrontierFit, compute_multiplier, fit_chinchilla, fit_frontier

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
    """A compute-frontier fit per architecture on its cells' best trials (the largest budget held
    out for the extrapolation check), or the reason there is none."""
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
        # One point per compute budget: the mean over the cell's seeds.
        points = rows.groupby("compute")["test_bpb_mean"].mean()
        try:
            fits[arch] = fit_frontier(points.index.values, points.values, bootstrap=200, seed=seed, holdout=True)
            fits[arch].mixture = mixture
        except FitError as err:
            reasons[arch] = str(err) + (f" on {mixture}, the mixture with the most budgets" if mixture else "")
    return fits, reasons


def findings(runs: StudyRuns, best, fits, reasons) -> list[str]:
    out = []
    counts = runs.counts()
    total = sum(counts.values())
    killed = f", {counts['killed']} stopped by a signal (resume them)" if counts["killed"] else ""
    out.append(f"{total} trial runs: {counts['finished']} finished, {counts['pruned']} pruned, {counts['failed']} failed, "
               f"{counts['running']} still running{killed}; {best['cell'].nunique() if len(best) else 0} cells have a "
               "result.")
    if counts["running"]:
        out.append("The study is not finished: figures and fits use the trials finished so far.")
    for arch in _archs(best):
        if arch in fits:
            f = fits[arch]
            lo, hi = f.ci.get("alpha", (math.nan, math.nan))
            sentence = (f"{ARCH_LABEL[arch]}: L(C) = {f.law.E:.3f} + {f.law.A:.3g} C^-{f.law.alpha:.3f} "
                        f"(alpha 95% CI {lo:.3f}-{hi:.3f}, {f.n} budgets" + (f" on {f.mixture})" if f.mixture else ")"))
            if f.holdout:
                sentence += (f"; it predicts the held-out largest budget ({f.holdout['compute']:.2g} FLOPs) within "
                             f"{100 * abs(f.holdout['error']):.1f}%")
            out.append(sentence + ".")
        else:
            out.append(f"{ARCH_LABEL[arch]}: no compute fit ({reasons.get(arch, 'no data')}).")
    if "bpe" in fits:
        reference = float(best["compute"].max())
        for arch in _archs(best):
            if arch == "bpe" or arch not in fits:
                continue
            m = compute_multiplier(fits["bpe"], fits[arch], reference)
            seeds = int(best[best["arch"] == arch]["seeds"].min())
            ci = f", 95% CI {m.ci[0]:.2f}-{m.ci[1]:.2f}" if m.ci else ""
            if math.isinf(m.value):
                out.append(f"{ARCH_LABEL[arch]} does not reach BPE's BPB at {reference:.2g} FLOPs "
                           f"({m.loss:.3f}) on its fitted frontier.")
            else:
                out.append(f"{ARCH_LABEL[arch]} reaches BPE's BPB at {reference:.2g} FLOPs with {m.value:.2f}x the "
                           f"compute{ci}, {seeds} seed{'s' if seeds != 1 else ''}.")
    else:
        out.append("No compute multiplier against BPE: " + (reasons.get("bpe", "the study has no BPE arm") + "."))
    # Chinchilla's approach 3 where the study varies both model size and data.
    for arch in _archs(best):
        rows = best[(best["arch"] == arch) & best["params"].notna() & best["bytes"].notna()]
        if rows["params"].nunique() < 2 or rows["bytes"].nunique() < 2:
            continue
        try:
            c = fit_chinchilla(rows["params"].values, rows["bytes"].values, rows["test_bpb_mean"].values)
        except FitError as err:
            out.append(f"{ARCH_LABEL[arch]}: no L(N, D) fit ({err}).")
            continue
        out.append(f"{ARCH_LABEL[arch]}: L(N, D) = {c.E:.3f} + {c.A:.3g}/N^{c.a:.3f} + {c.B:.3g}/D^{c.b:.3f} "
                   f"(Chinchilla approach 3, Huber loss, {c.n} cells; no interval).")
    # Cell by cell: AU-Net-k against BPE at the same budget and mixture.
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
            diff = r.test_bpb_mean - b.test_bpb_mean
            name = ARCH_LABEL.get(arch, arch) + (f" ({split})" if several_splits else "")
            out.append(f"{budget} on {mixture}: {name} test BPB {r.test_bpb_mean:.3f} against "
                       f"BPE {b.test_bpb_mean:.3f} ({'+' if diff >= 0 else ''}{diff:.3f}; {min(r.seeds, b.seeds)} "
                       f"seed{'s' if min(r.seeds, b.seeds) != 1 else ''}, no interval).")
    return out


# ------------------------------------------------------------------------------ figures
def _figure(title: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=PAGE)
    fig.suptitle(title, fontsize=15)
    return fig, ax


def fig_compute(best, fits):
    fig, ax = _figure("Test bits per byte against training compute (best trial per cell)")
    for arch in _archs(best):
        rows = best[best["arch"] == arch]
        held = rows["compute"] == rows["compute"].max() if arch in fits else rows["compute"] < 0
        ax.scatter(rows[~held]["compute"], rows[~held]["test_bpb_mean"], color=COLOURS[arch], label=ARCH_LABEL[arch],
                   s=40, zorder=3)
        ax.scatter(rows[held]["compute"], rows[held]["test_bpb_mean"], facecolors="none", edgecolors=COLOURS[arch],
                   s=60, zorder=3, label=f"{ARCH_LABEL[arch]}, held out of the fit")
        if arch in fits:
            f = fits[arch]
            c = np.logspace(math.log10(rows["compute"].min()), math.log10(rows["compute"].max()), 100)
            lo, hi = f.band(c)
            ax.plot(c, f.law(c), color=COLOURS[arch], lw=1.5)
            ax.fill_between(c, lo, hi, color=COLOURS[arch], alpha=0.15, lw=0)
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
    from aunet_lab.reports.collect import learning_curve
    from aunet_lab.training.tracking import client_for

    if best.empty:
        return None
    client = client_for(runs.tracking_uri)
    fig, ax = _figure("Learning curves of each cell's best trial (training bits per byte against bytes seen)")
    for r in best.itertuples():
        x, y = learning_curve(client, r.run_id, "train/bpb")
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
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=PAGE)
    fig.text(0.06, 0.93, title, fontsize=18, weight="bold", va="top")
    y = 0.86
    for line in lines:
        for part in (textwrap.wrap(line, 120, subsequent_indent="    ") or [""]):
            if y < 0.05:
                break
            fig.text(0.06, y, part, fontsize=size, va="top", family="monospace" if line.startswith("  ") else None)
            y -= 0.028 * size / 11
    return fig


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


def build_report(study: str, tracking_uri: str, out: Path | None = None, seed: int = 0) -> Report:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    from aunet_lab.reports import multilingual

    runs = collect(study, tracking_uri)
    out = Path(out or Path("reports") / f"{study}.pdf")
    out.parent.mkdir(parents=True, exist_ok=True)
    csv = out.with_suffix(".csv")
    runs.runs.to_csv(csv, index=False)
    report = Report(out, csv)
    frame = runs.runs
    best = runs.best_per_cell() if not frame.empty else frame
    fits, reasons = fits_by_arch(best, seed) if len(best) else ({}, {})
    report.findings = findings(runs, best, fits, reasons) if len(best) else \
        [f"The study {study!r} has no finished trial yet ({sum(runs.counts().values())} runs: "
         + ", ".join(f"{v} {k}" for k, v in runs.counts().items()) + "): nothing to fit or plot."]
    if len(best):
        report.findings += multilingual.findings(best, runs.languages)
    tags = runs.parent.get("tags", {})
    commits = sorted(set(frame["git_commit"])) if not frame.empty else [tags.get("git.commit", "unknown")]
    hashes = sorted(set(frame["data_hash"])) if not frame.empty else []
    locks = _lock_hashes(sorted(set(frame["manifest"])) if not frame.empty else [])
    counts = runs.counts()
    title = [f"Study: {study}    MLflow: {tracking_uri}",
             f"Code commit: {', '.join(c[:12] for c in commits) or 'unknown'}",
             f"Data selections (data.hash): {', '.join(h[:16] for h in hashes) or 'none'}",
             f"Data locks (sha256): {'; '.join(locks) or 'none found'}",
             f"Runs: {counts['finished']} finished, {counts['failed']} failed, {counts['pruned']} pruned, "
             f"{counts['running']} running, {counts['killed']} killed; cells with a result: {best['cell'].nunique() if len(best) else 0}", "",
             "Spec:"] + ["  " + line for line in runs.spec_text.splitlines()[:40]]
    figures = [_text_page(f"aunet_lab report: {study}", title, 10), _text_page("Findings", report.findings)]
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
    if runs.parent.get("run_id"):
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
    from aunet_lab.training.tracking import client_for

    try:
        client = client_for(runs.tracking_uri)
        for path in report.figures:
            client.log_artifact(runs.parent["run_id"], str(path), "report/figures")
        client.log_artifact(runs.parent["run_id"], str(report.pdf), "report")
        client.log_artifact(runs.parent["run_id"], str(report.csv), "report")
    except Exception as err:  # the PDF is written; the upload is a convenience
        print(f"warning: report not logged to the study's parent run: {err}")
