"""``entropy:PATH``: boundaries where a small causal byte model is unsure of the next byte (the
entropy patching of BLT), one entropy threshold per level, so the levels nest by construction.

The level of byte i comes from the model's entropy of byte i+1 given BOS and bytes 0..i. The model
reads a window that depends only on i: positions are cut into blocks of ``block`` bytes and a
position in block b sees blocks b-1 and b up to itself. So a level never depends on later bytes
(stable to rightward insertion), a document's levels are the same alone or batched with others, and
generation computes one window per new byte. Only a character's last byte can be a boundary (the
split-function interface puts a character's level there), so no unit ends inside a multi-byte
character or on an invalid byte.

The model (a flat byte transformer from the project's blocks: the aunet1 stage with a head) runs in
float64 so that thresholds are compared on values that do not depend on how rows are batched.
``aunet-lab split train-entropy`` trains it on a corpus's training split and chooses the thresholds.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from aunet_lab.data.byte_ids import BOS_ID, BYTE_VOCAB
from aunet_lab.data.splitting.split_function import LevelStream, SplitFunction
from aunet_lab.data.splitting.unicode_classes import _char_byte_ends, _codepoints

FORMAT = "aunet_lab.entropy_boundaries/1"
ROWS_PER_BATCH = 256


@dataclass
class ByteModelConfig:
    """The boundary model: width, depth, heads, and the block (half its context) in bytes."""

    dim: int = 64
    layers: int = 2
    heads: int = 4
    block: int = 32

    def __post_init__(self):
        for name in ("dim", "layers", "heads", "block"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        if self.dim % self.heads:
            raise ValueError(f"heads: expected a divisor of dim {self.dim}, got {self.heads}")


class ByteEntropyModel(nn.Module):
    """Embedding, a causal transformer stack and a next-byte head over the 258 byte ids."""

    def __init__(self, config: ByteModelConfig):
        super().__init__()
        from aunet_lab.models.blocks import RMSNorm, Transformer, ffn_hidden_dim

        self.config = config
        self.embed = nn.Embedding(BYTE_VOCAB, config.dim)
        self.transformer = Transformer(config.dim, config.layers, config.heads, ffn_hidden_dim(config.dim, 16))
        self.norm = RMSNorm(config.dim)
        self.head = nn.Linear(config.dim, BYTE_VOCAB, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.transformer(self.embed(ids))))

    def flops_per_byte(self) -> float:
        """Forward FLOPs per byte as the split function spends them: every position is computed in
        two windows of 2 blocks (its own block and, as context, the next one's)."""
        c = self.config
        dense = sum(p.numel() for name, p in self.named_parameters() if not name.startswith("embed"))
        attention = 2 * 2 * c.layers * c.dim * c.block  # scores and mixing over a mean context of a block
        return 2 * (2 * dense + attention)


def entropies(model: ByteEntropyModel, sequences: list[list[int]]) -> list[torch.Tensor]:
    """The next-byte entropy (bits) at every position of each id sequence (BOS first), each read in
    its block window (module docstring)."""
    block = model.config.block
    rows, places = [], []
    for s, seq in enumerate(sequences):
        for b in range((len(seq) + block - 1) // block):
            start, stop = max(0, (b - 1) * block), min(len(seq), (b + 1) * block)
            rows.append(seq[start:stop] + [0] * (2 * block - (stop - start)))
            places.append((s, b * block, stop, b * block - start))
    out = [torch.zeros(len(seq), dtype=torch.float64) for seq in sequences]
    for first in range(0, len(rows), ROWS_PER_BATCH):
        bits = _row_entropies(model, rows[first:first + ROWS_PER_BATCH])
        for row, (s, begin, stop, offset) in zip(bits, places[first:first + ROWS_PER_BATCH]):
            out[s][begin:stop] = row[offset:offset + stop - begin]
    return out


def _row_entropies(model: ByteEntropyModel, rows: list[list[int]]) -> torch.Tensor:
    """Entropy (bits) at every position of windows of 2 blocks (zeros after the known bytes: the
    model is causal, so they change nothing before them)."""
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor(rows, dtype=torch.long)).double(), dim=-1)
    return -(logp.exp() * logp).sum(-1) / math.log(2)


def thresholds_for(entropy_at_ends: torch.Tensor, total_bytes: int, targets: list[float]) -> list[float]:
    """One threshold per level so that about ``total_bytes / target`` of the character ends reach
    it: a mean of ``target`` bytes per unit of that stage on the text measured (targets increasing)."""
    ranked = torch.sort(entropy_at_ends.double(), descending=True).values
    out = []
    for target in targets:
        k = max(1, min(len(ranked), round(total_bytes / target)))
        out.append(float(ranked[k - 1]))
    return out


@functools.lru_cache(maxsize=8)
def _load(path: str, stamp: tuple) -> tuple[ByteEntropyModel, dict, str]:
    raw = Path(path).read_bytes()
    import io

    try:
        saved = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors all mean: not a model file
        raise ValueError(f"{path} is not an entropy boundary model ({type(err).__name__})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"{path} is not an entropy boundary model (expected format {FORMAT}; "
                         "train one with `aunet-lab split train-entropy`)")
    model = ByteEntropyModel(ByteModelConfig(**saved["config"]))
    model.load_state_dict(saved["state_dict"])
    return model.double().eval(), saved, hashlib.sha256(raw).hexdigest()


class EntropySplit(SplitFunction):
    """Levels from a trained :class:`ByteEntropyModel`: a character's level is the number of
    ``thresholds`` (increasing) that the entropy after its last byte reaches."""

    stable = True

    def __init__(self, model: ByteEntropyModel, thresholds: list[float], name: str = "entropy", sha256: str = ""):
        if not thresholds or list(thresholds) != sorted(thresholds):
            raise ValueError(f"thresholds: expected one or more, increasing, got {list(thresholds)}")
        self.model = model
        self.thresholds = torch.tensor(thresholds, dtype=torch.float64)
        self.max_level = len(thresholds)
        self.name = name
        self.sha256 = sha256

    @classmethod
    def load(cls, path: str | Path, thresholds: list[float] | None = None) -> "EntropySplit":
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"no such file {path} (train one with `aunet-lab split train-entropy`)")
        stat = path.stat()
        model, saved, sha = _load(str(path.resolve()), (stat.st_mtime_ns, stat.st_size))
        return cls(model, thresholds or saved["thresholds"], name=f"entropy:{path}", sha256=sha)

    def flops_per_byte(self) -> float:
        return self.model.flops_per_byte()

    def _levels(self, entropy: torch.Tensor, text: str) -> torch.Tensor:
        ends, _ = _char_byte_ends(_codepoints(text))
        after = entropy[ends + 1]  # position 0 is BOS: the entropy after byte i sits at i + 1
        return (after[:, None] >= self.thresholds[None, :]).sum(1).to(torch.long)

    def char_levels(self, text: str) -> torch.Tensor:
        return self.char_levels_batch(text, [0, len(text)])

    def char_levels_batch(self, text: str, starts: list[int]) -> torch.Tensor:
        docs = [text[a:b] for a, b in zip(starts[:-1], starts[1:])]
        seqs = [[BOS_ID] + list(d.encode("utf-8", "surrogateescape")) for d in docs]
        levels = [self._levels(h, d) for h, d in zip(entropies(self.model, seqs), docs)]
        return torch.cat(levels) if levels else torch.zeros(0, dtype=torch.long)

    def level_stream(self) -> "EntropyLevelStream":
        return EntropyLevelStream(self)


class EntropyLevelStream(LevelStream):
    """Generation: one block window per new byte, the same window the batched pass reads."""

    def __init__(self, split: EntropySplit):
        super().__init__(split)
        self.sequence = [BOS_ID]

    def push(self, byte: int) -> int:
        self.document.append(byte)
        self.sequence.append(byte)
        last = self.document[-4:].decode("utf-8", "surrogateescape")  # UTF-8 resynchronises within 4 bytes
        if not last or 0xDC80 <= ord(last[-1]) <= 0xDCFF:
            return 0  # inside an incomplete character, or an invalid byte: never a boundary
        block, p = self.split.model.config.block, len(self.sequence) - 1
        start = max(0, (p // block - 1) * block)  # the window the batched pass reads for position p
        row = self.sequence[start:p + 1] + [0] * (2 * block - (p + 1 - start))
        entropy = _row_entropies(self.split.model, [row])[0, p - start]
        return int((entropy >= self.split.thresholds).sum())

    def feed(self, data: bytes) -> None:
        self.document.extend(data)
        self.sequence.extend(data)


def save_model(path: Path, model: ByteEntropyModel, thresholds: list[float], **info) -> str:
    """Write the model, its config and thresholds (and ``info``: targets, languages, data) to
    ``path`` atomically; returns its sha256."""
    import os
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float64).cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "config": asdict(model.config), "state_dict": state,
               "thresholds": [float(t) for t in thresholds], **info}
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as fh:
        torch.save(payload, fh)
    os.replace(fh.name, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()
