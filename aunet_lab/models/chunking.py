"""Learned boundaries inside AU-Net, after H-Net's dynamic chunking (Hwang et al., 2025): a stage's
boundaries come from its own encoder output instead of a split function.

* **Routing**: the boundary probability of element t is ``p_t = (1 - cos(q_t, k_{t-1})) / 2`` with
  ``q = W_q x``, ``k = W_k x`` (both start as the identity): a boundary where the representation
  changes. Element 0 of a row, BOS and EOS are boundaries at every stage; at the byte stage only the
  last byte of a complete UTF-8 character may be one. ``b_t = p_t >= 0.5``. ``p_t`` reads elements
  t - 1 and t only, so boundaries stay causal and generation decides each new one at once.
* **Smoothing**: the coarse stage's outputs are smoothed along its sequence before upsampling,
  ``z̄_j = P_j z_j + (1 - P_j) z̄_{j-1}`` (P_j: the probability at unit j's boundary), and the
  upsampled vector is scaled by a straight-through confidence (``c_t = p_t`` at a boundary,
  ``1 - p_t`` elsewhere; its value is 1, its gradient reaches the router).
* **Ratio loss** toward a target compression N (elements per unit of the stage below):
  ``N / (N - 1) * ((N - 1) F G + (1 - F)(1 - G))`` with F the share of elements that are
  boundaries and G their mean probability; added to the training loss, weighted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn



def char_end_mask(ids: torch.Tensor) -> torch.Tensor:
    """[..., T] bool: the byte at t is the last byte of a complete UTF-8 character given bytes up to
    t (ids >= 256, the special ids, count as ends). Reads at most 3 bytes back."""
    special = ids >= 256
    b = ids.clamp(max=255)
    cont = ((b & 0xC0) == 0x80) & ~special
    lead_len = torch.zeros_like(b)
    lead_len = torch.where(b < 0x80, 1, lead_len)
    lead_len = torch.where((b >= 0xC2) & (b <= 0xDF), 2, lead_len)
    lead_len = torch.where((b >= 0xE0) & (b <= 0xEF), 3, lead_len)
    lead_len = torch.where((b >= 0xF0) & (b <= 0xF4), 4, lead_len)
    lead_len = torch.where(special, 0, lead_len)
    end = (lead_len == 1) | special
    run = cont.clone()  # continuation bytes at t, t-1, ..., t-k+1
    for k in range(1, 4):
        if ids.shape[-1] <= k:
            break
        lead_before = F.pad(lead_len[..., :-k], (k, 0))  # the id k back (0 before the row)
        end = end | (run & (lead_before == k + 1))
        run = run & F.pad(cont[..., :-k], (k, 0), value=False)
    return end


class Routing(nn.Module):
    """Boundary probabilities of a stage's elements from its encoder output."""

    def __init__(self, dim: int):
        super().__init__()
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.q.weight.copy_(torch.eye(self.q.weight.shape[0]))
            self.k.weight.copy_(torch.eye(self.k.weight.shape[0]))

    def pair(self, prev: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """p of elements ``x`` [..., d] given the elements before them ``prev`` [..., d]."""
        q = F.normalize(self.q(x), dim=-1)
        k = F.normalize(self.k(prev), dim=-1)
        return ((1 - (q * k).sum(-1)) / 2).clamp(0.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, d] -> p [B, T]; element 0 has nothing before it: 1."""
        p = self.pair(x[:, :-1], x[:, 1:])
        return torch.cat([torch.ones_like(x[:, :1, 0]), p], 1)


def boundaries(p: torch.Tensor, forced: torch.Tensor, allowed: torch.Tensor, valid: torch.Tensor):
    """(probabilities with the rules applied, bool boundaries): forced elements are boundaries with
    probability 1, elements not allowed (inside a character) or not valid (padding) never are."""
    p = torch.where(forced, torch.ones_like(p), p * allowed.to(p.dtype))
    p = torch.where(valid, p, torch.zeros_like(p))
    return p, (p >= 0.5) & valid


def ratio_loss(p: torch.Tensor, b: torch.Tensor, valid: torch.Tensor, target: float) -> torch.Tensor:
    """H-Net's ratio loss of one stage: 1 when the share of boundaries F and their mean
    probability G both equal 1 / target, more elsewhere."""
    n = valid.sum().clamp(min=1)
    f = (b & valid).sum() / n
    g = (p * valid).sum() / n
    return target / (target - 1) * ((target - 1) * f * g + (1 - f) * (1 - g))


def smooth(z: torch.Tensor, p: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
    """``z̄_j = p_j z_j + (1 - p_j) z̄_{j-1}`` along dim 1 ([B, Tc, d], p [B, Tc]); ``start``:
    z̄ before the first element (zeros)."""
    out = []
    prev = torch.zeros_like(z[:, 0]) if start is None else start
    for j in range(z.shape[1]):
        w = p[:, j].unsqueeze(-1).to(z.dtype)
        prev = w * z[:, j] + (1 - w) * prev
        out.append(prev)
    return torch.stack(out, 1) if out else z


def confidence(p: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Straight-through confidence: value 1, gradient of ``p`` at boundaries and ``1 - p`` elsewhere."""
    c = torch.where(b, p, 1 - p)
    return c + (1 - c).detach()


class LearnedLevels:
    """A model's own boundaries as levels of bytes (the shape ``byte_levels_batch`` gives), for
    measuring where learned chunking cuts text: each document alone from BOS, in pieces of
    ``max_bytes``."""

    def __init__(self, model, max_bytes: int = 16384):
        self.model, self.max_bytes = model, max_bytes
        self.max_level = model.n_stages - 1

    @torch.no_grad()
    def __call__(self, docs) -> tuple[torch.Tensor, list[int]]:
        from aunet_lab.data.byte_ids import BOS_ID

        was = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        out, offsets = [], [0]
        for doc in docs:
            raw = doc.encode("utf-8", "surrogateescape") if isinstance(doc, str) else bytes(doc)
            levels = torch.zeros(len(raw), dtype=torch.long)
            for start in range(0, len(raw), self.max_bytes):
                piece = raw[start : start + self.max_bytes]
                _, trace = self.model.run(torch.tensor([[BOS_ID, *piece]], device=device))
                where = torch.arange(len(piece) + 1, device=device)  # byte positions of a stage's elements
                for k, m in enumerate(trace.maps, start=1):
                    where = where[m.idx[0, : int(m.kept[0])]]
                    at = where[where > 0] - 1  # BOS is position 0
                    levels[start + at.cpu()] = k
            out.append(levels)
            offsets.append(offsets[-1] + len(raw))
        self.model.train(was)
        return (torch.cat(out) if out else torch.zeros(0, dtype=torch.long)), offsets
