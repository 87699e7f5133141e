"""The reports' one style: a colour per architecture, a line style per data budget, mixture or
target, the page size, shared axes helpers, legends that list only what is drawn, and how an
interval reads in text."""

from __future__ import annotations

import numpy as np

ARCH_ORDER = ["bpe", "aunet1", "aunet2", "aunet3", "aunet4"]
ARCH_LABEL = {"bpe": "BPE", "aunet1": "flat bytes", "aunet2": "AU-Net-2", "aunet3": "AU-Net-3", "aunet4": "AU-Net-4"}
COLOURS = {"bpe": "#4c72b0", "aunet1": "#8c8c8c", "aunet2": "#dd8452", "aunet3": "#55a868", "aunet4": "#c44e52"}
# Dotted is kept for reference lines (chance, a pretrained model before any target bytes).
LINE_STYLES = ["-", "--", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2)), (0, (2, 1))]
PAGE = (11.0, 8.5)  # inches, landscape letter
# Evaluation languages on AU-Net-only pages: none of the architectures' colours.
LANGUAGE_COLOURS = ["#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#7f7f7f", "#393b79", "#637939", "#ad494a"]
HATCHES = ["", "//", "..", "xx", "\\\\", "oo"]  # split functions, where colour is the architecture


def archs_in(frame) -> list[str]:
    """The architectures present in ``frame`` (an ``arch`` column), in the reports' order."""
    return [a for a in ARCH_ORDER if a in set(frame["arch"])]


def line_styles(values, ordered: bool = False) -> dict:
    """A line style per value (budgets, mixtures, targets): in sorted order, or as given."""
    values = list(dict.fromkeys(values)) if ordered else sorted(set(values))
    return {v: LINE_STYLES[k % len(LINE_STYLES)] for k, v in enumerate(values)}


def arch_and_style_legend(ax, archs: list[str], styles: dict, title: str, extra: list | None = None, **kwargs):
    """One legend for a colour-per-architecture, style-per-``title`` figure: a colour entry per
    architecture drawn and a black line per style drawn (and ``extra`` handles), nothing else."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=COLOURS[a], lw=2.5, label=ARCH_LABEL[a]) for a in archs]
    if len(styles) > 1:
        handles += [Line2D([], [], color="black", ls=ls, lw=1.2, label=f"{title} {value}")
                    for value, ls in styles.items()]
    handles += extra or []
    ax.legend(handles=handles, **{"fontsize": 9, **kwargs})


def figure(title: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=PAGE)
    fig.suptitle(title, fontsize=15)
    return fig, ax


def plain_y(ax) -> None:
    from matplotlib.ticker import FormatStrFormatter

    ax.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2f"))


def bytes_axes(ax, xlabel: str, ylabel: str):
    """A log-scale bytes axis with its grid; returns the figure."""
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    return ax.figure


def error_bars(stats) -> np.ndarray | None:
    """matplotlib's ``yerr`` from (value, low, high) triples; None when no triple has an interval."""
    err = np.array([[v - lo, hi - v] for v, lo, hi in stats], float).T.reshape(2, -1)
    return np.nan_to_num(err, nan=0.0) if np.isfinite(err).any() else None


def heatmap(ax, matrix, rows, cols, fmt="{:.2f}", cmap="viridis_r", labels=None):
    """``matrix`` as a heatmap with each finite value written in its cell (``labels``: the text to
    write instead, e.g. a value with its interval)."""
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
                text = labels[i][j] if labels is not None else fmt.format(matrix[i, j])
                ax.text(j, i, text, ha="center", va="center", fontsize=10 if labels is None else 8,
                        color="white" if dark else "black")
    return im


def with_script(mixture: str) -> str:
    """A single-language mixture's label with its script (``hi (Deva)``); others as they are."""
    from aunet_lab.data.languages import LANGUAGES

    return f"{mixture} ({LANGUAGES[mixture].script})" if mixture in LANGUAGES else mixture


def seeds_text(lo: int, hi: int | None = None) -> str:
    """``n=3 seeds``, ``n=1 seed`` or ``n=2-3 seeds``."""
    hi = lo if hi is None else hi
    span = str(lo) if lo == hi else f"{lo}-{hi}"
    return f"n={span} seed{'' if hi == 1 else 's'}"


def interval_caption(lo: int, hi: int | None = None) -> str:
    """How a figure's title states its seed intervals (or that there are none)."""
    return f"95% Student-t intervals over {seeds_text(lo, hi)}" if lo > 1 else f"{seeds_text(lo, hi)}: no interval"


def interval_text(mean: float, lo: float, hi: float, n: int, fmt: str = "{:.3f}", sep: str = " to ") -> str:
    """``95% CI lo to hi, n=3 seeds`` or, without an interval, why (``n=1 seed: no interval``)."""
    if n < 2 or not (lo == lo and hi == hi):
        return f"{seeds_text(n)}: no interval"
    return f"95% CI {fmt.format(lo)}{sep}{fmt.format(hi)}, {seeds_text(n)}"


def split_name(split: str) -> str:
    """A split-function spec as a label: a learned one by its model file's name (``entropy:help-6``)."""
    if split.startswith("entropy:"):
        from pathlib import PurePath

        return "entropy:" + PurePath(split[len("entropy:"):]).stem
    return split if len(split) <= 24 else split[:21] + "..."
