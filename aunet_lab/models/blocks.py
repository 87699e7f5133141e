"""Transformer building blocks shared by AU-Net and the BPE baseline.

Pre-norm RMSNorm, rotary position embeddings, multi-head attention through SDPA (full causal or a
sliding window, with an optional KV cache for generation), SwiGLU feed-forward, no biases.
Imports only torch (must run on a bare GPU box).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def ffn_hidden_dim(dim: int, multiple_of: int = 256) -> int:
    """LLaMA's SwiGLU width: 2/3 of 4*dim, rounded up to ``multiple_of`` (1536 at 512, 5632 at 2048)."""
    hidden = int(2 * 4 * dim / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x / sqrt(mean(x^2) + eps) * weight in fp32, one kernel (the former seven elementwise ones
        # led the small-width CPU profile; same values)
        return F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps).to(x.dtype)


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of shape [..., T, head_dim/2] for integer positions [..., T]."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim))
    angles = positions.float().unsqueeze(-1) * freqs
    return angles.cos(), angles.sin()


def rope_rotation(positions: torch.Tensor, head_dim: int, theta: float):
    """The rotations of :func:`rope_angles` for :func:`apply_rope`: unit complex numbers cos + i sin,
    [..., T, head_dim/2], in eager mode; the (cos, sin) pair under ``torch.compile``, whose Inductor
    generates no code for complex operators but fuses the real form well."""
    cos, sin = rope_angles(positions, head_dim, theta)
    if torch.compiler.is_compiling():
        return cos, sin
    return torch.complex(cos, sin)


def apply_rope(x: torch.Tensor, rotation) -> torch.Tensor:
    """Rotate pairs (x[..., 2i], x[..., 2i+1]) by ``rotation`` from :func:`rope_rotation`; x is
    [B, H, T, hd], the rotation broadcasts as [B?, 1, T, hd/2]. Eager: the pair as a complex number
    times cos + i sin, the same arithmetic as the real form in one kernel instead of about ten."""
    if isinstance(rotation, tuple):
        cos, sin = rotation
        pairs = x.float().unflatten(-1, (-1, 2))
        real, imag = pairs[..., 0], pairs[..., 1]
        return torch.stack((real * cos - imag * sin, real * sin + imag * cos), dim=-1).flatten(-2).to(x.dtype)
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * rotation).flatten(-2).to(x.dtype)


class KVCache:
    """Keys and values of one attention layer for one sequence batch, grown step by step in
    preallocated storage (doubled when full), so a step copies one position, not the history."""

    def __init__(self):
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None
        self._length = 0

    @property
    def length(self) -> int:
        return self._length

    @property
    def k(self) -> torch.Tensor | None:
        return None if self._k is None else self._k[:, :, : self._length]

    @property
    def v(self) -> torch.Tensor | None:
        return None if self._v is None else self._v[:, :, : self._length]

    def truncate(self, length: int) -> None:
        """Keep the first ``length`` positions (drops padding a batched forward appended)."""
        self._length = min(self._length, length)

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        new = k.shape[2]
        end = self._length + new
        if self._k is None or end > self._k.shape[2]:
            capacity = max(64, 2 * end)
            grown_k = k.new_empty(k.shape[0], k.shape[1], capacity, k.shape[3])
            grown_v = v.new_empty(v.shape[0], v.shape[1], capacity, v.shape[3])
            if self._length:
                grown_k[:, :, : self._length] = self.k
                grown_v[:, :, : self._length] = self.v
            self._k, self._v = grown_k, grown_v
        self._k[:, :, self._length : end] = k
        self._v[:, :, self._length : end] = v
        self._length = end
        return self.k, self.v


def attention_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, window: int | None) -> torch.Tensor:
    """Boolean [Tq, Tk] mask: causal, and within ``window`` keys (the query included) if given."""
    diff = q_pos.unsqueeze(-1) - k_pos.unsqueeze(0)
    mask = diff >= 0
    if window is not None:
        mask = mask & (diff < window)
    return mask


_MASKS: dict = {}


def _local_mask(blocks: int, window: int, device, dtype) -> torch.Tensor:
    """Additive [blocks, 1, window, 2 * window] mask (0 or -inf): a query at offset i of its block
    sees keys of the previous and its own block at most ``window - 1`` positions back (none before
    the sequence start). Cached: an additive mask spares SDPA converting a boolean one every call."""
    key = (blocks, window, str(device), dtype)
    if key not in _MASKS:
        i = torch.arange(window, device=device).unsqueeze(1) + window
        j = torch.arange(2 * window, device=device).unsqueeze(0)
        diff = i - j
        allowed = ((diff >= 0) & (diff < window)).expand(blocks, window, 2 * window).clone()
        allowed[0, :, :window] = False
        mask = torch.zeros(allowed.shape, device=device, dtype=dtype).masked_fill(~allowed, float("-inf"))
        if len(_MASKS) > 64:
            _MASKS.clear()
        _MASKS[key] = mask.unsqueeze(1)
    return _MASKS[key]


def local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
    """Causal sliding-window attention in blocks of ``window``: each block of queries attends to its
    own and the previous block, so the work is T x 2w instead of T^2. Same result as the masked
    full attention."""
    B, H, T, D = q.shape
    blocks = -(-T // window)
    pad = blocks * window - T
    if pad:
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
    # Blocks folded into the batch dimension: SDPA's fused CPU/GPU kernels take 4-D inputs only.
    qb = q.view(B, H, blocks, window, D).transpose(1, 2)
    kb = k.view(B, H, blocks, window, D).transpose(1, 2)
    vb = v.view(B, H, blocks, window, D).transpose(1, 2)
    kk = torch.cat([torch.roll(kb, 1, dims=1), kb], dim=3).reshape(B * blocks, H, 2 * window, D)
    vv = torch.cat([torch.roll(vb, 1, dims=1), vb], dim=3).reshape(B * blocks, H, 2 * window, D)
    qb = qb.reshape(B * blocks, H, window, D)
    mask = _local_mask(blocks, window, q.device, q.dtype).repeat(B, 1, 1, 1)
    out = F.scaled_dot_product_attention(qb, kk, vv, attn_mask=mask)
    return out.view(B, blocks, H, window, D).transpose(1, 2).reshape(B, H, blocks * window, D)[:, :, :T]


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, window: int | None = None, rope_theta: float = 10000.0):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.window = window
        self.rope_theta = rope_theta
        self.wq = nn.Linear(dim, dim, bias=False)
        self.wk = nn.Linear(dim, dim, bias=False)
        self.wv = nn.Linear(dim, dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        start = cache.length if cache is not None else 0
        q = self.wq(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        k = self.wk(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        v = self.wv(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        q_pos = torch.arange(start, start + T, device=x.device)
        rotation = rope if rope is not None else rope_rotation(q_pos, self.head_dim, self.rope_theta)
        q, k = apply_rope(q, rotation), apply_rope(k, rotation)
        if cache is not None:
            k, v = cache.append(k, v)
        if T == 1 and start > 0:  # a generation step: the one query sees the window's keys, no mask
            if self.window is not None:
                k, v = k[:, :, -self.window:], v[:, :, -self.window:]
            out = F.scaled_dot_product_attention(q, k, v)
        elif start == 0 and (self.window is None or self.window >= T):
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif start == 0 and 2 * self.window <= T:
            out = local_attention(q, k, v, self.window)
        else:
            k_pos = torch.arange(k.shape[2], device=x.device)
            mask = attention_mask(q_pos, k_pos, self.window)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.wo(out.transpose(1, 2).reshape(B, T, -1))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, window: int | None, rope_theta: float, eps: float):
        super().__init__()
        self.attention_norm = RMSNorm(dim, eps)
        self.attention = Attention(dim, heads, window, rope_theta)
        self.ffn_norm = RMSNorm(dim, eps)
        self.feed_forward = FeedForward(dim, hidden)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, rope=None) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), cache, rope)
        return x + self.feed_forward(self.ffn_norm(x))


class Transformer(nn.Module):
    """A stack of pre-norm blocks (no final norm: norms live in the transitions and the head).

    Positions are counted within the stack's own sequence: 0..T-1, or continuing from the caches.
    """

    def __init__(self, dim: int, layers: int, heads: int, hidden: int, window: int | None = None,
                 rope_theta: float = 10000.0, eps: float = 1e-5):
        super().__init__()
        self.layers = nn.ModuleList(Block(dim, heads, hidden, window, rope_theta, eps) for _ in range(layers))
        self._rotations: torch.Tensor | None = None  # generation: RoPE rotations of positions 0..n-1

    def _rotation(self, start: int, length: int, device) -> torch.Tensor:
        """Rotations of positions start..start+length-1: computed per call in training, from a table
        (grown by doubling) when generating step by step, where recomputing them was a visible cost."""
        first = self.layers[0].attention
        if start == 0 or torch.compiler.is_compiling():
            return rope_rotation(torch.arange(start, start + length, device=device), first.head_dim, first.rope_theta)
        table = self._rotations
        if table is None or table.shape[0] < start + length or table.device != torch.device(device):
            size = max(256, 2 * (start + length))
            table = self._rotations = rope_rotation(torch.arange(size, device=device), first.head_dim, first.rope_theta)
        return table[start : start + length]

    def new_caches(self) -> list[KVCache]:
        return [KVCache() for _ in self.layers]

    def forward(self, x: torch.Tensor, caches: list[KVCache] | None = None) -> torch.Tensor:
        if not len(self.layers):
            return x
        # Rotary angles once per stack: every layer sees the same positions.
        start = caches[0].length if caches is not None else 0
        rope = self._rotation(start, x.shape[1], x.device)
        for i, layer in enumerate(self.layers):
            x = layer(x, None if caches is None else caches[i], rope)
        return x


INIT_SCHEMES = ("lingua", "normal")


def trunc_normal(weight: torch.Tensor, std: float) -> None:
    """Normal(0, std) truncated at 3 std, as lingua initialises every weight."""
    nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-3 * std, b=3 * std)


def init_weights(module: nn.Module, scheme: str = "lingua", std: float = 0.02) -> None:
    """Initialise every parameter of ``module``.

    ``lingua`` (the paper's code base, docs/models.md): each linear map truncated normal with
    std = in_features^-0.5 (dim^-0.5 for wq/wk/wv/wo/w1/w3 and the head, hidden^-0.5 for w2, the
    input width for pooling and upsampling), embeddings std = embedding_dim^-0.5, no depth factor,
    norm gains 1. Modules with other weights initialise them in ``init_extra()``, called last.
    ``normal``: the former N(0, std) with wo/w2 divided by sqrt(2 * number of blocks).
    """
    if scheme == "normal":
        n_layers = max(1, sum(1 for m in module.modules() if isinstance(m, Block)))
        for name, p in module.named_parameters():
            if p.dim() < 2:
                continue
            scale = std / math.sqrt(2 * n_layers) if name.endswith(("wo.weight", "w2.weight")) else std
            nn.init.normal_(p, mean=0.0, std=scale)
        return
    if scheme != "lingua":
        raise ValueError(f"init: expected one of {', '.join(INIT_SCHEMES)}, got {scheme!r}")
    for m in module.modules():
        if isinstance(m, nn.Linear):
            trunc_normal(m.weight, m.in_features ** -0.5)
        elif isinstance(m, nn.Embedding):
            trunc_normal(m.weight, m.embedding_dim ** -0.5)
        elif isinstance(m, RMSNorm):
            nn.init.ones_(m.weight)
    for m in module.modules():
        if hasattr(m, "init_extra"):
            m.init_extra()
