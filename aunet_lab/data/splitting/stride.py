"""``stride``: a unit every k bytes, the paper's byte[::k] baselines."""

from __future__ import annotations

import bisect
from typing import Sequence

import torch

from aunet_lab.data.splitting.split_function import SplitFunction
from aunet_lab.data.splitting.unicode_classes import _char_byte_ends, _codepoints


class StrideSplit(SplitFunction):
    """A unit ends every k bytes (``strides`` k1 < k2 < ... for stages 2, 3, ...).

    On ASCII this is exactly byte[::k]. A stride that would end inside a multi-byte character ends
    on that character's last byte instead, and the next unit is counted from there.
    """

    def __init__(self, strides: Sequence[int] = (4,), name: str = "stride"):
        self.strides = tuple(strides)
        self.max_level = len(self.strides)
        self.name = name

    def char_levels(self, text: str) -> torch.Tensor:
        cps = _codepoints(text)
        ends, escaped = _char_byte_ends(cps)
        levels = torch.zeros(len(text), dtype=torch.long)
        nested = all(b % a == 0 for a, b in zip(self.strides, self.strides[1:]))
        if nested and (len(text) == 0 or int(cps.max()) < 0x80):
            # ASCII with each stride dividing the next: exactly byte[::k] at every level.
            pos = torch.arange(len(text))
            for level, k in enumerate(self.strides, start=1):
                levels[(pos + 1) % k == 0] = level
            return levels
        candidates = torch.nonzero(~escaped).flatten().tolist()
        cand_ends = ends[~escaped].tolist()
        last = [-1] * len(self.strides)  # byte index of the last boundary at level >= l+1
        start = 0
        hits, hit_levels = [], []
        while True:
            target = min(last[l] + k for l, k in enumerate(self.strides))
            j = bisect.bisect_left(cand_ends, target, lo=start)
            if j == len(cand_ends):
                break
            byte = cand_ends[j]
            level = max(l + 1 for l, k in enumerate(self.strides) if byte >= last[l] + k)
            hits.append(candidates[j])
            hit_levels.append(level)
            for l in range(level):
                last[l] = byte
            start = j + 1
        if hits:
            levels[torch.tensor(hits)] = torch.tensor(hit_levels)
        return levels
