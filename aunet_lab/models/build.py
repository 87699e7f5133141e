"""The model a training config describes (no Lightning: ``train --check`` and ``generate`` use it)."""

from __future__ import annotations

from aunet_lab.models.aunet import AUNet
from aunet_lab.models.baseline import TokenTransformer, TransformerConfig


def build_model(config, vocab_size: int | None = None):
    """AU-Net from ``config.model.aunet``, or the BPE baseline (vocabulary from the tokenizer)."""
    if config.model.arch == "bpe":
        b = config.model.bpe
        cfg = TransformerConfig(vocab_size or config.data.vocab_size, b.dim, b.layers, b.heads, b.window, b.ffn_dim,
                                b.rope_theta, b.ffn_multiple_of)
        return TokenTransformer(cfg)
    return AUNet(config.model.aunet)
