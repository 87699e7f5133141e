"""The stability check: does appending bytes ever change the level of an earlier byte?"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import torch

from aunet_lab.data.splitting.levels import byte_levels
from aunet_lab.data.splitting.registry import get_split_function
from aunet_lab.data.splitting.unicode_classes import _to_bytes


@dataclasses.dataclass
class StabilityReport:
    spec: str
    stable: bool
    texts: int
    prefixes: int
    text_name: str = ""
    byte_index: int = -1
    level_as_prefix: int = -1
    level_in_full: int = -1
    context: bytes = b""
    appended: int = 0

    def summary(self) -> str:
        if self.stable:
            return (
                f"split function {self.spec!r} is stable: {self.prefixes} prefixes of {self.texts} texts, "
                "every byte kept its level as bytes were appended"
            )
        ctx = self.context.decode("utf-8", "backslashreplace")
        return (
            f"split function {self.spec!r} is NOT stable: byte {self.byte_index} of {self.text_name} "
            f"(text ending {ctx!r}) has level {self.level_as_prefix} when the text ends there but "
            f"{self.level_in_full} once {self.appended} more byte(s) arrive"
        )


def check_stability(spec, texts: Iterable[tuple[str, bytes]] | None = None, *, max_bytes: int = 400) -> StabilityReport:
    """Check, byte by byte, that appending bytes never changes an earlier level.

    For every text (``(name, bytes)`` pairs; default :func:`stability_corpus`) and every prefix of
    its first ``max_bytes`` bytes, the levels of the prefix must equal the leading levels of the text.
    Prefixes are cut at byte granularity, so half-written characters are checked too.
    """
    split = get_split_function(spec)
    name = spec if isinstance(spec, str) else split.name
    corpus = list(stability_corpus() if texts is None else texts)
    prefixes = 0
    for text_name, data in corpus:
        data = _to_bytes(data)[:max_bytes]
        full = byte_levels(data, split)
        for cut in range(1, len(data)):
            prefixes += 1
            part = byte_levels(data[:cut], split)
            diff = torch.nonzero(part != full[:cut]).flatten()
            if diff.numel():
                i = int(diff[0])
                return StabilityReport(
                    name, False, len(corpus), prefixes, text_name, i, int(part[i]), int(full[i]),
                    data[max(0, i - 30) : i + 1], len(data) - cut,
                )
    return StabilityReport(name, True, len(corpus), prefixes)


def stability_corpus(seed: int = 0, generated: int = 60) -> list[tuple[str, bytes]]:
    """Texts that exercise a split function: the embedded samples in many scripts, plus generated
    strings mixing words, digits, punctuation runs, whitespace and newline runs, combining marks,
    NUL, and invalid or truncated UTF-8 (deterministic from ``seed``)."""
    import random

    from aunet_lab.data.samples import sample_texts

    texts = [(f"sample:{lang}", text.encode()) for lang, text in sample_texts().items()]
    texts += [
        ("edge:newlines", b"Line one \nLine two.\t\n\nEnd\r\n  indented 12345 ... 'quoted' \xe2\x80\x94  done \n"),
        ("edge:truncated", "caf\u00e9 \u4e2d\u6587 \U0001F600".encode()[:-2] + b" ok \xc3"),
    ]
    rng = random.Random(seed)
    pieces = [
        "word", "Wörter", "слово", "λέξη", "मनुष्यों", "कि", "ภาษาไทย", "中文字", "かな", "한국어",
        "مرحبًا", "שָׁלוֹם", "123", "4567890", "½", "...", "?!", "—", "(", ")", "\"", "’",
        " ", " ", "  ", "\t", "\n", "\n\n", " \n", "\r\n", "\u00a0", "\u3000", "e\u0301", "\u0301",
        "\u0e34", "\x00",
    ]
    bad = [b"\xff", b"\xc3", b"\xe4\xb8", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\x80\x80"]
    for k in range(generated):
        out = bytearray()
        for _ in range(rng.randint(5, 40)):
            if rng.random() < 0.08:
                out += rng.choice(bad)
            else:
                out += rng.choice(pieces).encode()
        texts.append((f"generated:{k}", bytes(out)))
    return texts
