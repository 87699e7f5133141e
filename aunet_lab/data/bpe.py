"""Byte-level BPE for the baseline (HF `tokenizers`), with exact byte accounting.

The tokenizer is trained on the training split of the run's own language mixture, never on
validation or test text, and cached by (data hash, vocabulary size). Its ByteLevel pre-tokenizer
maps every UTF-8 byte to one symbol, so every token covers a whole number of bytes and the tokens
of a document cover exactly its bytes: bits per byte for the baseline divides by the same bytes
AU-Net predicts. Special tokens (<bos>, <eos>) cover no bytes, and are never matched in document
text: a literal "<eos>" in a document is five bytes of text (``encode_special_tokens``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import torch

from aunet_lab.data.byte_ids import BYTE_VOCAB

BOS_TOKEN, EOS_TOKEN = "<bos>", "<eos>"
DEFAULT_VOCAB = 4096


@dataclass
class BPETokenizer:
    """A trained tokenizer plus, for every id, the number of UTF-8 bytes it covers."""

    tokenizer: object  # tokenizers.Tokenizer
    token_bytes: torch.Tensor  # [vocab] bytes per id (0 for special tokens)
    path: Path | None = None

    @property
    def vocab_size(self) -> int:
        return self.token_bytes.numel()

    @property
    def bos_id(self) -> int:
        return self.tokenizer.token_to_id(BOS_TOKEN)

    @property
    def eos_id(self) -> int:
        return self.tokenizer.token_to_id(EOS_TOKEN)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """The exact bytes the ids cover (special tokens dropped)."""
        table = _byte_decoder()
        out = bytearray()
        for i in ids:
            token = self.tokenizer.id_to_token(int(i))
            if token in (BOS_TOKEN, EOS_TOKEN) or token is None:
                continue
            out += bytes(table[ch] for ch in token)
        return bytes(out)


def _byte_decoder() -> dict[str, int]:
    from tokenizers import pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    # GPT-2's byte-to-unicode map: printable Latin-1 bytes map to themselves, the rest to U+0100+.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[chr(b)] = b
        else:
            mapping[chr(0x100 + extra)] = b
            extra += 1
    assert set(mapping) == set(alphabet), "unexpected ByteLevel alphabet"
    return mapping


def wrap_tokenizer(tok, path: Path | None = None) -> BPETokenizer:
    """A loaded or trained ``tokenizers.Tokenizer`` as a BPETokenizer; document text that spells a
    special token is encoded as text (every way a tokenizer is loaded goes through here)."""
    tok.encode_special_tokens = True
    return BPETokenizer(tok, token_byte_lengths(tok), path)


def load_tokenizer(path: str | Path) -> BPETokenizer:
    from tokenizers import Tokenizer

    return wrap_tokenizer(Tokenizer.from_file(str(path)), Path(path))


def token_byte_lengths(tokenizer) -> torch.Tensor:
    """Bytes covered by every id: one per ByteLevel symbol, none for special tokens."""
    vocab = tokenizer.get_vocab()
    out = torch.zeros(len(vocab), dtype=torch.long)
    for token, i in vocab.items():
        out[i] = 0 if token in (BOS_TOKEN, EOS_TOKEN) else len(token)
    return out


def texts_hash(texts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(hashlib.sha256(t.encode()).digest())
    return h.hexdigest()[:16]


def train_bpe(texts: Sequence[str], vocab_size: int = DEFAULT_VOCAB, cache_dir: Path | None = None,
              data_hash: str | None = None) -> BPETokenizer:
    """Train (or load from ``cache_dir``) a byte-level BPE on ``texts`` (training text only)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < BYTE_VOCAB:
        raise ValueError(f"vocab_size must be at least 258 (256 bytes and 2 special tokens), got {vocab_size}")
    path = None
    if cache_dir is not None:
        data_hash = data_hash or texts_hash(texts)
        path = Path(cache_dir) / f"bpe-{data_hash}-v{vocab_size}.json"
        if path.is_file():
            return load_tokenizer(path)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS_TOKEN, EOS_TOKEN],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        tok.save(tmp)
        os.replace(tmp, path)
    return wrap_tokenizer(tok, path)


def measure_units(texts_by_language: dict[str, Sequence[str]], split: str = "word", stages: int = 4,
                  tokenizer: BPETokenizer | None = None) -> dict[str, dict]:
    """Per language: bytes per BPE token (fertility) and AU-Net bytes per unit of every stage, plus
    ``"all"`` pooled over languages. These are the measured ratios sizing's compute matching takes
    (``bytes_per_unit`` / ``bytes_per_token``)."""
    from aunet_lab.data.splitting import byte_levels_batch, get_split_function

    split_fn = get_split_function(split)
    top = min(stages - 1, split_fn.max_level)
    out, pooled_bytes, pooled_units, pooled_tokens = {}, 0, [0] * top, 0
    for lang, texts in texts_by_language.items():
        tokens = 0
        levels, _ = byte_levels_batch(list(texts), split_fn)  # each text its own document, in one pass
        n_bytes = levels.numel()
        units = [int((levels >= k + 1).sum()) for k in range(top)]
        if tokenizer is not None:
            tokens = sum(len(ids) for ids in tokenizer.encode_batch(list(texts)))
        row = {"bytes": n_bytes,
               "bytes_per_unit": [1.0] + [n_bytes / max(u, 1) for u in units]}
        if tokenizer is not None:
            row["bytes_per_token"] = n_bytes / max(tokens, 1)
        out[lang] = row
        pooled_bytes += n_bytes
        pooled_tokens += tokens
        pooled_units = [a + b for a, b in zip(pooled_units, units)]
    out["all"] = {"bytes": pooled_bytes, "bytes_per_unit": [1.0] + [pooled_bytes / max(u, 1) for u in pooled_units]}
    if tokenizer is not None:
        out["all"]["bytes_per_token"] = pooled_bytes / max(pooled_tokens, 1)
    return out
