"""The data section of a training config, its checks, and byte sizes ("250KB", "1.5GiB"): no torch
or Lightning, so that reading a config (and refusing a bad one) is quick."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

EVAL_SPLITS = ("val", "test")
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


class DataConfigError(ValueError):
    """A data config that cannot be used; one line naming the key."""


def parse_bytes(value: int | float | str, key: str = "budget") -> int:
    """``4MB`` = 4,000,000 bytes (SI); ``4MiB`` = 4 x 2^20; plain numbers are bytes."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value <= 0:
            raise DataConfigError(f"{key}: expected a positive size, got {value!r}")
        return int(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([KMG]i?B|B)?\s*", str(value), re.IGNORECASE)
    if not match:
        raise DataConfigError(f"{key}: expected a size such as 250KB, 4MB or 1.5GiB, got {value!r}")
    size = float(match.group(1)) * _UNITS[(match.group(2) or "").upper()]
    if size <= 0:
        raise DataConfigError(f"{key}: expected a positive size, got {value!r}")
    return int(size)


@dataclass
class DataConfig:
    manifest: str = "data_manifests/libreoffice-help.yaml"
    mixture: dict[str, float] = field(default_factory=lambda: {"en": 1.0})
    budget: int | str = "4MB"  # training bytes
    arch: str = "aunet"  # aunet | bpe
    window_bytes: int = 1024  # AU-Net context; the baseline's is matched in bytes
    window_tokens: int | None = None  # default: window_bytes / measured bytes per token
    # Evaluation cap in UTF-8 bytes per language: one size for val and test, or {val: .., test: ..};
    # null (or a split left out) = the whole split. Whole documents, the same for every arm.
    eval_bytes: int | str | dict[str, int | str | None] | None = None
    batch_size: int = 8
    split: str = "word"
    vocab_size: int = 4096
    seed: int = 0
    max_epochs: float = 10.0
    eval_split: str = "val"
    eval_languages: list[str] | None = None  # default: the mixture's languages
    num_workers: int = 0
    cache: str | None = None

    def validate(self) -> None:
        if not isinstance(self.mixture, dict) or not self.mixture:
            raise DataConfigError("data.mixture: expected a non-empty mapping language -> weight")
        for tag, weight in self.mixture.items():
            if not isinstance(weight, (int, float)) or weight <= 0:
                raise DataConfigError(f"data.mixture.{tag}: expected a positive weight, got {weight!r}")
        total = sum(self.mixture.values())
        if abs(total - 1.0) > 1e-6:
            raise DataConfigError(f"data.mixture: weights sum to {total:g}, expected 1")
        parse_bytes(self.budget, "data.budget")
        if self.arch not in ("aunet", "bpe"):
            raise DataConfigError(f"data.arch: expected aunet or bpe, got {self.arch!r}")
        for key, most in (("window_bytes", 1 << 24), ("batch_size", 1 << 20), ("vocab_size", 1 << 22)):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= most:
                raise DataConfigError(f"data.{key}: expected an integer in [1, {most:,}], got {value!r}")
        if self.window_bytes < 8:
            raise DataConfigError(f"data.window_bytes: expected at least 8 bytes of context, got {self.window_bytes}")
        if self.window_tokens is not None and not 2 <= self.window_tokens <= 1 << 24:
            raise DataConfigError(f"data.window_tokens: expected an integer in [2, 16,777,216] or null, got {self.window_tokens}")
        if self.max_epochs <= 0:
            raise DataConfigError(f"data.max_epochs: expected a positive number, got {self.max_epochs!r}")
        if self.eval_split == "test":
            raise DataConfigError("data.eval_split: test would select on test text; validation (model selection, "
                                  "pruning, objectives) runs on val, and test is scored at the end")
        if self.eval_split != "val":
            raise DataConfigError(f"data.eval_split: expected val, got {self.eval_split!r}")
        self.eval_caps()

    def eval_caps(self) -> dict[str, int | None]:
        """``{val: bytes or None, test: bytes or None}`` from ``eval_bytes``."""
        value = self.eval_bytes
        if not isinstance(value, dict):
            cap = None if value is None else parse_bytes(value, "data.eval_bytes")
            return {split: cap for split in EVAL_SPLITS}
        for key in value:
            if key not in EVAL_SPLITS:
                raise DataConfigError(f"data.eval_bytes.{key}: unknown split (expected val or test)")
        return {split: None if value.get(split) is None else parse_bytes(value[split], f"data.eval_bytes.{split}")
                for split in EVAL_SPLITS}


