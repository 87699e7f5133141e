"""The boundaries page: AU-Net split functions compared language by language (test BPB with seed
intervals, against BPE), where each put its boundaries on the test text (units per byte at every
stage, the share inside grapheme clusters), and the units of a test passage. Drawn when a study
varies the split function and its runs logged where the boundaries fell
(``training.tracking.log_boundaries``)."""

from __future__ import annotations

import numpy as np

from aunet_lab.intervals import seed_interval
from aunet_lab.reports.style import (ARCH_LABEL, COLOURS, HATCHES, PAGE, archs_in, error_bars, interval_caption,
                                     interval_text, split_name, with_script)

# Families with the glyphs the examples need, tried in order (Debian: fonts-droid-fallback for CJK,
# fonts-lohit-deva for Devanagari, fonts-thai-tlwg for Thai); a glyph none has is drawn as a box.
FALLBACK_FONTS = ["DejaVu Sans", "Droid Sans Fallback", "Noto Sans CJK JP", "Lohit Devanagari", "Noto Sans Devanagari",
                  "Garuda", "Noto Sans Thai"]


def _stats(best):
    """The AU-Net rows and, per (mixture, split), its test-text boundary columns: a mixture is a
    single-language cell's language, scored on its own test text."""
    aunet = best[best["arch"] != "bpe"]
    have = [c for c in best.columns if c.startswith("test/units_per_byte/")]
    return aunet, have


def has_boundaries(best) -> bool:
    aunet, have = _stats(best)
    return bool(have) and aunet["split"].nunique() > 1


def _stages(best) -> list[int]:
    return sorted({int(c.rsplit("stage", 1)[1]) for c in best.columns if c.startswith("test/units_per_byte/")})


def _value(row, kind: str, lang: str, stage: int) -> float:
    value = row.get(f"test/{kind}/{lang}/stage{stage}")
    return float(value) if value is not None and value == value else np.nan


def _language(mixture: str, languages: list[str]) -> str | None:
    """The test language a cell's boundaries are read on: its mixture's, where it is one language."""
    return mixture if mixture in languages else None


def fig_boundaries(best, languages: list[str]):
    """Test BPB, units per byte by stage and boundaries inside grapheme clusters, by training
    language (x) and split function (hatching)."""
    if not has_boundaries(best):
        return None
    import matplotlib.pyplot as plt

    aunet, _ = _stats(best)
    splits = sorted(set(aunet["split"]))
    hatches = dict(zip(splits, HATCHES))
    mixtures = [m for m in sorted(set(aunet["mixture"])) if _language(m, languages)]
    if not mixtures:
        return None
    stages = _stages(best)
    seeds = interval_caption(int(best["seeds"].min()), int(best["seeds"].max()))
    fig = plt.figure(figsize=PAGE)
    fig.suptitle("Boundaries: AU-Net split functions by training language (hatching: split function)\n"
                 f"BPB: mean over seeds, {seeds}; where the boundaries fall: measured on\nthe language's test "
                 "text, the same for every seed: no interval", fontsize=12)
    grid = fig.add_gridspec(2, max(2, len(stages)), hspace=0.5, wspace=0.3, top=0.82, bottom=0.14)
    x = np.arange(len(mixtures))
    labels = [with_script(m) for m in mixtures]

    ax = fig.add_subplot(grid[0, : max(1, grid.ncols - 1)])
    groups = ([("bpe", None)] if "bpe" in set(best["arch"]) else []) + \
        [(a, s) for a in archs_in(aunet) for s in splits]
    width = 0.8 / len(groups)
    for k, (arch, split) in enumerate(groups):
        rows = best[best["arch"] == arch] if split is None else aunet[(aunet["arch"] == arch) & (aunet["split"] == split)]
        stats = []
        for m in mixtures:
            cell = rows[rows["mixture"] == m]
            stats.append(seed_interval(cell["test_bpb_seeds"].iloc[0]) if len(cell) else (np.nan, np.nan, np.nan))
        ax.bar(x + k * width, [s[0] for s in stats], width, color=COLOURS[arch], hatch=hatches.get(split, ""),
               edgecolor="white", yerr=error_bars(stats), capsize=2, error_kw={"lw": 0.8},
               label=ARCH_LABEL[arch] if split is None else f"{ARCH_LABEL[arch]}, {split_name(split)}")
    ax.set_xticks(x + 0.4 - width / 2, labels, fontsize=9, rotation=30 if len(labels) > 4 else 0)
    ax.set_ylabel("test bits per byte")
    ax.set_title("Test bits per byte", fontsize=11)
    ax.legend(fontsize=8, ncol=len(groups), loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)

    width = 0.8 / len(splits)

    def bars(ax, kind: str, stage: int, scale: float = 1.0, fmt: str | None = None):
        for k, split in enumerate(splits):
            values = []
            for m in mixtures:
                cell = aunet[(aunet["mixture"] == m) & (aunet["split"] == split)]
                values.append(scale * _value(cell.iloc[0], kind, m, stage) if len(cell) else np.nan)
            drawn = ax.bar(x + k * width, values, width, color="#9a9a9a", hatch=hatches[split], edgecolor="white",
                           label=split_name(split))
            if fmt:  # a zero is a finding too: write every value
                ax.bar_label(drawn, [fmt.format(v) if v == v else "" for v in values], fontsize=7)
        ax.set_xticks(x + 0.4 - width / 2, [m for m in mixtures], fontsize=9)

    ax = fig.add_subplot(grid[0, grid.ncols - 1])
    bars(ax, "grapheme_cuts", stages[0], 100.0, "{:.0f}")
    ax.set_ylim(bottom=0, top=max(1.0, ax.get_ylim()[1]))
    ax.set_title(f"Stage-{stages[0]} boundaries inside\na grapheme cluster (%)", fontsize=11)
    for j, stage in enumerate(stages):
        ax = fig.add_subplot(grid[1, j])
        bars(ax, "units_per_byte", stage)
        ax.set_title(f"Stage-{stage} units per byte (test text)", fontsize=11)
        if j == 0:
            ax.set_ylabel("units per byte")
            ax.legend(fontsize=8, ncol=len(splits), loc="upper left", bbox_to_anchor=(0.0, -0.12), frameon=False)
    return fig


def examples_page(best, languages: list[str]):
    """The units each split function makes of the start of a test document, stage by stage."""
    if not has_boundaries(best):
        return None
    import matplotlib.pyplot as plt

    aunet, _ = _stats(best)
    splits = sorted(set(aunet["split"]))
    lines = []
    for m in sorted(set(aunet["mixture"])):
        if not _language(m, languages):
            continue
        for split in splits:
            cell = aunet[(aunet["mixture"] == m) & (aunet["split"] == split)]
            if not len(cell):
                continue
            row = cell.iloc[0]
            for stage in _stages(best):
                text = row.get(f"aunet.units_example.{m}.stage{stage}")
                if isinstance(text, str) and text:
                    lines.append((f"{m:5s} {split_name(split)[:20]:20s} stage {stage}", text))
    if not lines:
        return None
    fig = plt.figure(figsize=PAGE)
    fig.text(0.04, 0.95, "Boundaries: the units of a test passage (| after each unit)", fontsize=16, weight="bold",
             va="top")
    step = min(0.03, 0.85 / max(1, len(lines)))
    size = max(5.5, min(10.0, step * 330))
    families = _families()
    for i, (label, text) in enumerate(lines):
        y = 0.89 - i * step
        fig.text(0.04, y, label, fontsize=size, va="top", family="monospace")
        fig.text(0.30, y, text[:110], fontsize=size, va="top", family=families)
    return fig


def _families() -> list[str]:
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return [f for f in FALLBACK_FONTS if f in installed] or ["DejaVu Sans"]


def findings(best, languages: list[str]) -> list[str]:
    """Per language: each split function's test BPB against ``word``'s (the first split the language
    has where the plan refused ``word``), paired by seed, and where its stage-2 boundaries fall."""
    if not has_boundaries(best):
        return []
    aunet, _ = _stats(best)
    splits = sorted(set(aunet["split"]))
    stage = _stages(best)[0]
    out = []
    for arch in archs_in(aunet):
        mine = aunet[aunet["arch"] == arch]
        for m in sorted(set(mine["mixture"])):
            if not _language(m, languages):
                continue
            cells = {r.split: r for r in mine[mine["mixture"] == m].itertuples()}
            reference = "word" if "word" in cells else sorted(cells)[0]
            ref = cells[reference]
            parts = []
            for split in [reference] + [s for s in splits if s != reference]:
                r = cells.get(split)
                if r is None:
                    continue
                row = mine[(mine["mixture"] == m) & (mine["split"] == split)].iloc[0]
                inside, rate = _value(row, "grapheme_cuts", m, stage), _value(row, "units_per_byte", m, stage)
                where = (f"{1 / rate:.2f} bytes a stage-{stage} unit, {100 * inside:.1f}% of its boundaries inside a "
                         "grapheme cluster" if rate == rate and rate > 0 else "no boundaries logged")
                if split == reference:
                    parts.append(f"{split_name(split)} {r.test_bpb_mean:.3f} ({where})")
                    continue
                n = min(len(r.test_bpb_seeds), len(ref.test_bpb_seeds))
                diffs = np.asarray(r.test_bpb_seeds[:n]) - np.asarray(ref.test_bpb_seeds[:n])
                mean, lo, hi = seed_interval(diffs) if n else (np.nan, np.nan, np.nan)
                parts.append(f"{split_name(split)} {r.test_bpb_mean:.3f}, {mean:+.3f} against {split_name(reference)} "
                             f"({interval_text(mean, lo, hi, n, '{:+.3f}')}{', paired by seed' if n > 1 else ''}; "
                             f"{where})")
            out.append(f"Boundaries, {ARCH_LABEL.get(arch, arch)} on {with_script(m)}: test BPB " + "; ".join(parts)
                       + " (boundary figures measured on the test text: no interval).")
    return out
