"""The split-function interface: :class:`SplitFunction`, its :class:`LevelStream`, and byte levels
from a split function's character levels."""

from __future__ import annotations

from typing import Sequence

import torch

from aunet_lab.data.splitting.unicode_classes import _char_byte_ends, _codepoints, _to_bytes

MAX_SUPPORTED_LEVEL = 15


class SplitSpecError(ValueError):
    """A split-function spec that cannot be used; the message is one line naming the spec."""


class SplitFunction:
    """Maps a document (decoded with ``surrogateescape``) to one level per character.

    Subclasses implement :meth:`char_levels`. The boundary of a character sits on its last byte;
    escaped bad bytes are never boundaries (enforced in :func:`split_byte_levels`).
    """

    name: str = "split"
    max_level: int = 1
    stable: bool = True

    def char_levels(self, text: str) -> torch.Tensor:
        raise NotImplementedError

    def char_levels_batch(self, text: str, starts: list[int]) -> torch.Tensor:
        """Levels of many documents joined in ``text``; document d is ``text[starts[d]:starts[d+1]]``
        and is split on its own. Built-ins override this with one vectorised pass."""
        parts = [self.char_levels(text[a:b]) for a, b in zip(starts[:-1], starts[1:])]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)

    def level_stream(self) -> "LevelStream":
        """Levels of a document's bytes as they arrive (generation); see :class:`LevelStream`."""
        return LevelStream(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, max_level={self.max_level})"


class LevelStream:
    """The level of each byte of one document as it is appended: by stability, the last entry of
    ``byte_levels`` over the document so far, which is what this generic version computes (its
    cost grows with the document). ``word`` replaces it with a state machine that does the same in
    constant time per byte (:class:`~aunet_lab.data.splitting.word._WordLevelStream`)."""

    def __init__(self, split: SplitFunction):
        self.split = split
        self.document = bytearray()

    def push(self, byte: int) -> int:
        self.document.append(byte)
        levels, _ = split_byte_levels([bytes(self.document)], self.split)
        return int(levels[-1])

    def feed(self, data: bytes) -> None:
        """Take in bytes whose levels are already known (a prompt)."""
        self.document.extend(data)


def split_byte_levels(docs: Sequence[str | bytes], split: SplitFunction) -> tuple[torch.Tensor, list[int]]:
    """``byte_levels_batch`` for a resolved split function: the concatenated per-byte levels of
    ``docs``, each split as its own document, and the byte offsets of each document in them."""
    raws = [_to_bytes(d) for d in docs]
    offsets = [0]
    for r in raws:
        offsets.append(offsets[-1] + len(r))
    texts = [r.decode("utf-8", "surrogateescape") for r in raws]
    starts = [0]
    for t in texts:
        starts.append(starts[-1] + len(t))
    text = "".join(texts)
    levels = torch.zeros(offsets[-1], dtype=torch.long)
    if not text:
        return levels, offsets
    char_levels = split.char_levels_batch(text, starts) if len(texts) > 1 else split.char_levels(text)
    ends, escaped = _char_byte_ends(_codepoints(text))
    levels[ends] = torch.where(escaped, torch.zeros_like(char_levels), char_levels)
    return levels, offsets
