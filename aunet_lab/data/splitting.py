"""Split functions: where AU-Net pools bytes into coarser stages.

A split function gives every byte of a document a *level*:

* level 0: an ordinary byte, seen only by stage 1 (the byte stage);
* level >= k (k >= 1): the byte is the *last* byte of a stage-(k+1) unit, so stage k+1 keeps it.

Stage 2 keeps the bytes with level >= 1 (words), stage 3 those with level >= 2 (pairs of words),
stage 4 those with level >= 3 (4-word chunks). One integer per byte makes the stages nested by
construction. BOS, when present, is a boundary at every level (``split.max_level``).

Every built-in split function is **stable to rightward insertion at byte granularity**: the level of
byte i depends only on bytes 0..i, so appending bytes (even half a multi-byte character) never changes
an earlier level. This is what lets generation decide a new byte's level at once. A byte that is not
the last byte of a complete, valid UTF-8 character is never a boundary.

Levels are computed per document. This module imports only torch and regex (it must run on a bare
GPU box); it is the single implementation used for training data, generation and reports.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import importlib
from typing import Callable, Iterable, Sequence

import regex
import torch

__all__ = [
    "SplitFunction",
    "LevelStream",
    "SplitSpecError",
    "WordSplit",
    "ScriptAwareSplit",
    "StrideSplit",
    "RegexSplit",
    "CallableSplit",
    "StabilityReport",
    "level_mask",
    "byte_levels",
    "byte_levels_batch",
    "get_split_function",
    "register_split_function",
    "list_split_functions",
    "describe_split_functions",
    "units_per_byte",
    "units_by_stage",
    "check_stability",
    "stability_corpus",
    "paper_reference_word",
]

MAX_SUPPORTED_LEVEL = 15


class SplitSpecError(ValueError):
    """A split-function spec that cannot be used; the message is one line naming the spec."""


# --------------------------------------------------------------------------------------------
# Bytes <-> characters. Invalid or incomplete UTF-8 is decoded with ``surrogateescape``: every
# bad byte becomes one lone surrogate (U+DC80..U+DCFF), a character valid UTF-8 never produces.
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# The split-function interface and registry
# --------------------------------------------------------------------------------------------


class SplitFunction:
    """Maps a document (decoded with ``surrogateescape``) to one level per character.

    Subclasses implement :meth:`char_levels`. The boundary of a character sits on its last byte;
    escaped bad bytes are never boundaries (enforced in :func:`byte_levels`).
    """

    name: str = "split"
    max_level: int = 1
    stable: bool = True

    def char_levels(self, text: str) -> torch.Tensor:
        raise NotImplementedError

    def char_levels_batch(self, text: str, starts: list[int]) -> torch.Tensor:
        """Levels of many documents joined in ``text``; document d is ``text[starts[d]:starts[d+1]]``
        and is split on its own. Built-ins override this with one vectorised pass."""
        parts = [self.char_levels(text[a:b]) for a, b in zip(starts[:-1], starts[1:])]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)

    def level_stream(self) -> "LevelStream":
        """Levels of a document's bytes as they arrive (generation); see :class:`LevelStream`."""
        return LevelStream(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, max_level={self.max_level})"


class LevelStream:
    """The level of each byte of one document as it is appended: by stability, the last entry of
    ``byte_levels`` over the document so far, which is what this generic version computes (its
    cost grows with the document). ``word`` replaces it with a state machine that does the same in
    constant time per byte (:class:`_WordLevelStream`)."""

    def __init__(self, split: SplitFunction):
        self.split = split
        self.document = bytearray()

    def push(self, byte: int) -> int:
        self.document.append(byte)
        return int(byte_levels(bytes(self.document), self.split)[-1])

    def feed(self, data: bytes) -> None:
        """Take in bytes whose levels are already known (a prompt)."""
        self.document.extend(data)


@dataclasses.dataclass(frozen=True)
class _Registered:
    factory: Callable[[str | None], SplitFunction]
    description: str


_REGISTRY: dict[str, _Registered] = {}


def register_split_function(name: str, description: str):
    """Decorator: register ``factory(args: str | None) -> SplitFunction`` under ``name``.

    The spec ``"name:args"`` passes ``"args"`` to the factory; a bare ``"name"`` passes None.
    """

    def wrap(factory):
        if not regex.fullmatch(r"[a-z][a-z0-9_-]*", name):
            raise ValueError(f"split function name {name!r} must be lower-case letters, digits, - or _")
        _REGISTRY[name] = _Registered(factory, description)
        return factory

    return wrap


def list_split_functions() -> list[str]:
    """Names of every registered split function."""
    return sorted(_REGISTRY)


def describe_split_functions() -> dict[str, str]:
    return {name: _REGISTRY[name].description for name in list_split_functions()}


# --------------------------------------------------------------------------------------------
# `word`: the paper's family, made stable
# --------------------------------------------------------------------------------------------

# Boundaries at the start of 1-3 digit chunks and of 1-3 character punctuation runs (the paper's
# rule), and on the first newline of a whitespace run (the paper puts it on the first whitespace of
# the run, which is only known to be a boundary once the newline arrives: unstable). Combining marks
# and escaped bad bytes are not punctuation here, so they never cut a word.
_WORD_START_RE = regex.compile(
    r"\p{N}{1,3}" + "|" + _PUNCT_CLASS + r"{1,3}[\r\n]*" + "|" + r"[^\S\r\n]*(?P<nl>[\r\n])(?:\s*[\r\n])?"
)


def _start_boundaries(text: str) -> list[int]:
    """Reference implementation of the start rule with the regex (tests compare the fast one to it)."""
    positions = []
    for m in _WORD_START_RE.finditer(text):
        nl = m.start("nl")
        positions.append(nl if nl >= 0 else m.start())
    return positions


def _run_position(member: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """For every position, its index inside the current run of ``member`` positions (runs also end at
    positions flagged ``first``, the start of a document); meaningless outside runs."""
    n = member.numel()
    idx = torch.arange(n, dtype=torch.int32)
    run_start = member.clone()
    run_start[1:] &= first[1:] | ~member[:-1]
    start_pos = torch.cummax(idx * run_start, 0).values
    return idx - start_pos, start_pos.long()


def _start_boundary_mask(cls: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """The start rule, vectorised (same result as ``_start_boundaries`` on each document): the first
    character of every 1-3 digit chunk and of every 1-3 character punctuation run, and the first
    newline of a whitespace run, except newlines that directly follow punctuation (the reference's
    punctuation match swallows them)."""
    n = cls.numel()
    if n == 0:
        return torch.zeros(0, dtype=torch.bool)
    digit, punct = cls == _DIGIT, cls == _PUNCT
    newline = cls == _NEWLINE
    ws = newline | (cls == _SPACE)
    pos_d, _ = _run_position(digit, first)
    pos_p, _ = _run_position(punct, first)
    out = (digit & (pos_d % 3 == 0)) | (punct & (pos_p % 3 == 0))
    # Whitespace runs: the leading newlines right after a punctuation sign are consumed.
    pos_w, run_start = _run_position(ws, first)
    before = torch.zeros(n, dtype=torch.bool)
    before[1:] = punct[:-1] & ~first[1:]
    after_punct = before[run_start]
    not_newline = (ws & ~newline).to(torch.int32)
    nn_cum = torch.cumsum(not_newline, 0, dtype=torch.int32)
    nn_since_start = nn_cum - nn_cum[run_start] + not_newline[run_start]
    consumed = newline & after_punct & (nn_since_start == 0)
    candidate = newline & ~consumed
    cand = candidate.to(torch.int32)
    cand_cum = torch.cumsum(cand, 0, dtype=torch.int32)
    cand_in_run = cand_cum - cand_cum[run_start] + cand[run_start]
    return out | (candidate & (cand_in_run == 1))


def _group_levels(breaks: torch.Tensor, chain_start: torch.Tensor, groups: Sequence[int]) -> torch.Tensor:
    """Level of every word end, given which word ends close a chain of single-space-separated words
    and which open one (a document's first word end always does).

    Same result as the paper's ``(\\S+?\\s){N}`` matched left to right: within a chain, every N-th
    word closes a unit of level ``groups.index(N) + 1``; two whitespace characters end the chain.
    """
    n = breaks.numel()
    if n == 0:
        return torch.zeros(0, dtype=torch.long)
    idx = torch.arange(n)
    starts = chain_start.clone()
    starts[1:] |= breaks[:-1]
    first = torch.cummax(torch.where(starts, idx, torch.zeros_like(idx)), 0).values
    ordinal = idx - first + 1
    levels = torch.zeros(n, dtype=torch.long)
    for level, group in enumerate(groups, start=1):
        levels = torch.where(ordinal % group == 0, torch.full_like(levels, level), levels)
    return levels


def _parse_ints(args: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in args.split(","))
    except ValueError:
        raise ValueError(f"expected comma-separated integers for {what}, got {args!r}") from None
    if not values or any(v < 1 for v in values) or list(values) != sorted(set(values)):
        raise ValueError(f"expected strictly increasing positive integers for {what}, got {args!r}")
    if len(values) > MAX_SUPPORTED_LEVEL:
        raise ValueError(f"at most {MAX_SUPPORTED_LEVEL} levels, got {len(values)}")
    return values


def _doc_flags(n: int, starts: list[int]) -> torch.Tensor:
    first = torch.zeros(n + 1, dtype=torch.bool)
    first[torch.tensor(starts, dtype=torch.long)] = True
    return first[:n]


class WordSplit(SplitFunction):
    """The paper's ``word`` family: a unit ends on the whitespace closing every N-th word
    (N = ``groups``, default 1, 2, 4 for stages 2, 3, 4), and digit chunks, punctuation runs and
    newlines are boundaries at the deepest level."""

    def __init__(self, groups: Sequence[int] = (1, 2, 4), name: str = "word"):
        self.groups = tuple(groups)
        self.max_level = len(self.groups)
        self.name = name

    def _unit_ends(self, cls: torch.Tensor, first: torch.Tensor):
        """Positions of word ends (whitespace after non-whitespace of the same document), whether
        each ends a chain (the next character is whitespace too), whether each opens a chain."""
        space = (cls == _SPACE) | (cls == _NEWLINE)
        n = space.numel()
        end = torch.zeros(n, dtype=torch.bool)
        end[1:] = space[1:] & ~space[:-1] & ~first[1:]
        next_space = torch.zeros(n, dtype=torch.bool)
        next_space[:-1] = space[1:] & ~first[1:]
        pos = torch.nonzero(end).flatten()
        return pos, next_space[pos]

    def char_levels(self, text: str) -> torch.Tensor:
        return self.char_levels_batch(text, [0, len(text)])

    def char_levels_batch(self, text: str, starts: list[int]) -> torch.Tensor:
        cls = _classes(_codepoints(text))
        n = cls.numel()
        levels = torch.zeros(n, dtype=torch.long)
        if n == 0:
            return levels
        first = _doc_flags(n, starts)
        pos, breaks = self._unit_ends(cls, first)
        if pos.numel():
            doc = torch.cumsum(first.long(), 0)[pos]
            opens = torch.ones(pos.numel(), dtype=torch.bool)
            opens[1:] = doc[1:] != doc[:-1]
            levels[pos] = _group_levels(breaks, opens, self.groups)
        levels[_start_boundary_mask(cls, first)] = self.max_level
        return levels

    def level_stream(self) -> "LevelStream":
        return _WordLevelStream(self) if type(self) is WordSplit else LevelStream(self)


@functools.lru_cache(maxsize=1)
def _class_bytes() -> bytes:
    return bytes(_class_table().numpy())


class _WordLevelStream(LevelStream):
    """``word``'s rules one character at a time, with the state they need (tests check it against
    :meth:`WordSplit.char_levels` on multilingual text and arbitrary bytes): word ends and their
    ordinal in the chain of single-space-separated words; the position in digit and punctuation
    runs; the whitespace run's newline rule. Bytes are decoded incrementally with
    ``surrogateescape``, as the batch path decodes the whole document."""

    def __init__(self, split: WordSplit):
        import codecs

        super().__init__(split)
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.classes = _class_bytes()
        self.prev = None  # class of the previous character (None at the document's start)
        self.ordinal = 0  # of the latest word end in its chain (0: none yet)
        self.opens = True  # the next word end opens a chain
        self.after_word_end = False
        self.digit_run = self.punct_run = -1  # position in the current run, -1 outside one
        self.ws_after_punct = False
        self.ws_spaces = 0  # non-newline whitespace so far in the current whitespace run
        self.ws_newline_seen = False  # the run's boundary newline has been placed

    def push(self, byte: int) -> int:
        level = 0
        for char in self.decoder.decode(bytes((byte,))):
            level = self._char(char)
        return level

    def feed(self, data: bytes) -> None:
        for char in self.decoder.decode(bytes(data)):
            self._char(char)

    def _char(self, char: str) -> int:
        code = ord(char)
        if _ESCAPE_LO <= code <= _ESCAPE_HI:  # an escaped bad byte: a letter, never a boundary
            self._advance(0)
            return 0
        return self._advance(self.classes[code])

    def _advance(self, cls: int) -> int:
        split: WordSplit = self.split
        prev = self.prev
        space = cls in (_SPACE, _NEWLINE)
        prev_space = prev in (_SPACE, _NEWLINE)
        level = 0
        word_end = space and prev is not None and not prev_space
        if word_end:
            self.ordinal = 1 if self.opens else self.ordinal + 1
            self.opens = False
            for k, group in enumerate(split.groups, start=1):
                if self.ordinal % group == 0:
                    level = k
        elif self.after_word_end and space:  # a second whitespace ends the chain
            self.opens = True
        self.after_word_end = word_end
        boundary = False
        self.digit_run = (self.digit_run + 1 if prev == _DIGIT else 0) if cls == _DIGIT else -1
        self.punct_run = (self.punct_run + 1 if prev == _PUNCT else 0) if cls == _PUNCT else -1
        if cls == _DIGIT and self.digit_run % 3 == 0 or cls == _PUNCT and self.punct_run % 3 == 0:
            boundary = True
        if space:
            if not prev_space:  # a whitespace run starts
                self.ws_after_punct = prev == _PUNCT
                self.ws_spaces = 0
                self.ws_newline_seen = False
            if cls == _SPACE:
                self.ws_spaces += 1
            elif not (self.ws_after_punct and self.ws_spaces == 0):  # not swallowed by the punctuation
                boundary = boundary or not self.ws_newline_seen
                self.ws_newline_seen = True
        self.prev = cls
        return split.max_level if boundary else level


class ScriptAwareSplit(WordSplit):
    """``word`` plus units of a few letters inside runs of scripts written without spaces.

    In a run of Han/Kana letters every ``cjk`` letters close a word-level unit, in Thai/Lao/Khmer/
    Myanmar every ``sea`` base letters (marks add bytes, so ``sea`` stays small), in Hangul every
    ``hangul`` syllables (spaced Korean rarely reaches it). Combining marks are not counted. The unit
    ends on the counted letter itself: a mark that follows it is only known later, so waiting for it
    would break stability. These chunk ends count as words for the 2- and 4-word stages. On text
    without such scripts this is ``word``.
    """

    def __init__(self, cjk: int = 2, sea: int = 2, hangul: int = 4, groups=(1, 2, 4), name="script"):
        super().__init__(groups, name)
        self.chunk = {_SPACELESS_CJK: cjk, _SPACELESS_SEA: sea, _SPACELESS_HANGUL: hangul}

    def _unit_ends(self, cls: torch.Tensor, first: torch.Tensor):
        word_pos, word_breaks = super()._unit_ends(cls, first)
        spaceless = (cls >= _SPACELESS_CJK) & (cls <= _SPACELESS_HANGUL)
        if not bool(spaceless.any()):
            return word_pos, word_breaks
        # A run of spaceless letters continues through marks; anything else (or a new document)
        # starts a new run. Letters are counted from the run's start.
        in_run = spaceless | (cls == _MARK)
        _, run_start = _run_position(in_run | ~in_run, first | ~in_run)
        letters = torch.cumsum(spaceless.long(), 0)
        before = letters[run_start] - spaceless[run_start].long()
        in_run_count = letters - before
        size = torch.ones_like(letters)
        for value, k in self.chunk.items():
            size[cls == value] = k
        chunk_end = spaceless & (in_run_count % size == 0)
        # A space right after a chunk end would be a one-byte unit: it joins the next unit instead,
        # and the chunk end inherits its chain break (a second space ends the chain).
        after_chunk = torch.zeros_like(chunk_end)
        after_chunk[1:] = chunk_end[:-1] & ~first[1:]
        keep = ~after_chunk[word_pos]
        word_pos, word_breaks = word_pos[keep], word_breaks[keep]
        chunk_pos = torch.nonzero(chunk_end).flatten()
        space = (cls == _SPACE) | (cls == _NEWLINE)
        n = space.numel()
        two_spaces = torch.zeros(n, dtype=torch.bool)
        if n > 2:
            two_spaces[: n - 2] = space[1:-1] & space[2:] & ~first[1:-1] & ~first[2:]
        pos = torch.cat([word_pos, chunk_pos])
        breaks = torch.cat([word_breaks, two_spaces[chunk_pos]])
        order = torch.argsort(pos)
        return pos[order], breaks[order]


# --------------------------------------------------------------------------------------------
# Fixed stride: the paper's byte[::k] baselines
# --------------------------------------------------------------------------------------------


class StrideSplit(SplitFunction):
    """A unit ends every k bytes (``strides`` k1 < k2 < ... for stages 2, 3, ...).

    On ASCII this is exactly byte[::k]. A stride that would end inside a multi-byte character ends
    on that character's last byte instead, and the next unit is counted from there.
    """

    def __init__(self, strides: Sequence[int] = (4,), name: str = "stride"):
        self.strides = tuple(strides)
        self.max_level = len(self.strides)
        self.name = name

    def char_levels(self, text: str) -> torch.Tensor:
        cps = _codepoints(text)
        ends, escaped = _char_byte_ends(cps)
        levels = torch.zeros(len(text), dtype=torch.long)
        nested = all(b % a == 0 for a, b in zip(self.strides, self.strides[1:]))
        if nested and (len(text) == 0 or int(cps.max()) < 0x80):
            # ASCII with each stride dividing the next: exactly byte[::k] at every level.
            pos = torch.arange(len(text))
            for level, k in enumerate(self.strides, start=1):
                levels[(pos + 1) % k == 0] = level
            return levels
        candidates = torch.nonzero(~escaped).flatten().tolist()
        cand_ends = ends[~escaped].tolist()
        last = [-1] * len(self.strides)  # byte index of the last boundary at level >= l+1
        start = 0
        hits, hit_levels = [], []
        while True:
            target = min(last[l] + k for l, k in enumerate(self.strides))
            j = bisect.bisect_left(cand_ends, target, lo=start)
            if j == len(cand_ends):
                break
            byte = cand_ends[j]
            level = max(l + 1 for l, k in enumerate(self.strides) if byte >= last[l] + k)
            hits.append(candidates[j])
            hit_levels.append(level)
            for l in range(level):
                last[l] = byte
            start = j + 1
        if hits:
            levels[torch.tensor(hits)] = torch.tensor(hit_levels)
        return levels


# --------------------------------------------------------------------------------------------
# User-specified split functions: a regex, or a callable
# --------------------------------------------------------------------------------------------


class RegexSplit(SplitFunction):
    """Boundaries on the last character of every match of ``patterns[l-1]``, at level l."""

    def __init__(self, patterns: Sequence[str], name: str | None = None):
        self.patterns = [regex.compile(p) for p in patterns]
        self.max_level = len(self.patterns)
        self.name = name or "regex:" + patterns[0]
        self.stable = False  # unknown until `check_stability` says so

    def char_levels(self, text: str) -> torch.Tensor:
        levels = torch.zeros(len(text), dtype=torch.long)
        for level, pattern in enumerate(self.patterns, start=1):
            ends = [m.end() - 1 for m in pattern.finditer(text) if m.end() > m.start()]
            if ends:
                idx = torch.tensor(ends)
                levels[idx] = torch.maximum(levels[idx], torch.tensor(level))
        return levels


class CallableSplit(SplitFunction):
    """Wraps ``fn(text: str) -> sequence of int`` (one level per character).

    ``fn.max_level`` sets the deepest level (default 3, like ``word``).
    """

    def __init__(self, fn: Callable[[str], Sequence[int]], name: str):
        self.fn = fn
        self.name = name
        self.max_level = int(getattr(fn, "max_level", 3))
        self.stable = bool(getattr(fn, "stable", False))

    def char_levels(self, text: str) -> torch.Tensor:
        out = self.fn(text)
        try:
            levels = torch.as_tensor(out)
        except (TypeError, ValueError, RuntimeError):
            raise SplitSpecError(
                f"split function {self.name!r}: returned {type(out).__name__}, expected a sequence "
                "of integer levels, one per character"
            ) from None
        if levels.dim() != 1 or levels.numel() != len(text):
            raise SplitSpecError(
                f"split function {self.name!r}: returned shape {tuple(levels.shape)} for "
                f"{len(text)} characters, expected ({len(text)},): one level per character"
            )
        if levels.is_floating_point() or levels.dtype == torch.bool:
            raise SplitSpecError(f"split function {self.name!r}: returned {levels.dtype} levels, expected integers")
        levels = levels.long()
        if levels.numel() and (int(levels.min()) < 0 or int(levels.max()) > self.max_level):
            raise SplitSpecError(
                f"split function {self.name!r}: returned levels outside 0..{self.max_level} "
                "(set fn.max_level for deeper splits)"
            )
        return levels


def paper_reference_word(text: str) -> list[int]:
    """The reference code's ``word1/word2/word4`` rule, verbatim, for comparison only.

    It is **not** stable: ``\\s*[\\r\\n]`` puts a boundary on the whitespace before a newline only
    once the newline arrives, and combining marks count as punctuation (Hindi words are cut).
    ``aunet-lab split check aunet_lab.data.splitting:paper_reference_word`` shows it.
    """
    levels = [0] * len(text)
    start_re = r"\p{N}{1,3}|(?:[^\s\p{L}\p{N}]{1,3}[\r\n]*)|\s*[\r\n]"
    for level, group in enumerate((1, 2, 4), start=1):
        for m in regex.finditer(r"(\S+?\s){%d}" % group, text):
            levels[m.end() - 1] = max(levels[m.end() - 1], level)
    for m in regex.finditer(start_re, text):
        levels[m.start()] = 3
    return levels


paper_reference_word.max_level = 3  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# Built-ins
# --------------------------------------------------------------------------------------------


@register_split_function(
    "word",
    "the paper's rule: units of 1, 2, 4 words (word:1,2 for other groupings); digit chunks, "
    "punctuation and newlines at the deepest level; stable",
)
def _word(args):
    return WordSplit(_parse_ints(args, "word groups") if args else (1, 2, 4), name="word" + (f":{args}" if args else ""))


@register_split_function(
    "script",
    "word, plus units of 2 Han/Kana letters, 2 Thai/Lao/Khmer/Myanmar letters, 4 Hangul syllables "
    "inside unspaced runs (script:cjk,sea,hangul to change)",
)
def _script(args):
    if not args:
        return ScriptAwareSplit()
    sizes = _parse_ints_any(args, "script chunk sizes (cjk,sea,hangul)", 3)
    return ScriptAwareSplit(*sizes, name=f"script:{args}")


@register_split_function(
    "stride",
    "fixed stride: a unit every k bytes, the paper's byte[::k] baseline (stride:4 or stride:4,16)",
)
def _stride(args):
    return StrideSplit(_parse_ints(args, "strides") if args else (4,), name="stride" + (f":{args}" if args else ""))


def _parse_ints_any(args: str, what: str, count: int) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in args.split(","))
    except ValueError:
        raise ValueError(f"expected {count} comma-separated integers for {what}, got {args!r}") from None
    if len(values) != count or any(v < 1 for v in values):
        raise ValueError(f"expected {count} positive integers for {what}, got {args!r}")
    return values


# --------------------------------------------------------------------------------------------
# Resolving specs
# --------------------------------------------------------------------------------------------

_PROBE_TEXT = "Hello world, 12345!\n  Wie geht's? 你好世界。\n"


def _import_callable(spec: str):
    module_name, _, attr = spec.partition(":") if ":" in spec else spec.rpartition(".")
    if not module_name or not attr:
        raise SplitSpecError(f"split function {spec!r}: expected module.path:callable")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise SplitSpecError(f"split function {spec!r}: cannot import module {module_name!r} ({err})") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SplitSpecError(f"split function {spec!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


@functools.lru_cache(maxsize=256)
def _resolve_string(spec: str) -> SplitFunction:
    spec = spec.strip()
    if not spec:
        raise SplitSpecError("split function '': empty spec (try one of: " + ", ".join(list_split_functions()) + ")")
    head, sep, args = spec.partition(":")
    if head in ("regex", "re"):
        if not args:
            raise SplitSpecError(f"split function {spec!r}: empty regex")
        try:
            return RegexSplit([args], name=spec)
        except regex.error as err:
            raise SplitSpecError(f"split function {spec!r}: regex does not compile: {err}") from None
    if head in _REGISTRY:
        try:
            return _REGISTRY[head].factory(args if sep else None)
        except ValueError as err:
            raise SplitSpecError(f"split function {spec!r}: {err}") from None
    if regex.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+", spec):
        obj = _import_callable(spec)
        if isinstance(obj, SplitFunction):
            return _validated(obj)
        if isinstance(obj, type) and issubclass(obj, SplitFunction):
            return _validated(obj())
        if callable(obj):
            return _validated(CallableSplit(obj, name=spec))
        raise SplitSpecError(f"split function {spec!r}: {type(obj).__name__} is not callable")
    known = ", ".join(list_split_functions())
    raise SplitSpecError(
        f"split function {spec!r}: unknown name (known: {known}; or regex:PATTERN, or module.path:callable)"
    )


def get_split_function(spec: str | SplitFunction | Callable[[str], Sequence[int]]) -> SplitFunction:
    """Resolve a spec: a registered name (``word``, ``script``, ``stride:4``), ``regex:PATTERN``,
    a dotted path ``module.path:callable``, a callable, or a :class:`SplitFunction`.

    User-supplied functions are probed once on a short text so a wrong return shape fails here,
    with a :class:`SplitSpecError` naming the spec.
    """
    if isinstance(spec, SplitFunction):
        return spec
    if isinstance(spec, str):
        return _resolve_string(spec)
    if callable(spec):
        return _validated(CallableSplit(spec, name=getattr(spec, "__qualname__", repr(spec))))
    raise SplitSpecError(f"split function {spec!r}: expected a name, regex:PATTERN, module.path:callable or a callable")


def _validated(split: SplitFunction) -> SplitFunction:
    if not 1 <= split.max_level <= MAX_SUPPORTED_LEVEL:
        raise SplitSpecError(f"split function {split.name!r}: max_level {split.max_level} outside 1..{MAX_SUPPORTED_LEVEL}")
    if isinstance(split, CallableSplit):
        try:
            split.char_levels(_PROBE_TEXT)
        except SplitSpecError:
            raise
        except Exception as err:  # a user function failing on plain text is a bad spec
            raise SplitSpecError(f"split function {split.name!r}: raised {type(err).__name__}: {err}") from None
    return split


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def byte_levels(data: str | bytes, spec="word") -> torch.Tensor:
    """One level per byte of ``data`` (no BOS). See :func:`level_mask`."""
    levels, _ = byte_levels_batch([data], spec)
    return levels


def byte_levels_batch(docs: Sequence[str | bytes], spec="word") -> tuple[torch.Tensor, list[int]]:
    """Levels of many documents in one pass, each split as its own document: the concatenated
    per-byte levels and the byte offsets (``len(docs) + 1`` entries) of each document in them."""
    split = get_split_function(spec)
    raws = [_to_bytes(d) for d in docs]
    offsets = [0]
    for r in raws:
        offsets.append(offsets[-1] + len(r))
    texts = [r.decode("utf-8", "surrogateescape") for r in raws]
    starts = [0]
    for t in texts:
        starts.append(starts[-1] + len(t))
    text = "".join(texts)
    levels = torch.zeros(offsets[-1], dtype=torch.long)
    if not text:
        return levels, offsets
    char_levels = split.char_levels_batch(text, starts) if len(texts) > 1 else split.char_levels(text)
    ends, escaped = _char_byte_ends(_codepoints(text))
    levels[ends] = torch.where(escaped, torch.zeros_like(char_levels), char_levels)
    return levels, offsets


def level_mask(data: str | bytes, spec="word", *, bos: bool = True) -> torch.Tensor:
    """Level of every byte of one document, as a LongTensor.

    With ``bos=True`` (the default) the result has ``len(bytes) + 1`` entries: position 0 is BOS,
    a boundary at every level (the split function's ``max_level``), and position i + 1 is byte i.
    With ``bos=False`` it has one entry per byte. ``data`` is text (encoded as UTF-8) or raw bytes;
    invalid UTF-8 and NUL are accepted and an incomplete or invalid sequence is never a boundary.
    """
    levels = byte_levels(data, spec)
    if not bos:
        return levels
    top = get_split_function(spec).max_level
    return torch.cat([torch.tensor([top], dtype=torch.long), levels])


def units_per_byte(levels: torch.Tensor, max_level: int | None = None, *, bos: bool = False) -> list[float]:
    """Units per byte for stages 2..max_level+1 (index 0 is stage 2). BOS, if present, is skipped."""
    body = levels[1:] if bos else levels
    top = int(max_level if max_level is not None else (int(body.max()) if body.numel() else 1))
    n = max(body.numel(), 1)
    return [float((body >= k).sum()) / n for k in range(1, top + 1)]


def units_by_stage(data: str | bytes, spec="word") -> list[list[bytes]]:
    """The units of every coarse stage (index 0 is stage 2), each a byte string ending on its boundary.

    Bytes after the last boundary form a final, still open unit.
    """
    raw = _to_bytes(data)
    split = get_split_function(spec)
    levels = byte_levels(raw, split).tolist()
    stages = []
    for k in range(1, split.max_level + 1):
        units, start = [], 0
        for i, level in enumerate(levels):
            if level >= k:
                units.append(raw[start : i + 1])
                start = i + 1
        if start < len(raw):
            units.append(raw[start:])
        stages.append(units)
    return stages


# --------------------------------------------------------------------------------------------
# Stability checker
# --------------------------------------------------------------------------------------------


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
