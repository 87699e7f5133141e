"""User-specified split functions: a regex (``regex:PATTERN``), or a callable returning one level per character."""

from __future__ import annotations

from typing import Callable, Sequence

import regex
import torch

from aunet_lab.data.splitting.split_function import SplitFunction, SplitSpecError


class RegexSplit(SplitFunction):
    """Boundaries on the last character of every match of ``patterns[l-1]``, at level l."""

    def __init__(self, patterns: Sequence[str], name: str | None = None):
        self.patterns = [regex.compile(p) for p in patterns]
        self.max_level = len(self.patterns)
        self.name = name or "regex:" + patterns[0]
        self.stable = False  # unknown until `check_stability` says so

    def char_levels(self, text: str) -> torch.Tensor:
        levels = torch.zeros(len(text), dtype=torch.long)
        for level, pattern in enumerate(self.patterns, start=1):
            ends = [m.end() - 1 for m in pattern.finditer(text) if m.end() > m.start()]
            if ends:
                idx = torch.tensor(ends)
                levels[idx] = torch.maximum(levels[idx], torch.tensor(level))
        return levels


class CallableSplit(SplitFunction):
    """Wraps ``fn(text: str) -> sequence of int`` (one level per character).

    ``fn.max_level`` sets the deepest level (default 3, like ``word``).
    """

    def __init__(self, fn: Callable[[str], Sequence[int]], name: str):
        self.fn = fn
        self.name = name
        self.max_level = int(getattr(fn, "max_level", 3))
        self.stable = bool(getattr(fn, "stable", False))

    def char_levels(self, text: str) -> torch.Tensor:
        out = self.fn(text)
        try:
            levels = torch.as_tensor(out)
        except (TypeError, ValueError, RuntimeError):
            raise SplitSpecError(
                f"split function {self.name!r}: returned {type(out).__name__}, expected a sequence "
                "of integer levels, one per character"
            ) from None
        if levels.dim() != 1 or levels.numel() != len(text):
            raise SplitSpecError(
                f"split function {self.name!r}: returned shape {tuple(levels.shape)} for "
                f"{len(text)} characters, expected ({len(text)},): one level per character"
            )
        if levels.is_floating_point() or levels.dtype == torch.bool:
            raise SplitSpecError(f"split function {self.name!r}: returned {levels.dtype} levels, expected integers")
        levels = levels.long()
        if levels.numel() and (int(levels.min()) < 0 or int(levels.max()) > self.max_level):
            raise SplitSpecError(
                f"split function {self.name!r}: returned levels outside 0..{self.max_level} "
                "(set fn.max_level for deeper splits)"
            )
        return levels
