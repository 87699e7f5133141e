"""The study report's figures: BPB against compute and data, by language, by split function, units
per byte, throughput and learning curves. Each returns a figure, or a line of text saying what it
would have shown where the page would be (near) empty; every compared value carries its interval."""

from __future__ import annotations

import math

import numpy as np

from aunet_lab.intervals import seed_interval
from aunet_lab.reports.style import (ARCH_LABEL, COLOURS, HATCHES, PAGE, arch_and_style_legend, archs_in,
                                     bytes_axes, error_bars, figure, heatmap, interval_caption, interval_text,
                                     line_styles, plain_y, split_name, with_script)


def fig_compute(best, fits):
    if not fits and best.groupby("arch")["budget"].nunique().max() < 2:
        return ("Test BPB against training compute: one compute budget per architecture and no frontier fitted "
                "(the findings say why; no page).")
    fig, ax = figure("Test bits per byte against training compute (each cell's seeds and their mean;\n"
                     + ("curves: the fitted frontiers with their widened 95% bands)" if fits else
                        "no frontier fitted: the findings say why)"))
    for arch in archs_in(best):
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
            stats = [seed_interval(v) for v in rows["test_bpb_seeds"]]
            seeds = interval_caption(int(rows["seeds"].min()), int(rows["seeds"].max()))
            ax.errorbar(rows["compute"], [s[0] for s in stats], yerr=error_bars(stats), fmt="o", color=COLOURS[arch],
                        capsize=3, zorder=3, label=f"{ARCH_LABEL[arch]} (no fit; seed means, {seeds})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_y(ax)
    ax.set_xlabel("training compute (FLOPs)")
    ax.set_ylabel("test bits per byte")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    return fig


def fig_data_budget(best):
    if best.groupby(["arch", "mixture"])["bytes"].nunique().max() < 2:
        return ("Test BPB against data budget: one data budget per architecture and mixture (no page; the cells are "
                "in the findings and the appendix).")
    fig, ax = figure("Test bits per byte against data budget, by stage depth\n(each cell's mean over its seeds, "
                     f"{interval_caption(int(best['seeds'].min()), int(best['seeds'].max()))})")
    styles = line_styles(best["mixture"])
    for arch in archs_in(best):
        for mixture, ls in styles.items():
            rows = best[(best["arch"] == arch) & (best["mixture"] == mixture)].sort_values("bytes")
            if rows.empty:
                continue
            stats = [seed_interval(v) for v in rows["test_bpb_seeds"]]
            ax.errorbar(rows["bytes"], [s[0] for s in stats], yerr=error_bars(stats), marker="o", ls=ls,
                        color=COLOURS[arch], capsize=3)
    arch_and_style_legend(ax, archs_in(best), styles, "mixture")
    return bytes_axes(ax, "training bytes", "test bits per byte")


def fig_language_heatmap(best, languages):
    if len(languages) < 2:
        return (f"Test BPB by language: one evaluation language ({', '.join(languages) or 'none'}); its values are the "
                "appendix table's (no page).")
    fig, ax = figure("Test bits per byte by language and architecture (mean over the best trials of its cells;\n"
                     "the differences with their intervals are on the next page)")
    archs = archs_in(best)
    matrix = np.full((len(archs), len(languages)), np.nan)
    for i, arch in enumerate(archs):
        rows = best[best["arch"] == arch]
        for j, lang in enumerate(languages):
            col = f"test/bpb/{lang}"
            if col in rows and rows[col].notna().any():
                matrix[i, j] = rows[col].mean()
    im = heatmap(ax, matrix, [ARCH_LABEL[a] for a in archs], languages)
    fig.colorbar(im, ax=ax, label="test bits per byte")
    ax.set_xlabel("evaluation language")
    return fig


def language_differences(best, languages, replicates) -> dict[str, list[tuple[float, float, float, int]]]:
    """Per AU-Net arm, per language: (mean AU-Net minus BPE test BPB, 95% low, high, seeds), each seed
    replicate (``multilingual.seed_replicates``) giving one paired difference over the cells."""
    out = {}
    for arch in [a for a in archs_in(best) if a != "bpe"]:
        row = []
        for lang in languages:
            col = f"test/bpb/{lang}"
            diffs = []
            for rep in replicates:
                mine, bpe = rep[rep["arch"] == arch], rep[rep["arch"] == "bpe"]
                if col in rep and mine[col].notna().any() and bpe[col].notna().any():
                    diffs.append(float(mine[col].mean() - bpe[col].mean()))
            mean, lo, hi = seed_interval(diffs)
            row.append((mean, lo, hi, len(diffs)))
        out[arch] = row
    return out


def fig_language_difference(best, languages, replicates):
    differences = language_differences(best, languages, replicates)
    if len(languages) < 2:
        parts = [f"{ARCH_LABEL[a]} {d[0][0]:+.3f} ({interval_text(*d[0], fmt='{:+.3f}')})"
                 for a, d in differences.items() if d and np.isfinite(d[0][0])]
        return (f"AU-Net minus BPE test BPB on {', '.join(languages)}: " + "; ".join(parts) + " (no page: one "
                "language).") if parts else None
    n = min((s for row in differences.values() for *_, s in row if s), default=1)
    fig, ax = figure("AU-Net minus BPE test bits per byte, by language (negative: AU-Net better;\n"
                     f"mean over seeds paired by index, {interval_caption(n)})")
    width = 0.8 / max(1, len(differences))
    for k, (arch, row) in enumerate(differences.items()):
        stats = [(m, lo, hi) for m, lo, hi, _ in row]
        n = max((s for *_, s in row), default=0)
        ax.bar(np.arange(len(languages)) + k * width, [s[0] for s in stats], width, color=COLOURS[arch],
               yerr=error_bars(stats), capsize=3, error_kw={"lw": 0.8},
               label=f"{ARCH_LABEL[arch]} (n={n} seed{'s' if n != 1 else ''})")
    bpe = best[best["arch"] == "bpe"]
    bpt = bpe.groupby("mixture")["bytes_per_token"].mean().to_dict()
    labels = [f"{lang}\n{bpt[lang]:.2f} B/tok" if lang in bpt and bpt[lang] == bpt[lang] else lang
              for lang in languages]
    ax.set_xticks(np.arange(len(languages)) + 0.4 - width / 2, labels)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("test BPB difference")
    ax.legend(fontsize=9)
    return fig


def fig_splits(best):
    """Test BPB by training mixture and split function (AU-Net) against BPE, when the study varies
    the split function."""
    aunet = best[best["arch"] != "bpe"]
    splits = sorted(set(aunet["split"]))
    if len(splits) < 2:
        return None
    seeds = interval_caption(int(best["seeds"].min()), int(best["seeds"].max()))
    fig, ax = figure(f"Test bits per byte by training mixture: AU-Net split functions against BPE\n(hatching: split "
                     f"function; mean over seeds, {seeds})")
    mixtures = sorted(set(best["mixture"]))
    hatches = dict(zip(splits, HATCHES))
    groups = [("bpe", None)] + [(a, sp) for a in archs_in(aunet) for sp in splits]
    width = 0.8 / len(groups)
    for k, (arch, split) in enumerate(groups):
        rows = best[best["arch"] == arch] if split is None else \
            aunet[(aunet["arch"] == arch) & (aunet["split"] == split)]
        stats = []
        for m in mixtures:
            seeds = rows[rows["mixture"] == m]["test_bpb_seeds"]
            stats.append(seed_interval(seeds.iloc[0]) if len(seeds) == 1 else
                         (float(rows[rows["mixture"] == m]["test_bpb_mean"].mean()), np.nan, np.nan))
        ax.bar(np.arange(len(mixtures)) + k * width, [s[0] for s in stats], width, color=COLOURS[arch],
               hatch=hatches.get(split, ""), edgecolor="white", yerr=error_bars(stats), capsize=2,
               error_kw={"lw": 0.8}, label=ARCH_LABEL[arch] if split is None else f"{ARCH_LABEL[arch]}, {split_name(split)}")
    ax.set_xticks(np.arange(len(mixtures)) + 0.4 - width / 2, [with_script(m) for m in mixtures])
    ax.set_ylabel("test bits per byte")
    ax.legend(fontsize=9)
    return fig


def fig_units(best):
    """Units per byte of each AU-Net stage (a panel each), by training mixture (x) and split
    function (bars), with the boundaries dropped in brackets where any were."""
    rows = best[best["arch"] != "bpe"]
    cols = sorted(c for c in best.columns if c.startswith("aunet/units_per_byte/"))
    if rows.empty or not cols:
        return None
    mixtures = sorted(set(rows["mixture"]))
    splits = sorted(set(rows["split"]))
    if len(mixtures) * len(splits) < 3:
        values = "; ".join(f"{m} {s}: " + ", ".join(f"{c.rsplit('/', 1)[1]} {mine[c].mean():.3f}" for c in cols)
                           for m in mixtures for s in splits
                           if len(mine := rows[(rows["mixture"] == m) & (rows["split"] == s)]))
        return (f"AU-Net units per byte (training mixture and split function): {values} (measured on the training "
                "data: no interval; no page: too few bars).")
    dropped_any = any(c.replace("units_per_byte", "dropped") in rows and
                      (rows[c.replace("units_per_byte", "dropped")].fillna(0) > 0).any() for c in cols)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cols), figsize=PAGE, squeeze=False)
    fig.suptitle("AU-Net units per byte by stage, training mixture and split function\n(measured on the training "
                 "data: no interval" + ("; dropped boundaries in brackets)" if dropped_any else ")"), fontsize=14)
    width = 0.8 / len(splits)
    hatches = dict(zip(splits, HATCHES))
    for ax, col in zip(axes[0], cols):
        dropped = col.replace("units_per_byte", "dropped")
        for k, split in enumerate(splits):
            mine = [rows[(rows["mixture"] == m) & (rows["split"] == split)] for m in mixtures]
            bars = ax.bar(np.arange(len(mixtures)) + k * width, [r[col].mean() for r in mine], width, label=split_name(split),
                          color="#9a9a9a", hatch=hatches[split], edgecolor="white")
            if dropped in rows:
                for bar, r in zip(bars, mine):
                    n = r[dropped].sum()
                    if n > 0:
                        ax.annotate(f"({int(n)})", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                                    ha="center", va="bottom", fontsize=8)
        ax.set_xticks(np.arange(len(mixtures)) + 0.4 - width / 2, [with_script(m) for m in mixtures],
                      rotation=30 if len(mixtures) > 4 else 0, fontsize=9)
        ax.set_title(col.rsplit("/", 1)[1])
        ax.set_ylabel("units per byte")
        if len(splits) > 1:
            ax.legend(fontsize=9, title="split function")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def fig_throughput(frame):
    rows = frame[frame["bytes_per_s"].notna()]
    if rows.empty:
        return None
    import matplotlib.pyplot as plt

    archs = archs_in(rows)
    has_mfu = "mfu" in rows and rows["mfu"].astype(float).notna().any()
    fig, axes = plt.subplots(1, 2 if has_mfu else 1, figsize=PAGE, squeeze=False)
    fig.suptitle(("Training throughput and MFU" if has_mfu else "Training throughput") + " by architecture\n(median "
                 "over trial runs; whiskers: the runs' interquartile range; n runs under each bar)"
                 + ("" if has_mfu else "\nno MFU: no peak FLOP/s was measured (run `aunet-lab peak` once)"),
                 fontsize=14)

    def quartiles(column):
        out = []
        for a in archs:
            v = rows[rows["arch"] == a][column].astype(float).dropna()
            out.append((float(v.median()), float(v.quantile(0.25)), float(v.quantile(0.75))) if len(v) else
                       (np.nan,) * 3)
        return out

    labels = [f"{ARCH_LABEL[a]}\nn={int((rows['arch'] == a).sum())}" for a in archs]
    speed = quartiles("bytes_per_s")
    axes[0][0].bar(labels, [s[0] for s in speed], yerr=error_bars(speed), capsize=4, color=[COLOURS[a] for a in archs])
    axes[0][0].set_ylabel("bytes per second")
    if has_mfu:
        mfu = quartiles("mfu")
        axes[0][1].bar(labels, [0 if not np.isfinite(v) else v for v, _, _ in mfu], yerr=error_bars(mfu), capsize=4,
                       color=[COLOURS[a] for a in archs])
        axes[0][1].set_ylabel("model FLOPs utilisation")
    return fig


def fig_learning_curves(runs, best):
    if best.empty:
        return None
    fig, ax = figure("Learning curves of each cell's best trial: training bits per byte against bytes seen\n"
                     "(moving average over 2% of each run's logged steps; colour: architecture, line style: budget)")
    order = best.sort_values(["compute", "bytes"])["budget"].astype(str).drop_duplicates()
    styles = line_styles(order, ordered=True)
    drawn_archs, drawn_styles = set(), {}
    for r in best.itertuples():
        x, y = runs.learning_curve(r.run_id, "train/bpb")
        if x:
            ls = styles[str(r.budget)]
            window = max(1, len(y) // 50)
            smooth = np.convolve(np.asarray(y, float), np.ones(window) / window, mode="valid")
            ax.plot(x[window - 1:], smooth, color=COLOURS.get(r.arch, "black"), ls=ls, alpha=0.9, lw=1.2)
            drawn_archs.add(r.arch)
            drawn_styles[str(r.budget)] = ls
    if not drawn_archs:
        plt_close(fig)
        return "Learning curves: no run logged training bits per byte (no page)."
    arch_and_style_legend(ax, [a for a in archs_in(best) if a in drawn_archs],
                          {b: ls for b, ls in styles.items() if b in drawn_styles}, "budget")
    ax.set_xlabel("bytes seen")
    ax.set_ylabel("training bits per byte")
    ax.grid(True, alpha=0.3)
    return fig


def plt_close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)
