"""Bytes <-> characters, and the Unicode character classes the built-in split functions look at.

Invalid or incomplete UTF-8 is decoded with ``surrogateescape``: every bad byte becomes one lone
surrogate (U+DC80..U+DCFF), a character valid UTF-8 never produces.
"""

from __future__ import annotations

import functools

import regex
import torch

_ESCAPE_LO, _ESCAPE_HI = 0xDC80, 0xDCFF
_PUNCT_CLASS = r"[^\s\p{L}\p{N}\p{M}\p{Cs}]"


def _to_bytes(data: str | bytes | bytearray | memoryview) -> bytes:
    if isinstance(data, str):
        try:
            return data.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as err:
            raise ValueError(
                f"text holds a lone surrogate at character {err.start}; pass bytes instead"
            ) from None
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"expected str or bytes, got {type(data).__name__}")


def _codepoints(text: str) -> torch.Tensor:
    raw = bytearray(text.encode("utf-32-le", "surrogatepass"))
    if not raw:
        return torch.zeros(0, dtype=torch.int32)
    return torch.frombuffer(raw, dtype=torch.int32)


def _char_byte_ends(cps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the last byte of every character, and which characters are escaped bad bytes."""
    escaped = (cps >= _ESCAPE_LO) & (cps <= _ESCAPE_HI)
    lengths = (cps >= 0x80).to(torch.int32) + (cps >= 0x800) + (cps >= 0x10000) + 1
    lengths[escaped] = 1
    return torch.cumsum(lengths, 0, dtype=torch.int64) - 1, escaped


# --------------------------------------------------------------------------------------------
# Character classes, looked up from tables built once by running `regex` over every code point.
# --------------------------------------------------------------------------------------------

_SPACE = 1  # \s other than \r and \n
_SPACELESS_CJK = 2  # Han, Hiragana, Katakana, Bopomofo letters: words are not separated by spaces
_SPACELESS_SEA = 3  # Thai, Lao, Khmer, Myanmar letters
_SPACELESS_HANGUL = 4  # Hangul: spaced normally, but long unspaced runs happen
_MARK = 5  # \p{M}: combining marks belong to the letter before them
_NEWLINE = 6  # \r, \n
_DIGIT = 7  # \p{N}
_PUNCT = 8  # [^\s\p{L}\p{N}\p{M}\p{Cs}]: everything else but letters (0) and escaped bad bytes (0)


@functools.lru_cache(maxsize=1)
def _class_table() -> torch.Tensor:
    every_char = "".join(map(chr, range(0x110000)))
    table = torch.zeros(0x110000, dtype=torch.uint8)
    patterns = [
        (_SPACE, r"\s+"),
        (_NEWLINE, r"[\r\n]+"),
        (_SPACELESS_CJK, r"[\p{scx=Han}\p{scx=Hiragana}\p{scx=Katakana}\p{scx=Bopomofo}]+"),
        (_SPACELESS_SEA, r"[\p{scx=Thai}\p{scx=Lao}\p{scx=Khmer}\p{scx=Myanmar}]+"),
        (_SPACELESS_HANGUL, r"\p{scx=Hangul}+"),
        # Later classes win: a mark, digit or punctuation sign of a spaceless script is not a letter.
        (_MARK, r"\p{M}+"),
        (_DIGIT, r"\p{N}+"),
        (_PUNCT, _PUNCT_CLASS + "+"),
    ]
    for value, pattern in patterns:
        for m in regex.finditer(pattern, every_char):
            table[m.start() : m.end()] = value
    return table


def _classes(cps: torch.Tensor) -> torch.Tensor:
    return _class_table()[cps] if cps.numel() else torch.zeros(0, dtype=torch.uint8)


@functools.lru_cache(maxsize=1)
def _class_bytes() -> bytes:
    return bytes(_class_table().numpy())
