"""AU-Net diagnostics: where the bits go. The loss of every predicted byte, grouped by its offset
within its word (stage-2 unit), by the boundary it starts (its level: 0 inside a unit, k a stage-k
boundary), and by the script of the character it belongs to."""

from __future__ import annotations

import math

import regex
import torch
import torch.nn.functional as F

SCRIPTS = ("Latin", "Cyrillic", "Greek", "Arabic", "Hebrew", "Devanagari", "Thai", "Han", "Hiragana", "Katakana",
           "Hangul")
_SCRIPT_RE = {name: regex.compile(rf"\p{{Script={name}}}") for name in SCRIPTS}
MAX_OFFSET = 8  # offsets from here on are pooled


def script_of(char: str) -> str:
    for name, pattern in _SCRIPT_RE.items():
        if pattern.match(char):
            return name
    if char.isspace():
        return "space"
    return "digit/punct" if not char.isalpha() else "other"


def byte_table(model, text: str, window: int = 512) -> list[dict]:
    """One row per byte of ``text`` (after the first): its NLL in bits, level, offset within its
    stage-2 unit and script. The text is read in windows of ``window`` bytes, each from a BOS."""
    from aunet_lab.data.splitting import byte_levels

    data = text.encode("utf-8")
    levels = byte_levels(text, model.split).clamp(max=model.n_stages - 1) if model.n_stages > 1 else \
        torch.zeros(len(data), dtype=torch.long)
    full_levels = byte_levels(text, model.split)
    # Script of every byte: the character it belongs to.
    scripts = []
    for ch in text:
        scripts += [script_of(ch)] * len(ch.encode("utf-8"))
    offsets, current = [], 0
    for k in range(len(data)):
        current = 0 if full_levels[k] >= 1 else current + 1
        offsets.append(min(current, MAX_OFFSET))
    rows = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(data), window):
            chunk = data[start : start + window]
            ids = torch.tensor([[256] + list(chunk)])
            lv = torch.cat([torch.full((1,), model.n_stages - 1), levels[start : start + len(chunk)]])[None]
            logits = model(ids[:, :-1], lv[:, :-1]) if model.n_stages > 1 else model(ids[:, :-1])
            nll = F.cross_entropy(logits[0].float(), ids[0, 1:], reduction="none") / math.log(2)
            for j in range(len(chunk)):
                k = start + j
                rows.append({"bits": float(nll[j]), "level": int(full_levels[k]), "offset": offsets[k],
                             "script": scripts[k]})
    return rows


def diagnose(model, texts: dict[str, list[str]], window: int = 512):
    """Mean bits per byte by offset within the word, by boundary level and by script, per language."""
    import pandas as pd

    rows = []
    for lang, docs in texts.items():
        for text in docs:
            for r in byte_table(model, text, window):
                rows.append({"language": lang, **r})
    frame = pd.DataFrame(rows)
    out = {}
    for by in ("offset", "level", "script"):
        g = frame.groupby(["language", by])["bits"].agg(["mean", "count"]).reset_index()
        out[by] = g.rename(columns={"mean": "bits_per_byte", "count": "bytes"})
    return out
