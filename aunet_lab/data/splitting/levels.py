"""Levels of bytes for a split-function spec, and the units they make at every stage."""

from __future__ import annotations

from typing import Sequence

import torch

from aunet_lab.data.splitting.registry import get_split_function
from aunet_lab.data.splitting.split_function import split_byte_levels
from aunet_lab.data.splitting.unicode_classes import _to_bytes


def byte_levels(data: str | bytes, spec="word") -> torch.Tensor:
    """One level per byte of ``data`` (no BOS). See :func:`level_mask`."""
    levels, _ = byte_levels_batch([data], spec)
    return levels


def byte_levels_batch(docs: Sequence[str | bytes], spec="word") -> tuple[torch.Tensor, list[int]]:
    """Levels of many documents in one pass, each split as its own document: the concatenated
    per-byte levels and the byte offsets (``len(docs) + 1`` entries) of each document in them."""
    return split_byte_levels(docs, get_split_function(spec))


def level_mask(data: str | bytes, spec="word", *, bos: bool = True) -> torch.Tensor:
    """Level of every byte of one document, as a LongTensor.

    With ``bos=True`` (the default) the result has ``len(bytes) + 1`` entries: position 0 is BOS,
    a boundary at every level (the split function's ``max_level``), and position i + 1 is byte i.
    With ``bos=False`` it has one entry per byte. ``data`` is text (encoded as UTF-8) or raw bytes;
    invalid UTF-8 and NUL are accepted and an incomplete or invalid sequence is never a boundary.
    """
    levels = byte_levels(data, spec)
    if not bos:
        return levels
    top = get_split_function(spec).max_level
    return torch.cat([torch.tensor([top], dtype=torch.long), levels])


def units_per_byte(levels: torch.Tensor, max_level: int | None = None, *, bos: bool = False) -> list[float]:
    """Units per byte for stages 2..max_level+1 (index 0 is stage 2). BOS, if present, is skipped."""
    body = levels[1:] if bos else levels
    top = int(max_level if max_level is not None else (int(body.max()) if body.numel() else 1))
    n = max(body.numel(), 1)
    return [float((body >= k).sum()) / n for k in range(1, top + 1)]


def units_by_stage(data: str | bytes, spec="word") -> list[list[bytes]]:
    """The units of every coarse stage (index 0 is stage 2), each a byte string ending on its boundary.

    Bytes after the last boundary form a final, still open unit.
    """
    raw = _to_bytes(data)
    split = get_split_function(spec)
    levels = byte_levels(raw, split).tolist()
    stages = []
    for k in range(1, split.max_level + 1):
        units, start = [], 0
        for i, level in enumerate(levels):
            if level >= k:
                units.append(raw[start : i + 1])
                start = i + 1
        if start < len(raw):
            units.append(raw[start:])
        stages.append(units)
    return stages
