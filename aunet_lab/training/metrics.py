"""Bits per byte: one implementation for every architecture.

bpb = sum of next-unit NLL in nats / (ln 2 x UTF-8 bytes predicted). Each target carries the number
of bytes it covers (1 for a byte, the token's length for BPE, 0 for BOS/EOS/padding, whose NLL is
left out too), so AU-Net and the baseline divide by exactly the same bytes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchmetrics


def token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-target NLL in nats, [B, T] (0 where the target is ignored, -100)."""
    nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100,
                          reduction="none")
    return nll.view(targets.shape)


class BitsPerByte(torchmetrics.Metric):
    full_state_update = False
    higher_is_better = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("nll", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("nbytes", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        # Sum over scored bytes of the bytes of history each had (for the mean context in bytes).
        self.add_state("history", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, nll: torch.Tensor, target_bytes: torch.Tensor, history: torch.Tensor | None = None) -> None:
        counted = target_bytes > 0
        self.nll += (nll.double() * counted).sum()
        self.nbytes += target_bytes.long().sum()
        if history is not None:
            self.history += (history.double() * target_bytes.double()).sum()

    def compute(self) -> torch.Tensor:
        return self.nll / (math.log(2) * self.nbytes.clamp(min=1))
