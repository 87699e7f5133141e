"""The BPE-token transformer baseline, built from the same blocks as AU-Net.

(The flat byte transformer is ``AUNet`` with one stage: one code path, not two copies.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from aunet_lab.models.aunet import ConfigError
from aunet_lab.models.blocks import INIT_SCHEMES, KVCache, RMSNorm, Transformer, ffn_hidden_dim, init_weights


@dataclass
class TransformerConfig:
    """A LLaMA-style decoder over token ids (pre-norm RMSNorm, RoPE, SwiGLU, untied head).

    ``init``: ``lingua`` (default; truncated normal, std = fan-in^-0.5, see docs/models.md) or
    ``normal`` (N(0, ``init_std``), output projections scaled by depth)."""

    vocab_size: int
    dim: int
    layers: int
    heads: int
    window: int | None = None
    ffn_dim: int | None = None  # SwiGLU hidden width; None: 8/3 * dim rounded up to ffn_multiple_of
    rope_theta: float = 10000.0
    ffn_multiple_of: int = 256
    norm_eps: float = 1e-5
    init_std: float = 0.02
    init: str = "lingua"

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        name = type(self).__name__
        for key in ("vocab_size", "dim", "layers", "heads"):
            value = getattr(self, key)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name}.{key}: expected a positive integer, got {value!r}")
        if self.dim % self.heads:
            raise ConfigError(f"{name}.heads: {self.heads} heads do not divide dim {self.dim}")
        if (self.dim // self.heads) % 2:
            raise ConfigError(f"{name}.heads: head dim {self.dim // self.heads} must be even for rotary embeddings")
        if self.window is not None and (not isinstance(self.window, int) or self.window <= 0):
            raise ConfigError(f"{name}.window: expected a positive integer or null, got {self.window!r}")
        if self.init not in INIT_SCHEMES:
            raise ConfigError(f"{name}.init: expected one of {', '.join(INIT_SCHEMES)}, got {self.init!r}")
        if self.ffn_multiple_of <= 0:
            raise ConfigError(f"{name}.ffn_multiple_of: expected a positive integer, got {self.ffn_multiple_of}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @classmethod
    def tiny(cls, vocab_size: int = 512, dim: int = 64, **overrides: Any) -> "TransformerConfig":
        defaults = dict(layers=2, heads=max(1, dim // 16), ffn_multiple_of=16)
        defaults.update(overrides)
        return cls(vocab_size=vocab_size, dim=dim, **defaults)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class TokenTransformer(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        self.trunk = Transformer(config.dim, config.layers, config.heads,
                                 config.ffn_dim or ffn_hidden_dim(config.dim, config.ffn_multiple_of), config.window,
                                 config.rope_theta, config.norm_eps)
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.output = nn.Linear(config.dim, config.vocab_size, bias=False)
        init_weights(self, config.init, config.init_std)

    def forward(self, token_ids: torch.Tensor, caches: list[KVCache] | None = None) -> torch.Tensor:
        """Next-token logits [B, T, vocab]; position t predicts token t+1."""
        return self.output(self.norm(self.trunk(self.tok_embeddings(token_ids), caches)))

    def new_caches(self) -> list[KVCache]:
        return self.trunk.new_caches()
