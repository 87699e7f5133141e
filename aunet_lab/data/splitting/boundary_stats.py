"""Where a split function puts its boundaries in real text: units per byte at every stage, the share
of boundaries that fall inside a grapheme cluster (regex's ``\\X``: a letter with its combining marks,
a Devanagari or Thai cluster, an emoji sequence), and the units of a passage for a reader to see.
Training logs these on the test split of every AU-Net run; the report's boundaries page draws them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import regex

from aunet_lab.data.splitting.levels import byte_levels_batch
from aunet_lab.data.splitting.registry import get_split_function

UNIT_MARK = "|"  # between units in an example; a literal "|" in the text stays as it is


def grapheme_ends(text: str) -> set[int]:
    """Byte index of the last byte of every grapheme cluster of ``text`` (UTF-8)."""
    ends, at = set(), 0
    for cluster in regex.findall(r"\X", text):
        at += len(cluster.encode("utf-8", "surrogateescape"))
        ends.add(at - 1)
    return ends


@dataclass
class BoundaryStats:
    """Stage by stage (index 0 is stage 2) over some documents."""

    bytes: int = 0
    boundaries: list[int] = field(default_factory=list)
    inside_graphemes: list[int] = field(default_factory=list)

    def units_per_byte(self) -> list[float]:
        return [b / max(self.bytes, 1) for b in self.boundaries]

    def bytes_per_unit(self) -> list[float]:
        return [self.bytes / b if b else float("inf") for b in self.boundaries]

    def inside_share(self) -> list[float]:
        """Share of each stage's boundaries inside a grapheme cluster (nan where it has none)."""
        return [i / b if b else float("nan") for i, b in zip(self.inside_graphemes, self.boundaries)]


def _levels_of(spec, levels_fn):
    """(levels of many documents, the stages they have): by a split function, or by ``levels_fn``
    (documents -> (levels, offsets), as byte_levels_batch) with its ``max_level``."""
    if levels_fn is not None:
        return levels_fn, levels_fn.max_level
    split = get_split_function(spec)
    return (lambda docs: byte_levels_batch(docs, split)), split.max_level


def boundary_stats(texts: Sequence[str], spec, levels_fn=None) -> BoundaryStats:
    """Boundaries of ``spec`` (a split function or its spec; or ``levels_fn``, e.g. a model's own
    boundaries) at every stage over ``texts``, each split as its own document, and how many of
    them cut a grapheme cluster."""
    levels_of, top = _levels_of(spec, levels_fn)
    stats = BoundaryStats(0, [0] * top, [0] * top)
    if not texts:
        return stats
    levels, offsets = levels_of(list(texts))
    stats.bytes = int(offsets[-1])
    for text, a, b in zip(texts, offsets, offsets[1:]):
        mine = levels[a:b]
        ends = grapheme_ends(text)
        for k in range(1, top + 1):
            cuts = (mine >= k).nonzero().flatten().tolist()
            stats.boundaries[k - 1] += len(cuts)
            stats.inside_graphemes[k - 1] += sum(1 for c in cuts if c not in ends)
    return stats


def example_units(text: str, spec, stage: int = 2, max_chars: int = 80, levels_fn=None) -> str:
    """The first ``max_chars`` characters of the first line of ``text`` with a letter in it (split
    as a document of its own), with a ``|`` after every unit of ``stage``."""
    levels_of, _ = _levels_of(spec, levels_fn)
    line = next((ln for ln in text.splitlines() if regex.search(r"\p{L}", ln)), text)
    passage = line.strip()[:max_chars]
    raw = passage.encode("utf-8", "surrogateescape")
    levels = levels_of([raw])[0].tolist()
    pieces, start = [], 0
    for i, level in enumerate(levels):
        if level >= stage - 1:
            pieces.append(raw[start : i + 1].decode("utf-8", "replace"))
            start = i + 1
    tail = raw[start:].decode("utf-8", "replace")
    return UNIT_MARK.join(pieces) + (UNIT_MARK + tail if tail and pieces else tail)
