"""Evaluation by bytes over whole documents: the same documents and the same bytes for every arm.

Which documents: a language's held-out documents in a seeded order, taken whole until the byte cap
(``data.eval_bytes``; none = the whole split), the last one whole. The order depends only on the
prepared text (the split file's sha256, which the corpus lock records), the split and the cap, so
every architecture and every seed scores the same documents. In an aligned corpus (the manifest
says ``aligned: <reference language>``, as the UDHR does) the cut is made on the reference
language and the same alignment ids are scored in every language.

How they are scored: each document is ``BOS + units + EOS`` in the arm's own units (bytes with
their levels for AU-Net, the tokens of the whole document for BPE: never re-tokenized slices).
A document that fits a window is scored in one piece, in a row of its own (no history from another
document, whose length in units differs by arm); a longer one in overlapping windows with a stride of half a window, where a window scores
only the targets no earlier window scored, so every target has at least half a window of history
in the arm's units (except at the document start) and every byte is scored exactly once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

IGNORE = -100
EVAL_SPLITS = ("val", "test")


def eval_order_key(text_sha256: str, split: str, cap: int | None) -> str:
    """The seed of a split's evaluation order: the prepared text's hash, the split and the cap."""
    return hashlib.sha256(f"{text_sha256}\x00{split}\x00{cap}".encode()).hexdigest()


def seeded_order(ids: list[str], key: str) -> list[str]:
    return sorted(ids, key=lambda ident: hashlib.sha256(f"{key}\x00{ident}".encode()).digest())


def take_until(docs: list[dict], order: list[str], cap: int | None) -> list[str]:
    """Alignment ids in ``order`` until ``cap`` UTF-8 bytes of ``docs`` are reached (the last whole)."""
    by_id = {d["id"]: d for d in docs}
    taken, got = [], 0
    for ident in order:
        if cap is not None and got >= cap:
            break
        if ident in by_id:
            taken.append(ident)
            got += len(by_id[ident]["text"].encode())
    return taken


@dataclass
class DocumentUnits:
    """One document in an arm's units: ids (BOS first, EOS last), the UTF-8 bytes each id covers
    (0 for BOS/EOS) and, for AU-Net, each position's level."""

    ids: torch.Tensor
    nbytes: torch.Tensor
    levels: torch.Tensor | None


def split_documents(stream) -> list[DocumentUnits]:
    """Cut a packed stream (``BOS + units + EOS`` per document) back into its documents."""
    starts = torch.nonzero((stream.ids == stream.bos_id) & stream.special).flatten().tolist()
    ends = starts[1:] + [stream.ids.numel()]
    counted = stream.target_bytes * ~stream.special
    return [DocumentUnits(stream.ids[a:b], counted[a:b],
                          stream.levels[a:b] if stream.levels is not None else None) for a, b in zip(starts, ends)]


def document_windows(n_inputs: int, window: int) -> list[tuple[int, int]]:
    """(start, first scored input index within the window) of every window over a document of
    ``n_inputs`` input positions: one window if it fits, else a stride of half a window, the last
    aligned to the document's end; each window scores its inputs from the second value on."""
    if n_inputs <= window:
        return [(0, 0)]
    stride = max(1, window // 2)
    out, scored_to = [], 0  # inputs [0, scored_to) have had their targets scored
    start = 0
    while scored_to < n_inputs:
        start = min(start, n_inputs - window)
        out.append((start, scored_to - start))
        scored_to = start + window
        start += stride
    return out


class EvalWindows(Dataset):
    """Rows of ``window`` inputs over whole documents, with per target the bytes it covers (0 when
    another window scores it, or for BOS/EOS and padding) and its history in bytes."""

    def __init__(self, docs: list[DocumentUnits], window: int, language: str | None = None,
                 doc_ids: list[str] | None = None):
        self.window, self.language, self.doc_ids = window, language, list(doc_ids or [])
        rows: list[list[tuple[DocumentUnits, int, int, int]]] = []  # (doc, start, length, first scored)
        for doc in docs:
            n = doc.ids.numel() - 1
            for start, first in document_windows(n, window) if n > 0 else []:
                rows.append([(doc, start, min(n, window), first)])
        self.n = max(1, len(rows))
        shape = (self.n, window)
        self.inputs = torch.zeros(shape, dtype=torch.int32)
        self.targets = torch.full(shape, IGNORE, dtype=torch.int32)
        self.target_bytes = torch.zeros(shape, dtype=torch.int32)
        self.history = torch.zeros(shape, dtype=torch.int64)
        has_levels = any(d.levels is not None for d in docs)
        self.levels = torch.zeros(shape, dtype=torch.int8) if has_levels else None
        for r, pieces in enumerate(rows):
            at = 0
            for doc, start, length, first in pieces:
                span = slice(at, at + length)
                inputs = doc.ids[start:start + length]
                self.inputs[r, span] = inputs
                targets = doc.ids[start + 1:start + length + 1].clone()
                tbytes = doc.nbytes[start + 1:start + length + 1].clone()
                targets[:first] = IGNORE
                tbytes[:first] = 0
                self.targets[r, span] = targets
                self.target_bytes[r, span] = tbytes
                # Bytes the model has seen of this document within the window, up to each input.
                self.history[r, span] = torch.cumsum(doc.nbytes[start:start + length].long(), 0)
                if self.levels is not None:
                    self.levels[r, span] = doc.levels[start:start + length]
                at += length

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        if i == self.n:  # a blank row that tops up a process's share (StridedSampler): scores nothing
            item = {"input_ids": torch.zeros(self.window, dtype=torch.long),
                    "targets": torch.full((self.window,), IGNORE, dtype=torch.long),
                    "target_bytes": torch.zeros(self.window, dtype=torch.long),
                    "history": torch.zeros(self.window, dtype=torch.long)}
            if self.language is not None:
                item["lang"] = self.language
            if self.levels is not None:
                item["levels"] = torch.zeros(self.window, dtype=torch.long)
            return item
        item = {"input_ids": self.inputs[i].long(), "targets": self.targets[i].long(),
                "target_bytes": self.target_bytes[i].long(), "history": self.history[i]}
        if self.language is not None:
            item["lang"] = self.language
        if self.levels is not None:
            item["levels"] = self.levels[i].long()
        return item

    @property
    def scored_bytes(self) -> int:
        return int(self.target_bytes.sum())
