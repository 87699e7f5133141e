"""Parameters, FLOPs per byte, the paper's presets, compute matching and hyperparameter laws.

FLOPs convention (one everywhere, the paper's section 2.3):

* per element of a stage: ``6 * N_stage + 6 * d_stage * layers_stage * context_stage``, where
  ``N_stage`` are the non-embedding parameters that element passes through (encoder + decoder of the
  stage, the pooling into it, and the upsampling out of it counted as two matrices: the shared one
  and the one its offset selects), ``layers_stage`` counts encoder and decoder layers, and
  ``context_stage`` is the attended context (the window, or the stage's sequence length if shorter);
* per byte: the sum over stages of FLOPs per element / bytes per element of that stage, with bytes
  per element *measured on the run's own training stream* (``measure_stream`` in the data layer,
  passed through :func:`model_flops`; without a measurement, the paper's 4.56 bytes per token for
  stage 2, doubled for each deeper stage);
* the BPE baseline: FLOPs per token / bytes per token measured on the same text;
* output-head FLOPs (``6 * d * vocab`` per output position) are reported separately and are not in
  the totals used for compute matching, unless a study's ``sizing.count_head`` (and its runs'
  ``trainer.count_head_flops``) says so: at CPU widths the head is most of a BPE model's compute.

Imports only torch (must run on a bare GPU box).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from aunet_lab.models.aunet import AUNet, AUNetConfig, StageConfig
from aunet_lab.models.baseline import TokenTransformer, TransformerConfig
from aunet_lab.models.blocks import ffn_hidden_dim

PAPER_BYTES_PER_TOKEN = 4.56  # DCLM, LLaMA-3 tokenizer (paper section 2.3)
LLAMA3_VOCAB = 128256


def default_bytes_per_unit(stages: int, bytes_per_token: float = PAPER_BYTES_PER_TOKEN) -> list[float]:
    """Bytes per element of every stage until the corpus is measured: 1, 4.56, 9.12, 18.24."""
    return [1.0] + [bytes_per_token * 2 ** (k - 1) for k in range(1, stages)]


def _params(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def _build(config, device: str | torch.device = "meta"):
    with torch.device(device):
        return AUNet(config) if isinstance(config, AUNetConfig) else TokenTransformer(config)


def _ffn(dim: int, ffn_dim: int | None, multiple_of: int) -> int:
    return ffn_dim or ffn_hidden_dim(dim, multiple_of)


def _stack_params(dim: int, layers: int, ffn: int) -> int:
    """A transformer stack: attention (4 d^2), SwiGLU (3 d ffn) and two norms per layer."""
    return layers * (4 * dim * dim + 3 * dim * ffn + 2 * dim)


def _analytic_counts(config) -> dict[str, int]:
    if isinstance(config, TransformerConfig):
        body = _stack_params(config.dim, config.layers, _ffn(config.dim, config.ffn_dim, config.ffn_multiple_of))
        embedding = 2 * config.vocab_size * config.dim
        return {"non_embedding": body + config.dim, "embedding": embedding, "total": body + config.dim + embedding}
    non_embedding = sum(stage_params(config))
    embedding = 2 * config.vocab_size * config.stages[0].dim
    return {"non_embedding": non_embedding, "embedding": embedding, "total": non_embedding + embedding}


def count_params(model_or_config) -> dict[str, int]:
    """``{"non_embedding", "embedding", "total"}``. Embedding = input embedding + output head
    (the paper's convention: 525M for the 1B BPE baseline's untied 128k vocabulary). A config is
    counted analytically (instant, any size); a model by its parameters."""
    if not isinstance(model_or_config, nn.Module):
        return _analytic_counts(model_or_config)
    model = model_or_config
    embedding = _params(model.tok_embeddings) + _params(model.output)
    total = _params(model)
    return {"non_embedding": total - embedding, "embedding": embedding, "total": total}


def stage_params(config: AUNetConfig) -> list[int]:
    """Non-embedding parameters of every stage: its encoder and decoder (or the trunk), the pooling
    into it, the upsampling out of it into the finer stage, and the head's norm for the byte stage.
    Their sum is the model's non-embedding parameter count."""
    st = config.stages
    n = config.n_stages
    out = []
    for i, s in enumerate(st):
        ffn = _ffn(s.dim, s.ffn_dim, config.ffn_multiple_of)
        p = _stack_params(s.dim, s.layers if i == n - 1 else 2 * s.layers, ffn)
        if i > 0:
            fine = st[i - 1].dim
            p += fine + fine * s.dim  # pooling: norm + projection
            p += s.dim + s.dim * fine + fine  # upsampling: norm + shared + no-context vector
            if config.upsampling == "multilinear":
                p += config.max_offsets * s.dim * fine
            elif config.upsampling == "repeat":
                p += config.max_offsets * s.dim
        out.append(p)
    out[0] += st[0].dim  # the head's norm
    return out


def _active_stage_params(config: AUNetConfig) -> list[int]:
    """Parameters one element of each stage passes through: as :func:`stage_params`, but of the
    offset-specific upsampling matrices only the one its offset selects."""
    params = stage_params(config)
    if config.upsampling == "multilinear":
        for i in range(1, config.n_stages):
            params[i] -= (config.max_offsets - 1) * config.stages[i].dim * config.stages[i - 1].dim
    return params


@dataclass
class FlopsReport:
    """Training FLOPs (forward + backward) per byte, per stage and in total; head FLOPs apart."""

    per_stage: list[float]
    total: float
    head: float
    bytes_per_unit: list[float]
    flops_per_unit: list[float] = field(default_factory=list)
    boundary: float = 0.0  # learned boundaries (in ``total``): a split function's model (forward only) or routing

    @property
    def total_with_head(self) -> float:
        return self.total + self.head


def flops_per_byte(model_or_config, seq_len: int = 8192, bytes_per_unit: list[float] | None = None,
                   bytes_per_token: float = PAPER_BYTES_PER_TOKEN) -> FlopsReport:
    """FLOPs per byte of an AU-Net (``seq_len`` in bytes) or of the BPE baseline (``seq_len`` in
    tokens, converted with ``bytes_per_token``)."""
    config = model_or_config.config if isinstance(model_or_config, nn.Module) else model_or_config
    if isinstance(config, TransformerConfig):
        n = count_params(config)["non_embedding"]
        context = min(config.window or seq_len, seq_len)
        per_token = 6 * n + 6 * config.dim * config.layers * context
        head = 6 * config.dim * config.vocab_size / bytes_per_token
        return FlopsReport([per_token / bytes_per_token], per_token / bytes_per_token, head,
                           [bytes_per_token], [per_token])
    n = config.n_stages
    bpu = list(bytes_per_unit) if bytes_per_unit is not None else default_bytes_per_unit(n, bytes_per_token)
    if len(bpu) != n or bpu[0] != 1.0:
        raise ValueError(f"bytes_per_unit needs {n} entries starting with 1.0 (the byte stage), got {bpu}")
    params = _active_stage_params(config)
    per_unit, per_byte = [], []
    for i, (s, p) in enumerate(zip(config.stages, params)):
        layers = s.layers if i == n - 1 else 2 * s.layers
        length = seq_len / bpu[i]
        context = min(s.window or length, length)
        f = 6 * p + 6 * s.dim * layers * context
        per_unit.append(f)
        per_byte.append(f / bpu[i])
    head = 6 * config.stages[0].dim * config.vocab_size
    if config.learned:  # routing: two square maps per element of every stage but the deepest, trained
        boundary = sum(6 * 2 * s.dim**2 / bpu[i] for i, s in enumerate(config.stages[:-1]))
        return FlopsReport(per_byte, sum(per_byte) + boundary, head, bpu, per_unit, boundary)
    from aunet_lab.data.splitting import get_split_function

    split = get_split_function(config.split)
    boundary = float(split.flops_per_byte()) if hasattr(split, "flops_per_byte") else 0.0
    return FlopsReport(per_byte, sum(per_byte) + boundary, head, bpu, per_unit, boundary)


def model_flops(model_config, window: int, measured: dict | None):
    """FLOPs per byte of a model from the measured ratios of its training stream; ``window`` in
    the model's own units (bytes for AU-Net, tokens for BPE). The planner and training both call this:
    one source of compute."""
    measured = measured or {}
    if hasattr(model_config, "stages"):
        bpu = measured.get("bytes_per_unit")
        if model_config.learned:  # the split function's units are not the model's: its targets are
            bpu = [1.0] + model_config.targets()
        return flops_per_byte(model_config, window, list(bpu[: model_config.n_stages]) if bpu else None)
    return flops_per_byte(model_config, window, bytes_per_token=measured.get("bytes_per_token", PAPER_BYTES_PER_TOKEN))


# ------------------------------------------------------------------------------ presets


def _aunet(dims, layers, head_dims, ffn, windows) -> AUNetConfig:
    stages = [StageConfig(d, n, d // h, w, None, f) for d, n, h, f, w in zip(dims, layers, head_dims, ffn, windows)]
    return AUNetConfig(stages=stages, split="word", rope_theta=500000.0)


PRESETS = {
    # Paper Table 9 (dims; layers per stage pair; head dims; FFN), windows of the released configs.
    "aunet2-1b": lambda: _aunet([512, 2048], [3, 25], [64, 128], [1536, 5632], [512, 4096]),
    "aunet3-1b": lambda: _aunet([512, 2048, 3072], [3, 3, 18], [64, 128, 128], [1536, 5632, 8192], [512, 4096, 4096]),
    "aunet4-1b": lambda: _aunet([512, 2048, 3072, 4608], [3, 3, 4, 10], [64, 128, 128, 128],
                                [1536, 5632, 8192, 12288], [512, 4096, 4096, 4096]),
    "aunet2-8b": lambda: _aunet([1024, 4096], [3, 32], [64, 128], [4096, 14336], [512, 4096]),
    "bpe-1b": lambda: TransformerConfig(LLAMA3_VOCAB, 2048, 25, 16, None, 5632),
    "bpe-8b": lambda: TransformerConfig(LLAMA3_VOCAB, 4096, 32, 32, None, 11008),
    # The flat byte transformer of the 1B comparison: the BPE shape over 258 byte ids.
    "bytes-1b": lambda: AUNetConfig(stages=[StageConfig(2048, 25, 16, None, None, 5632)], rope_theta=500000.0),
}

# Non-embedding / embedding parameters the paper reports for them (Tables 2 and 9).
PAPER_PARAMS = {
    "aunet2-1b": 1.3e9, "aunet3-1b": 2.5e9, "aunet4-1b": 4.2e9, "aunet2-8b": 7.9e9, "bpe-1b": 1.3e9, "bpe-8b": 6.5e9,
}
PAPER_EMBEDDING = {"bpe-1b": 525e6, "bpe-8b": 1.05e9}


def preset_config(name: str) -> AUNetConfig | TransformerConfig:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})")
    return PRESETS[name]()


def preset(name: str, device: str | torch.device = "meta") -> AUNet | TokenTransformer:
    """The model of a preset, on the meta device by default (shapes only, no memory)."""
    return _build(preset_config(name), device)


# ------------------------------------------------------------------------------ compute matching

ASPECT_RATIO = 93.0  # width / depth of the paper's BPE scaling ladder (1024/12, 2048/21, 3456/37)
DIM_GROWTH = (0.25, 1.0, 1.5, 2.25)  # stage widths relative to the word stage (512; 2048; 3072; 4608)


@dataclass
class MatchedConfigs:
    """Configs of equal training compute ``budget`` at data-to-model ratio ``ratio`` (in BPE tokens)."""

    budget: float
    ratio: float
    bytes_per_token: float
    bpe: TransformerConfig
    tokens: float
    bpe_flops_per_token: float
    aunet: dict[int, AUNetConfig]
    bytes: float
    aunet_flops_per_byte: dict[int, float]


def _round_to(x: float, multiple: int) -> int:
    return max(multiple, int(round(x / multiple)) * multiple)


@dataclass
class Scale:
    """How small the matched shapes are: the paper's rule with CPU-sized widths and heads.

    ``aspect_ratio`` is width / depth (the paper's 93; a CPU ladder uses less, or every model has
    one layer). ``count_head``: the output head's FLOPs count in matching (and in the runs' logged
    compute); at CPU widths a BPE head of a few thousand entries costs several times the body.
    ``shrink``: when the paper's byte stage alone costs more than the budget allows, narrow its
    window (down to ``min_byte_window``), then its layers, then its width, before giving up."""

    head_dim: int = 32
    width_multiple: int = 32
    byte_layers: int = 2
    byte_window: int | None = 256
    ffn_multiple_of: int = 32
    max_dim: int = 4096
    aspect_ratio: float = ASPECT_RATIO
    count_head: bool = False
    shrink: bool = True
    min_byte_window: int = 32


def _heads(dim: int, head_dim: int) -> int:
    """About dim / head_dim heads: the most that divide ``dim`` into even head widths (RoPE)."""
    heads = max(1, dim // head_dim)
    while heads > 1 and (dim % heads or (dim // heads) % 2):
        heads -= 1
    return heads


MATCH_TOLERANCE = 1.25  # a shape within this factor of the target FLOPs needs no further shrinking


def bpe_shape(dim: int, vocab_size: int, head_dim: int = 64, ffn_multiple_of: int = 256,
              aspect_ratio: float = ASPECT_RATIO) -> TransformerConfig:
    layers = max(1, int(round(dim / aspect_ratio)))
    return TransformerConfig(vocab_size, dim, layers, _heads(dim, head_dim), ffn_multiple_of=ffn_multiple_of)


def aunet_shape(dim: int, stages: int, split: str = "word", byte_layers: int = 3, head_dim: int = 64,
                byte_window: int | None = 512, ffn_multiple_of: int = 256, aspect_ratio: float = ASPECT_RATIO,
                byte_factor: float = DIM_GROWTH[0]) -> AUNetConfig:
    """The paper's AU-Net sizing rule around a word-stage width ``dim``: byte stage ``byte_factor``
    (1/4) of it with ``byte_layers`` layers (3 in the paper) and a sliding window, deeper stages 1.5x
    wider each, 3 layers in each intermediate stage (fewer if the byte stage has fewer), and the rest
    of a BPE-like depth (dim / ``aspect_ratio``) in the deepest."""
    if stages == 1:
        layers = max(1, int(round(dim / aspect_ratio)))
        return AUNetConfig([StageConfig(dim, layers, _heads(dim, head_dim))], split=split,
                           ffn_multiple_of=ffn_multiple_of)
    total = max(1, int(round(dim / aspect_ratio)))
    stage_list = []
    for k in range(stages):
        width = _round_to(dim * (byte_factor if k == 0 else DIM_GROWTH[k]), head_dim)
        if k == 0:
            layers, window = byte_layers, byte_window
        elif k < stages - 1:
            layers, window = min(3, byte_layers), None
        else:
            layers, window = max(1, total - 3 * (stages - 2)), None
        stage_list.append(StageConfig(width, layers, _heads(width, head_dim), window))
    return AUNetConfig(stage_list, split=split, ffn_multiple_of=ffn_multiple_of)


def byte_stage_variants(byte_layers: int, byte_window: int | None, min_window: int = 32) -> list[tuple]:
    """(width factor, layers, window) of the byte stage, from the paper's rule to the smallest:
    the window halves first, then layers go, then the width halves."""
    windows = [byte_window]
    while windows[-1] is not None and windows[-1] // 2 >= min_window:
        windows.append(windows[-1] // 2)
    return [(factor, layers, window) for factor in (DIM_GROWTH[0], DIM_GROWTH[0] / 2)
            for layers in range(byte_layers, 0, -1) for window in windows]


def _fit_width(target: float, make, flops, multiple: int, lo: int, hi: int) -> tuple[object, float]:
    best = None
    for dim in range(lo, hi + 1, multiple):
        cfg = make(dim)
        f = flops(cfg)
        err = abs(math.log(f / target))
        if best is None or err < best[0]:
            best = (err, cfg, f)
    return best[1], best[2]


def match_compute(budget: float, ratio: float = 10.0, stages: tuple[int, ...] = (2, 3),
                  bytes_per_token: float = PAPER_BYTES_PER_TOKEN, vocab_size: int = LLAMA3_VOCAB,
                  seq_len_bytes: int = 8192, bytes_per_unit: dict[int, list[float]] | None = None,
                  head_dim: int = 64, width_multiple: int = 64, max_dim: int = 8192, byte_layers: int = 3,
                  byte_window: int | None = 512, ffn_multiple_of: int = 256, split: str = "word",
                  measured: dict | None = None, aspect_ratio: float = ASPECT_RATIO, count_head: bool = False,
                  shrink: bool = False, min_byte_window: int = 32) -> MatchedConfigs:
    """BPE and AU-Net-k configs for a training budget ``budget`` (FLOPs) at data-to-model ratio
    ``ratio`` (tokens per FLOP-per-token, the paper's gamma, in BPE tokens).

    BPE: FLOPs per token F = sqrt(budget / ratio), trained on ratio * F tokens. AU-Net: the same
    budget over ``bytes_per_token`` times as many bytes (gamma_byte = k^2 gamma), so its FLOPs per
    byte is F / k. Widths are searched in steps of ``width_multiple`` for the closest FLOPs; scale
    down to CPU sizes with a small ``width_multiple``, ``head_dim``, ``byte_layers`` and
    ``aspect_ratio``. ``count_head`` counts the output heads' FLOPs in the match; ``shrink`` lets the
    AU-Net byte stage narrow (:func:`byte_stage_variants`) until a shape is within
    ``MATCH_TOLERANCE`` of the target. ``measured`` (the output of
    :func:`aunet_lab.data.bpe.measure_units`) replaces the paper's 4.56 bytes per token and the
    default bytes per unit with the corpus's own.
    """
    if budget <= 0 or ratio <= 0:
        raise ValueError("budget and ratio must be positive")
    if measured is not None:
        # From aunet_lab.data.bpe.measure_units on the study's own training text (pooled languages).
        pooled = measured.get("all", measured)
        bytes_per_token = pooled.get("bytes_per_token", bytes_per_token)
        bpu = pooled["bytes_per_unit"]
        bytes_per_unit = {k: bpu[:k] for k in stages if len(bpu) >= k}
    f_token = math.sqrt(budget / ratio)
    tokens = ratio * f_token
    seq_tokens = max(1, int(seq_len_bytes / bytes_per_token))

    def bpe_flops(c):
        report = flops_per_byte(c, seq_tokens, bytes_per_token=bytes_per_token)
        return report.flops_per_unit[0] + (report.head * bytes_per_token if count_head else 0.0)

    bpe, f_bpe = _fit_width(f_token, lambda d: bpe_shape(d, vocab_size, head_dim, ffn_multiple_of, aspect_ratio),
                            bpe_flops, width_multiple, width_multiple, max_dim)
    f_byte = f_token / bytes_per_token
    variants = byte_stage_variants(byte_layers, byte_window, min_byte_window) if shrink else \
        [(DIM_GROWTH[0], byte_layers, byte_window)]
    aunets, f_aunet = {}, {}
    for k in stages:
        bpu = (bytes_per_unit or {}).get(k)

        def aunet_flops(c, bpu=bpu):
            report = flops_per_byte(c, seq_len_bytes, bpu, bytes_per_token)
            return report.total_with_head if count_head else report.total

        best = None
        for factor, layers, window in (variants if k > 1 else variants[:1]):
            cfg, f = _fit_width(
                f_byte,
                lambda d, k=k, factor=factor, layers=layers, window=window: aunet_shape(
                    d, k, split, layers, head_dim, window, ffn_multiple_of, aspect_ratio, factor),
                aunet_flops, width_multiple, width_multiple * (4 if k > 1 else 1), max_dim,
            )
            err = abs(math.log(f / f_byte))
            if best is None or err < best[0] - 1e-12:
                best = (err, cfg, f)
            if err <= math.log(MATCH_TOLERANCE):
                break
        aunets[k], f_aunet[k] = best[1], best[2]
    return MatchedConfigs(budget, ratio, bytes_per_token, bpe, tokens, f_bpe, aunets, tokens * bytes_per_token,
                          f_aunet)


# ------------------------------------------------------------------------------ hyperparameter laws

# Paper section 2.3 / Table 6: batch size in input units per step (bytes for AU-Net, tokens for
# BPE) and peak learning rate as power laws of the compute budget C.
HPARAM_LAWS = {
    "aunet": {"batch": (0.66, 0.321), "lr": (6.6, -0.176)},
    "bpe": {"batch": (29.9, 0.231), "lr": (19.3, -0.177)},
}
# The laws were fitted on small models (25M-500M) and used up to the paper's 1e22 ladder; outside
# this range the compute is clamped to the nearest end before the law is applied.
HPARAM_FIT_RANGE = (1e17, 1e22)


@dataclass
class HParams:
    batch_size: float  # input units per step
    lr: float
    compute: float  # the compute the law was evaluated at (after clamping)
    clamped: bool


def hyperparameters(compute: float, arch: str, extrapolate: bool = False) -> HParams:
    """The paper's batch size and learning rate for ``arch`` ('aunet' or 'bpe') at ``compute`` FLOPs
    (clamped to the laws' fitted range, unless ``extrapolate``)."""
    family = "bpe" if arch == "bpe" else "aunet"
    lo, hi = HPARAM_FIT_RANGE
    used = compute if extrapolate else min(max(compute, lo), hi)
    (cb, eb), (cl, el) = HPARAM_LAWS[family]["batch"], HPARAM_LAWS[family]["lr"]
    return HParams(cb * used**eb, cl * used**el, used, used != compute)
