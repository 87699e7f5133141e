"""Text pages of the report: wrapped lines over as many pages as they need, and the appendix table
(one number format per column)."""

from __future__ import annotations

import math
import textwrap

from aunet_lab.reports.style import PAGE


def text_page(title: str, lines: list[str], size: int = 11):
    """One page of text (what does not fit is cut: see ``text_pages``)."""
    return text_pages(title, lines, size, limit=1)[0]


def text_pages(title: str, lines: list[str], size: int = 11, limit: int | None = None) -> list:
    """Pages of text, as many as the lines need (``limit``: at most that many, the rest cut); a
    continued page's title says so. Lines starting with two spaces are set in monospace."""
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


def scientific(value) -> str:
    """Counts and rates that span decades (parameters, FLOPs, bytes, learning rates): ``1.23e+05``."""
    return "-" if _missing(value) else f"{float(value):.2e}"


def bits(value) -> str:
    """Bits per byte and other losses: three decimals."""
    return "-" if _missing(value) else f"{float(value):.3f}"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# (column, header, width, format) of the appendix; one format per kind of number
TABLE = [("cell", "cell", 28, str), ("arch", "arch", 7, str), ("bytes", "bytes", 9, scientific),
         ("mixture", "mixture", 10, str), ("params", "params", 9, scientific), ("compute", "FLOPs", 9, scientific),
         ("lr", "lr", 9, scientific), ("val_objective", "val BPB", 8, bits), ("test_bpb_mean", "test BPB", 8, bits),
         ("seeds", "seeds", 5, "{:d}".format)]


def table_pages(best, per_page: int = 22) -> list:
    """The appendix: the best trial of every cell, ``per_page`` cells a page."""
    def cell(text: str, width: int, left: bool) -> str:
        text = text[:width]
        return f"{text:{'<' if left else '>'}{width}s}"

    header = " ".join(cell(h, w, fmt is str) for _, h, w, fmt in TABLE)
    rows = [" ".join(cell(fmt(getattr(r, col)), w, fmt is str) for col, _, w, fmt in TABLE)
            for r in best[[c for c, *_ in TABLE]].itertuples(index=False)]
    pages = []
    for i in range(0, max(1, len(rows)), per_page):
        title = "Appendix: best trial per cell" + (f" ({i // per_page + 1})" if len(rows) > per_page else "")
        note = ("  bytes: the training data budget in bytes; FLOPs: training compute; test BPB: mean over the cell's "
                "seeds (intervals: the findings)")
        pages.append(text_page(title, ["  " + header] + ["  " + r for r in rows[i:i + per_page]] + ["", note],
                               size=9))
    return pages
