"""Architectures by name (``bpe``, ``aunet1`` ... ``aunet4``) and their models sized by compute
matching, written into a TrainConfig. Shared by the throughput benchmark and the sweep runner."""

from __future__ import annotations

import copy
import re

from aunet_lab.config import BPEModelConfig, TrainConfig
from aunet_lab.models import AUNetConfig, TransformerConfig
from aunet_lab.models.sizing import Scale  # noqa: F401  (re-exported: study specs' sizing extends it)

ARCHS = ("bpe", "aunet1", "aunet2", "aunet3", "aunet4")


def arch_stages(arch: str) -> int:
    """0 for ``bpe``, k for ``aunetk``; ValueError for anything else."""
    if arch == "bpe":
        return 0
    match = re.fullmatch(r"aunet([1-4])", arch)
    if not match:
        raise ValueError(f"unknown architecture {arch!r} (known: {', '.join(ARCHS)})")
    return int(match.group(1))


def with_model(config: TrainConfig, model: AUNetConfig | TransformerConfig) -> TrainConfig:
    """A copy of ``config`` training ``model`` (the BPE vocabulary stays ``data.vocab_size``)."""
    out = copy.deepcopy(config)
    if isinstance(model, TransformerConfig):
        out.model.arch = "bpe"
        out.model.bpe = BPEModelConfig(model.dim, model.layers, model.heads, model.window, model.ffn_dim,
                                       model.ffn_multiple_of, model.rope_theta)
        out.data.vocab_size = model.vocab_size
    else:
        out.model.arch = "aunet"
        out.model.aunet = copy.deepcopy(model)
        out.data.split = model.split
    out.data.arch = out.model.arch
    return out


def matched_models(budget: float, archs: list[str], ratio: float = 10.0, measured: dict | None = None,
                   seq_len_bytes: int = 1024, vocab_size: int = 4096, split: str = "word",
                   scale: Scale | None = None) -> dict:
    """``{arch: model config}`` of equal training compute ``budget`` (and equal FLOPs per byte) by
    the paper's sizing rules, plus ``"bytes"``: how many training bytes that budget buys."""
    from aunet_lab.models.sizing import match_compute

    s = scale or Scale()
    stages = tuple(sorted({arch_stages(a) for a in archs if a != "bpe"})) or (2,)
    matched = match_compute(budget, ratio, stages=stages, vocab_size=vocab_size, seq_len_bytes=seq_len_bytes,
                            head_dim=s.head_dim, width_multiple=s.width_multiple, max_dim=s.max_dim,
                            byte_layers=s.byte_layers, byte_window=s.byte_window, ffn_multiple_of=s.ffn_multiple_of,
                            split=split, measured=measured, aspect_ratio=s.aspect_ratio, count_head=s.count_head,
                            shrink=s.shrink, min_byte_window=s.min_byte_window)
    out = {a: (matched.bpe if a == "bpe" else matched.aunet[arch_stages(a)]) for a in archs}
    out["bytes"] = matched.bytes
    return out
