"""``entropy:PATH``: boundaries from a small causal byte model's uncertainty (after the entropy
patching of BLT): a unit closes once the model's entropy over its bytes adds up to a budget of
bits, one budget per level, so each unit carries about the same expected information.

A global threshold on the next-byte entropy, as in BLT, cannot keep units comparable across
scripts: after a Cyrillic or Devanagari character the next byte is almost surely the script's lead
byte, so the entropy there is low at every character end and such text is almost never cut, while
after a Han character it is high at every one (measured: docs/data.md). A budget instead follows how
predictable the text is, byte by byte, whatever its script: bytes per unit are the budget over the
model's bits per byte.

The entropy of byte j (given BOS and bytes 0..j-1) is read in a window that depends only on j:
positions are cut into blocks of ``block`` bytes and a position in block b sees blocks b-1 and b up
to itself. The level of byte i is the highest level whose budget the entropy accumulated since that
level's last boundary reaches at i, and a boundary of level L restarts the count of every level up
to L (so levels nest by construction). A level never depends on later bytes (stable to rightward
insertion), a document's levels are the same alone or batched with others, and generation computes
one window per new byte. Only a character's last byte can be a boundary, so no unit ends inside a
multi-byte character or on an invalid byte; their bytes still count towards the budget.

The model (a flat byte transformer from the project's blocks: the aunet1 stage with a head) runs in
float64, so budgets are compared on sums that do not depend on how rows are batched.
``aunet-lab split train-entropy`` trains it on a corpus's training split and chooses the budgets.
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
    its block window (module docstring): entry p is the entropy of the byte after position p."""
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
    """Next-byte entropy (bits) at every position of windows of 2 blocks (zeros after the known
    bytes: the model is causal, so they change nothing before them)."""
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor(rows, dtype=torch.long)).double(), dim=-1)
    return -(logp.exp() * logp).sum(-1) / math.log(2)


class BudgetCounter:
    """The entropy accumulated since each level's last boundary, kept as one running total and the
    total at each level's last boundary (sequential float64 sums, the same in every path); ``add``
    one byte's entropy and whether it ends a valid character, get that byte's level."""

    def __init__(self, budgets: list[float]):
        self.budgets = budgets
        self.total = 0.0
        self.reset = [0.0] * len(budgets)

    def add(self, bits: float, char_end: bool) -> int:
        self.total += bits
        return self.close(self.total) if char_end else 0

    def close(self, total: float) -> int:
        """The level of a character end at running total ``total``: the highest level whose budget
        is spent; its boundary restarts every level up to it."""
        for k in range(len(self.budgets) - 1, -1, -1):
            if total - self.reset[k] >= self.budgets[k]:
                for j in range(k + 1):
                    self.reset[j] = total
                return k + 1
        return 0


def budget_levels(bits: list[float], char_end: list[bool], budgets: list[float]) -> list[int]:
    """The level of every byte of one document from its bytes' entropies and which bytes end a
    valid character (module docstring); what :class:`BudgetCounter` gives byte by byte."""
    import itertools

    counter = BudgetCounter(budgets)
    totals = list(itertools.accumulate(bits))
    levels = [0] * len(bits)
    for i in itertools.compress(range(len(bits)), char_end):
        levels[i] = counter.close(totals[i])
    return levels


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
    """Levels from a trained :class:`ByteEntropyModel` and one entropy budget (bits) per level,
    increasing (module docstring)."""

    stable = True

    def __init__(self, model: ByteEntropyModel, budgets: list[float], name: str = "entropy", sha256: str = ""):
        budgets = [float(b) for b in budgets]
        if not budgets or any(not b > 0 for b in budgets) or budgets != sorted(set(budgets)):
            raise ValueError(f"budgets: expected one or more positive, increasing bits, got {budgets}")
        self.model = model
        self.budgets = budgets
        self.max_level = len(budgets)
        self.name = name
        self.sha256 = sha256

    @classmethod
    def load(cls, path: str | Path, budgets: list[float] | None = None) -> "EntropySplit":
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"no such file {path} (train one with `aunet-lab split train-entropy`)")
        stat = path.stat()
        model, saved, sha = _load(str(path.resolve()), (stat.st_mtime_ns, stat.st_size))
        return cls(model, budgets or saved["budgets"], name=f"entropy:{path}", sha256=sha)

    def flops_per_byte(self) -> float:
        return self.model.flops_per_byte()

    def _char_levels(self, entropy: torch.Tensor, text: str) -> torch.Tensor:
        ends, escaped = _char_byte_ends(_codepoints(text))
        char_end = torch.zeros(len(entropy) - 1, dtype=torch.bool)
        char_end[ends[~escaped]] = True
        # entropy[p]: of the byte after position p; position 0 is BOS, so byte i's is entropy[i]
        levels = torch.tensor(budget_levels(entropy[:-1].tolist(), char_end.tolist(), self.budgets), dtype=torch.long)
        return levels[ends] if len(ends) else torch.zeros(0, dtype=torch.long)

    def char_levels(self, text: str) -> torch.Tensor:
        return self.char_levels_batch(text, [0, len(text)])

    def char_levels_batch(self, text: str, starts: list[int]) -> torch.Tensor:
        docs = [text[a:b] for a, b in zip(starts[:-1], starts[1:])]
        seqs = [[BOS_ID] + list(d.encode("utf-8", "surrogateescape")) for d in docs]
        levels = [self._char_levels(h, d) for h, d in zip(entropies(self.model, seqs), docs)]
        return torch.cat(levels) if levels else torch.zeros(0, dtype=torch.long)

    def level_stream(self) -> "EntropyLevelStream":
        return EntropyLevelStream(self)


class EntropyLevelStream(LevelStream):
    """Generation: one block window per new byte (the window the batched pass reads) and the
    running budget counts."""

    def __init__(self, split: EntropySplit):
        super().__init__(split)
        self.sequence = [BOS_ID]
        self.counter = BudgetCounter(split.budgets)

    def _entropy_of_next(self) -> float:
        block, p = self.split.model.config.block, len(self.sequence) - 1
        start = max(0, (p // block - 1) * block)
        row = self.sequence[start:p + 1] + [0] * (2 * block - (p + 1 - start))
        return float(_row_entropies(self.split.model, [row])[0, p - start])

    def _char_end(self) -> bool:
        last = self.document[-4:].decode("utf-8", "surrogateescape")  # UTF-8 resynchronises within 4 bytes
        return bool(last) and not 0xDC80 <= ord(last[-1]) <= 0xDCFF

    def push(self, byte: int) -> int:
        bits = self._entropy_of_next()  # of this byte, from what came before it
        self.document.append(byte)
        self.sequence.append(byte)
        return self.counter.add(bits, self._char_end())

    def feed(self, data: bytes) -> None:
        """Take in a prompt: its entropies in one batched pass (the same windows), then the counts."""
        data = bytes(data)
        bits = entropies(self.split.model, [self.sequence + list(data)])[0]
        for byte in data:
            p = len(self.sequence) - 1
            self.document.append(byte)
            self.sequence.append(byte)
            self.counter.add(float(bits[p]), self._char_end())


def save_model(path: Path, model: ByteEntropyModel, budgets: list[float], **info) -> str:
    """Write the model, its config and budgets (and ``info``: targets, languages, data) to
    ``path`` atomically; returns its sha256."""
    import os
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float64).cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "config": asdict(model.config), "state_dict": state,
               "budgets": [float(b) for b in budgets], **info}
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as fh:
        torch.save(payload, fh)
    os.replace(fh.name, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()
