"""The Autoregressive U-Net (AU-Net, arXiv 2506.14761) over raw UTF-8 bytes.

Contracting path: stage i runs its encoder, then *pooling* keeps the vectors at the boundary bytes
of stage i+1 (the split function's levels), RMSNorm and a linear map to the next stage's width.
The deepest stage (the trunk) runs on the coarsest sequence. Expanding path: *upsampling* gives
every fine position the coarse vector of the latest boundary at or before it (a boundary is the
last byte of a unit, so the vector of "SAT " helps predict "ON "), the encoder output of the stage
is added (the skip), and the stage's decoder runs. Stage 1 ends in RMSNorm and an untied head over
258 ids (bytes 0-255, BOS, EOS). One stage is the flat byte transformer.

Imports only torch and regex (through the split functions): it must run on a bare GPU box.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from aunet_lab.data.byte_ids import BOS_ID, BYTE_VOCAB
from aunet_lab.data.splitting import SplitSpecError, byte_levels, get_split_function
from aunet_lab.models.chunking import Routing, boundaries, char_end_mask, confidence, ratio_loss, smooth
from aunet_lab.models.blocks import (INIT_SCHEMES, KVCache, RMSNorm, Transformer, ffn_hidden_dim, init_weights,
                                    trunc_normal)

UPSAMPLING_KINDS = ("multilinear", "repeat", "scatter")
MAX_DIM = 1 << 16  # bounds that no real model reaches, so a typo cannot hang model building
MAX_LAYERS = 1024


class ConfigError(ValueError):
    """A model config that cannot be built; the message names the field."""


@dataclass
class StageConfig:
    """One stage. For every stage but the deepest, ``layers`` is the depth of its encoder *and* of
    its decoder (separate weights, as in the reference code); for the deepest stage (the trunk),
    its total depth. ``window``: sliding attention window in elements of this stage (None: full
    causal). ``max_len``: optional cap on this stage's sequence length per row; boundaries past it
    are dropped and counted (the positions after them read the last kept vector)."""

    dim: int
    layers: int
    heads: int
    window: int | None = None
    max_len: int | None = None
    ffn_dim: int | None = None  # SwiGLU hidden width; None: 8/3 * dim rounded up to ffn_multiple_of

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


@dataclass
class AUNetConfig:
    """AU-Net with ``len(stages)`` stages (1 = flat byte transformer).

    ``upsampling``: ``multilinear`` (the paper's: a shared linear plus one of ``max_offsets``
    position-specific linears chosen by the offset from the boundary), ``repeat`` (shared linear
    over the coarse vector plus a learned offset embedding) or ``scatter`` (the coarse vector only
    at the boundary position itself, zeros elsewhere). Offsets past ``max_offsets - 1``:
    ``offset_overflow="clamp"`` (default) uses the last matrix for all of them; ``"wrap"`` takes the
    offset modulo ``max_offsets`` like the reference code.

    ``init``: ``lingua`` (default, the paper's code: truncated normal, std = fan-in^-0.5 per
    stage, see docs/models.md) or ``normal`` (N(0, ``init_std``), output projections scaled by
    depth; ``init_std`` is used by ``normal`` only).
    """

    stages: list[StageConfig]
    split: str = "word"
    upsampling: str = "multilinear"
    max_offsets: int = 16
    offset_overflow: str = "clamp"
    vocab_size: int = BYTE_VOCAB
    rope_theta: float = 500000.0
    ffn_multiple_of: int = 256
    norm_eps: float = 1e-5
    skip: bool = True
    init_std: float = 0.02
    init: str = "lingua"
    # "split": boundaries from the split function; "learned": from the model (models/chunking.py),
    # aiming at target_bytes per unit of each coarse stage (default 5, 10, 20) with a ratio loss.
    chunking: str = "split"
    target_bytes: list[float] | None = None
    ratio_loss: float = 0.03

    def __post_init__(self):
        self.stages = [s if isinstance(s, StageConfig) else StageConfig(**s) for s in self.stages]
        self.validate()

    @property
    def n_stages(self) -> int:
        return len(self.stages)

    @property
    def learned(self) -> bool:
        return self.chunking == "learned"

    def targets(self) -> list[float]:
        """Target bytes per unit of each coarse stage (stages 2..n)."""
        return list(self.target_bytes or [5.0 * 2**k for k in range(self.n_stages - 1)])[: self.n_stages - 1]

    def validate(self) -> None:
        name = type(self).__name__
        if not self.stages:
            raise ConfigError(f"{name}.stages: at least one stage is needed")
        for i, s in enumerate(self.stages):
            where = f"{name}.stages[{i}]"
            for key, most in (("dim", MAX_DIM), ("layers", MAX_LAYERS), ("heads", MAX_DIM)):
                value = getattr(s, key)
                if not isinstance(value, int) or value <= 0 or value > most:
                    raise ConfigError(f"{where}.{key}: expected an integer in [1, {most}], got {value!r}")
            if s.dim % s.heads:
                raise ConfigError(f"{where}.heads: {s.heads} heads do not divide dim {s.dim}")
            if s.head_dim % 2:
                raise ConfigError(f"{where}.heads: head dim {s.head_dim} must be even for rotary embeddings")
            if s.ffn_dim is not None and (not isinstance(s.ffn_dim, int) or not 0 < s.ffn_dim <= 8 * MAX_DIM):
                raise ConfigError(f"{where}.ffn_dim: expected a positive integer or null, got {s.ffn_dim!r}")
            if s.window is not None and (not isinstance(s.window, int) or s.window <= 0):
                raise ConfigError(f"{where}.window: expected a positive integer or null, got {s.window!r}")
            if s.max_len is not None:
                if i == 0:
                    raise ConfigError(f"{where}.max_len: the byte stage has no cap (it is the input length)")
                if not isinstance(s.max_len, int) or s.max_len <= 0:
                    raise ConfigError(f"{where}.max_len: expected a positive integer or null, got {s.max_len!r}")
        if self.upsampling not in UPSAMPLING_KINDS:
            raise ConfigError(f"{name}.upsampling: expected one of {', '.join(UPSAMPLING_KINDS)}, got {self.upsampling!r}")
        if not isinstance(self.max_offsets, int) or not 0 < self.max_offsets <= MAX_DIM:
            raise ConfigError(f"{name}.max_offsets: expected a positive integer, got {self.max_offsets!r}")
        if self.offset_overflow not in ("clamp", "wrap"):
            raise ConfigError(f"{name}.offset_overflow: expected clamp or wrap, got {self.offset_overflow!r}")
        if self.vocab_size < BYTE_VOCAB:
            raise ConfigError(f"{name}.vocab_size: at least {BYTE_VOCAB} (bytes, BOS, EOS), got {self.vocab_size}")
        if self.init not in INIT_SCHEMES:
            raise ConfigError(f"{name}.init: expected one of {', '.join(INIT_SCHEMES)}, got {self.init!r}")
        if not 0 < self.ffn_multiple_of <= MAX_DIM:
            raise ConfigError(f"{name}.ffn_multiple_of: expected a positive integer, got {self.ffn_multiple_of}")
        if self.chunking not in ("split", "learned"):
            raise ConfigError(f"{name}.chunking: expected split or learned, got {self.chunking!r}")
        if self.learned:
            if self.target_bytes is not None and not isinstance(self.target_bytes, (list, tuple)):
                raise ConfigError(f"{name}.target_bytes: expected a list of bytes per unit (stages 2..{self.n_stages}), "
                                  f"got {self.target_bytes!r}")
            targets = self.targets()
            if len(targets) < self.n_stages - 1 or any(not isinstance(t, (int, float)) for t in targets) or \
                    any(b <= a for a, b in zip([1.0] + targets, targets)):
                raise ConfigError(f"{name}.target_bytes: expected {self.n_stages - 1} increasing numbers above 1 "
                                  f"(bytes per unit of stages 2..{self.n_stages}), got {self.target_bytes!r}")
            if not isinstance(self.ratio_loss, (int, float)) or self.ratio_loss < 0:
                raise ConfigError(f"{name}.ratio_loss: expected a weight >= 0, got {self.ratio_loss!r}")
            return
        try:
            split = get_split_function(self.split)
        except SplitSpecError as err:
            raise ConfigError(f"{name}.split: {err}") from None
        if self.n_stages - 1 > split.max_level:
            raise ConfigError(
                f"{name}.split: {self.n_stages} stages need {self.n_stages - 1} boundary levels, but split "
                f"function {self.split!r} gives {split.max_level}"
            )

    @classmethod
    def tiny(cls, stages: int = 2, split: str = "word", dim: int = 32, **overrides: Any) -> "AUNetConfig":
        """A CPU-sized config for tests and demos: widths dim, 2*dim, 2*dim, 2*dim (capped at 4 stages
        by the default split), one layer per encoder/decoder, two in the trunk."""
        if not isinstance(stages, int) or stages < 1:
            raise ConfigError(f"AUNetConfig.stages: expected a positive number of stages, got {stages!r}")
        dims = [dim] + [2 * dim] * (stages - 1)
        layer_counts = [1] * (stages - 1) + [2]
        stage_list = [StageConfig(d, n, max(1, d // 16)) for d, n in zip(dims, layer_counts)]
        stage_list[0].window = overrides.pop("byte_window", None)
        if stages == 1:
            split = split if split else "word"
        return cls(stages=stage_list, split=split, ffn_multiple_of=overrides.pop("ffn_multiple_of", 16), **overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "AUNetConfig":
        return cls(**data)


class Pooling(nn.Module):
    """Contracting step: the vectors at boundary positions, RMSNorm, linear to the next width."""

    def __init__(self, fine_dim: int, coarse_dim: int, eps: float):
        super().__init__()
        self.norm = RMSNorm(fine_dim, eps)
        self.proj = nn.Linear(fine_dim, coarse_dim, bias=False)

    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        picked = torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        return self.proj(self.norm(picked))


class Upsampling(nn.Module):
    """Expanding step: each fine position reads the coarse vector of the latest boundary at or before
    it (``src``; -1 before the first boundary of the window, which reads the learned
    ``no_context`` vector), transformed according to its ``offset`` from that boundary."""

    def __init__(self, coarse_dim: int, fine_dim: int, kind: str, max_offsets: int, overflow: str, eps: float):
        super().__init__()
        self.kind = kind
        self.max_offsets = max_offsets
        self.overflow = overflow
        self.norm = RMSNorm(coarse_dim, eps)
        self.shared = nn.Linear(coarse_dim, fine_dim, bias=False)
        if kind == "multilinear":
            self.per_offset = nn.Parameter(torch.empty(max_offsets, coarse_dim, fine_dim))
        elif kind == "repeat":
            self.offset_embedding = nn.Embedding(max_offsets, coarse_dim)
        self.no_context = nn.Parameter(torch.zeros(fine_dim))

    def init_extra(self) -> None:
        """lingua's init for what ``init_weights`` does not know: the per-offset maps, like every
        linear, std = fan-in (coarse width)^-0.5; the offset embedding N(0, 1) (lingua's
        ``pos_encoding`` keeps nn.Embedding's default); ``no_context`` (ours) zeros."""
        if self.kind == "multilinear":
            trunc_normal(self.per_offset, self.per_offset.shape[1] ** -0.5)
        elif self.kind == "repeat":
            nn.init.normal_(self.offset_embedding.weight)
        nn.init.zeros_(self.no_context)

    def offset_index(self, offset: torch.Tensor) -> torch.Tensor:
        if self.overflow == "wrap":
            return offset % self.max_offsets
        return offset.clamp(max=self.max_offsets - 1)

    def forward(self, y: torch.Tensor, src: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        B, Tc, dc = y.shape
        has_context = (src >= 0).unsqueeze(-1)
        src = src.clamp(min=0)
        off = self.offset_index(offset)
        y = self.norm(y)
        if self.kind == "multilinear":
            # All offsets' products at the coarse rate in one matmul, then one gather per fine position.
            per = (y @ self.per_offset.permute(1, 0, 2).reshape(dc, -1)).view(B, Tc * self.max_offsets, -1)
            base = self.shared(y)
            out = torch.gather(base, 1, src.unsqueeze(-1).expand(-1, -1, base.shape[-1]))
            flat = (src * self.max_offsets + off).unsqueeze(-1).expand(-1, -1, per.shape[-1])
            out = out + torch.gather(per, 1, flat)
        elif self.kind == "repeat":
            picked = torch.gather(y, 1, src.unsqueeze(-1).expand(-1, -1, dc))
            out = self.shared(picked + self.offset_embedding(off))
        else:  # scatter: only the boundary position itself receives the coarse vector
            base = self.shared(y)
            out = torch.gather(base, 1, src.unsqueeze(-1).expand(-1, -1, base.shape[-1]))
            out = out * (offset == 0).unsqueeze(-1).to(out.dtype)
        return torch.where(has_context, out, self.no_context.to(out.dtype))


@dataclass
class StageMap:
    """How a fine stage maps onto the next coarser one, for one batch."""

    idx: torch.Tensor  # [B, Tc] fine positions of the kept boundaries (then padding)
    kept: torch.Tensor  # [B] boundaries kept per row
    dropped: torch.Tensor  # [B] boundaries dropped by the cap
    src: torch.Tensor  # [B, T] index of the latest kept boundary at or before each fine position
    offset: torch.Tensor  # [B, T] distance from that boundary
    levels: torch.Tensor  # [B, Tc] levels of the coarse elements (-1 for padding)


def map_stage(levels: torch.Tensor, threshold: int, cap: int | None) -> StageMap:
    """Select the elements with ``level >= threshold``; the coarse sequence has ``cap`` entries if a
    cap is set (static shape), else as many as the row with the most boundaries."""
    B, T = levels.shape
    is_boundary = levels >= threshold
    counts = is_boundary.sum(1)
    if cap is not None:
        Tc = min(cap, T)
    else:
        Tc = max(int(counts.max()) if B else 0, 1)
    order = torch.argsort((~is_boundary).to(torch.int8), dim=1, stable=True)
    idx = order[:, :Tc]
    kept = counts.clamp(max=Tc)
    rank = torch.cumsum(is_boundary.long(), 1) - 1
    src = rank.clamp(max=Tc - 1)
    boundary_pos = torch.gather(idx, 1, src.clamp(min=0))
    positions = torch.arange(T, device=levels.device).expand(B, T)
    offset = torch.where(src >= 0, positions - boundary_pos, torch.zeros_like(positions))
    coarse_levels = torch.gather(levels, 1, idx)
    valid = torch.arange(Tc, device=levels.device).unsqueeze(0) < kept.unsqueeze(1)
    coarse_levels = torch.where(valid, coarse_levels, torch.full_like(coarse_levels, -1))
    return StageMap(idx, kept, counts - kept, src, offset, coarse_levels)


@dataclass
class ForwardTrace:
    """What a forward pass computed at every stage (used by cached generation and telemetry)."""

    maps: list[StageMap] = field(default_factory=list)
    stage_outputs: list[torch.Tensor] = field(default_factory=list)  # decoder (or trunk) output per stage
    encoder_outputs: list[torch.Tensor] = field(default_factory=list)  # encoder output per stage but the deepest
    probs: list[torch.Tensor] = field(default_factory=list)  # learned chunking: boundary probability per element


def levels_from_ids(ids: torch.Tensor, split, max_level: int | None = None) -> torch.Tensor:
    """Levels for a batch of byte ids: per document (BOS starts one, and so does the row's start),
    with BOS and EOS boundaries at every level."""
    split = get_split_function(split)
    top = split.max_level if max_level is None else max_level
    out = torch.zeros(ids.shape, dtype=torch.long)
    rows = ids.detach().cpu().tolist()
    for r, row in enumerate(rows):
        start = 0
        for t, tok in enumerate(row + [BOS_ID]):
            if tok >= 256:
                if t > start:
                    out[r, start:t] = byte_levels(bytes(row[start:t]), split)
                if t < len(row):
                    out[r, t] = top
                start = t + 1
    return out.to(ids.device)


class AUNet(nn.Module):
    def __init__(self, config: AUNetConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.split = get_split_function(config.split)
        st = config.stages
        eps = config.norm_eps

        def stack(s: StageConfig) -> Transformer:
            return Transformer(s.dim, s.layers, s.heads, s.ffn_dim or ffn_hidden_dim(s.dim, config.ffn_multiple_of), s.window,
                               config.rope_theta, eps)

        self.tok_embeddings = nn.Embedding(config.vocab_size, st[0].dim)
        self.encoders = nn.ModuleList(stack(s) for s in st[:-1])
        self.pooling = nn.ModuleList(Pooling(st[i].dim, st[i + 1].dim, eps) for i in range(len(st) - 1))
        self.trunk = stack(st[-1])
        self.upsampling = nn.ModuleList(
            Upsampling(st[i + 1].dim, st[i].dim, config.upsampling, config.max_offsets, config.offset_overflow, eps)
            for i in range(len(st) - 1)
        )
        self.decoders = nn.ModuleList(stack(s) for s in st[:-1])
        self.norm = RMSNorm(st[0].dim, eps)
        self.output = nn.Linear(st[0].dim, config.vocab_size, bias=False)
        if config.learned:
            self.routing = nn.ModuleList(Routing(st[i].dim) for i in range(len(st) - 1))
        init_weights(self, config.init, config.init_std)
        if config.learned:
            for r in self.routing:
                r.reset_parameters()  # H-Net's identity start: a boundary where the representation turns
        self.last_stats: dict[str, list[torch.Tensor]] = {}
        self.aux_loss: torch.Tensor | None = None

    @property
    def n_stages(self) -> int:
        return self.config.n_stages

    def compute_levels(self, byte_ids: torch.Tensor) -> torch.Tensor:
        """Levels from the configured split function, each row taken as one document from its start."""
        return levels_from_ids(byte_ids, self.split)

    def forward(self, byte_ids: torch.Tensor, levels: torch.Tensor | None = None) -> torch.Tensor:
        """Next-byte logits [B, T, vocab]; position t predicts byte t+1."""
        logits, _ = self.run(byte_ids, levels)
        return logits

    def run(self, byte_ids: torch.Tensor, levels: torch.Tensor | None = None,
            caches: list[list[KVCache]] | None = None) -> tuple[torch.Tensor, ForwardTrace]:
        """Forward pass that also returns the per-stage trace. ``caches`` (one list per stack, in the
        order of :meth:`stacks`) are filled for cached generation."""
        n = self.n_stages
        learned = self.config.learned
        if learned:
            return self._run_learned(byte_ids, caches)
        if levels is None:
            levels = self.compute_levels(byte_ids) if n > 1 else torch.zeros_like(byte_ids)
        levels = levels.to(byte_ids.device).clamp(max=n - 1)
        cache = (lambda k: caches[k]) if caches is not None else (lambda k: None)
        trace = ForwardTrace()
        x = self.tok_embeddings(byte_ids)
        skips = []
        for i in range(n - 1):
            x = self.encoders[i](x, cache(i))
            skips.append(x)
            m = map_stage(levels, i + 1, self.config.stages[i + 1].max_len)
            trace.maps.append(m)
            x = self.pooling[i](x, m.idx)
            levels = m.levels
        x = self.trunk(x, cache(n - 1))
        outputs = [x]
        for i in reversed(range(n - 1)):
            m = trace.maps[i]
            up = self.upsampling[i](x, m.src, m.offset)
            x = skips[i] + up if self.config.skip else up
            x = self.decoders[i](x, cache(n + i))
            outputs.append(x)
        trace.stage_outputs = outputs[::-1]
        trace.encoder_outputs = skips
        self.last_stats = {
            "kept": [m.kept.detach().sum() for m in trace.maps],
            "dropped": [m.dropped.detach().sum() for m in trace.maps],
        }
        return self.output(self.norm(x)), trace

    def _run_learned(self, byte_ids: torch.Tensor, caches) -> tuple[torch.Tensor, ForwardTrace]:
        """The forward pass with learned chunking (models/chunking.py): each coarse stage's
        boundaries from the routing of the stage below, its outputs smoothed before upsampling,
        the ratio loss in ``aux_loss``."""
        n = self.n_stages
        cache = (lambda k: caches[k]) if caches is not None else (lambda k: None)
        trace = ForwardTrace()
        forced = byte_ids >= 256
        allowed = char_end_mask(byte_ids)
        valid = torch.ones_like(forced)
        targets = [1.0] + self.config.targets()
        x = self.tok_embeddings(byte_ids)
        skips, bounds, coarse_p, aux = [], [], [], x.new_zeros(())
        for i in range(n - 1):
            x = self.encoders[i](x, cache(i))
            skips.append(x)
            p, b = boundaries(self.routing[i](x), forced, allowed, valid)
            aux = aux + ratio_loss(p, b, valid, targets[i + 1] / targets[i])
            m = map_stage(b.long(), 1, self.config.stages[i + 1].max_len)
            trace.maps.append(m)
            trace.probs.append(p)
            bounds.append(b)
            valid = torch.arange(m.idx.shape[1], device=x.device).unsqueeze(0) < m.kept.unsqueeze(1)
            forced = torch.gather(forced, 1, m.idx) & valid
            allowed = valid
            coarse_p.append(torch.gather(p, 1, m.idx))
            x = self.pooling[i](x, m.idx)
        x = smooth(self.trunk(x, cache(n - 1)), coarse_p[n - 2])
        outputs = [x]
        for i in reversed(range(n - 1)):
            m = trace.maps[i]
            up = self.upsampling[i](x, m.src, m.offset) * confidence(trace.probs[i], bounds[i]).unsqueeze(-1)
            x = skips[i] + up if self.config.skip else up
            x = self.decoders[i](x, cache(n + i))
            if i:
                x = smooth(x, coarse_p[i - 1])
            outputs.append(x)
        trace.stage_outputs = outputs[::-1]
        trace.encoder_outputs = skips
        self.aux_loss = self.config.ratio_loss * aux if self.training else None
        self.last_stats = {
            "kept": [m.kept.detach().sum() for m in trace.maps],
            "dropped": [m.dropped.detach().sum() for m in trace.maps],
        }
        return self.output(self.norm(x)), trace

    def stacks(self) -> list[Transformer]:
        """Every transformer stack in cache order: encoders, trunk, decoders."""
        return [*self.encoders, self.trunk, *self.decoders]

    def new_caches(self) -> list[list[KVCache]]:
        return [s.new_caches() for s in self.stacks()]
