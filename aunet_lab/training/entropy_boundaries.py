"""The boundary model of the ``entropy`` split function: a flat byte transformer trained on a
corpus's training split (next-byte loss, windows of two blocks), then one entropy budget per stage,
chosen on that same text so that each stage has its target bytes per unit."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from aunet_lab.data.byte_ids import BOS_ID
from aunet_lab.data.splitting.entropy import (ByteEntropyModel, ByteModelConfig, EntropySplit, budget_levels,
                                              entropies, save_model)
from aunet_lab.data.splitting.unicode_classes import _char_byte_ends, _codepoints


MEASURED_BYTES = 64_000  # per language, for choosing the budgets (a pass over it per bisection step)


@dataclass
class EntropyTrainConfig:
    """What ``aunet-lab split train-entropy`` trains: the model, its optimisation, and the bytes per
    unit each stage should have on the training text (stage 2, 3, ...; increasing)."""

    model: ByteModelConfig = field(default_factory=ByteModelConfig)
    steps: int = 300
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0
    targets: tuple[float, ...] = (5.0, 10.0, 20.0)

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch size: expected at least 1, got {self.steps} and {self.batch_size}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr: expected a positive number, got {self.lr}")
        targets = list(self.targets)
        if not targets or any(not (t > 1) for t in targets) or targets != sorted(set(targets)):
            raise ValueError(f"targets: expected increasing bytes per unit above 1 (e.g. 5,10,20), got {targets}")


@dataclass
class EntropyTrainResult:
    path: Path
    sha256: str
    budgets: list[float]
    final_loss: float
    train_bytes: int
    seconds: float
    bytes_per_unit: dict[str, list[float]]  # language -> one figure per stage, on its training text


def _stream(texts: list[str]) -> torch.Tensor:
    ids = []
    for text in texts:
        ids.append(BOS_ID)
        ids.extend(text.encode("utf-8", "surrogateescape"))
    return torch.tensor(ids, dtype=torch.long)


def train_entropy_model(texts_by_language: dict[str, list[str]], config: EntropyTrainConfig, out: Path,
                        info: dict | None = None, progress=None) -> EntropyTrainResult:
    """Train on every language's texts (documents, BOS before each), choose the budgets on the
    same texts, and save the model to ``out``. ``progress(step, loss)`` is called every 25 steps."""
    start = time.monotonic()
    torch.manual_seed(config.seed)
    texts = [t for lang in sorted(texts_by_language) for t in texts_by_language[lang]]
    stream = _stream(texts)
    window = 2 * config.model.block
    if len(stream) <= window + 1:
        raise ValueError(f"{len(stream)} bytes of training text: fewer than one window of {window + 1}")
    model = ByteEntropyModel(config.model)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / 20) * 0.5 * (1 + math.cos(math.pi * s / config.steps)))
    generator = torch.Generator().manual_seed(config.seed)
    loss = torch.tensor(math.nan)
    for step in range(config.steps):
        offsets = torch.randint(0, len(stream) - window - 1, (config.batch_size,), generator=generator)
        batch = torch.stack([stream[o:o + window + 1] for o in offsets.tolist()])
        logits = model(batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        if progress is not None and (step + 1) % 25 == 0:
            progress(step + 1, float(loss.detach()))
    model = model.double().eval()
    documents = []
    for text in _measured(texts_by_language):
        seq = [BOS_ID] + list(text.encode("utf-8", "surrogateescape"))
        ends, escaped = _char_byte_ends(_codepoints(text))
        char_end = [False] * (len(seq) - 1)
        for e in ends[~escaped].tolist():
            char_end[e] = True
        documents.append((entropies(model, [seq])[0][:-1].tolist(), char_end))
    budgets = choose_budgets(documents, list(config.targets))
    total = sum(len(text.encode("utf-8", "surrogateescape")) for text in texts)
    sha = save_model(out, model, budgets, targets=list(config.targets), train_bytes=total, steps=config.steps,
                     final_loss_bits=float(loss.detach()) / math.log(2), seed=config.seed, **(info or {}))
    split = EntropySplit.load(out)
    rates = {lang: bytes_per_unit(split, docs) for lang, docs in sorted(texts_by_language.items())}
    return EntropyTrainResult(Path(out), sha, budgets, float(loss.detach()) / math.log(2), total,
                              time.monotonic() - start, rates)


def _measured(texts_by_language: dict[str, list[str]], per_language: int = MEASURED_BYTES) -> list[str]:
    """The text budgets are chosen on: each language's first documents, up to ``per_language`` bytes."""
    out = []
    for lang in sorted(texts_by_language):
        size = 0
        for text in texts_by_language[lang]:
            if size >= per_language:
                break
            out.append(text)
            size += len(text.encode("utf-8", "surrogateescape"))
    return out


def choose_budgets(documents: list[tuple[list[float], list[bool]]], targets: list[float],
                   steps: int = 16) -> list[float]:
    """Budgets (bits, one per stage, increasing) giving about ``targets`` bytes per unit over
    ``documents`` (each: its bytes' entropies and which bytes end a character). A stage's units
    depend only on its own budget and the stages above it, so budgets are found top down, each by
    bisection (in log space) below the one above it; bytes per unit grow with the budget."""
    total = sum(len(bits) for bits, _ in documents)
    mean_bits = sum(sum(bits) for bits, _ in documents) / max(1, total)
    budgets = [t * mean_bits for t in targets]

    def rate(trial: list[float], level: int) -> float:
        units = sum(sum(1 for x in budget_levels(bits, ends, trial) if x >= level) for bits, ends in documents)
        return total / max(1, units)

    for k in reversed(range(len(targets))):
        hi = budgets[k + 1] if k + 1 < len(budgets) else 8 * budgets[k]
        lo = hi / 1000
        for _ in range(steps):
            mid = math.sqrt(lo * hi)
            if rate(budgets[:k] + [mid] + budgets[k + 1:], k + 1) < targets[k]:
                lo = mid
            else:
                hi = mid
        below, above = (rate(budgets[:k] + [b] + budgets[k + 1:], k + 1) for b in (lo, hi))
        budgets[k] = lo if abs(below - targets[k]) <= abs(above - targets[k]) else hi
        if k + 1 < len(budgets) and budgets[k] >= budgets[k + 1]:
            budgets[k] = math.nextafter(budgets[k + 1], 0.0)
    return budgets


def bytes_per_unit(split, texts: list[str]) -> list[float]:
    """Mean bytes per unit of each stage (2, 3, ...) over ``texts``."""
    from aunet_lab.data.splitting import byte_levels_batch

    levels, _ = byte_levels_batch(texts, split)
    total = len(levels)
    return [total / max(1, int((levels >= level).sum())) for level in range(1, split.max_level + 1)]
