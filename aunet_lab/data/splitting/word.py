"""The paper's ``word`` split function, made stable, and its script-aware variant ``script``:
the vectorised rule, its byte-at-a-time level stream, and the reference code's rule for comparison."""

from __future__ import annotations

from typing import Sequence

import regex
import torch

from aunet_lab.data.splitting.split_function import LevelStream, SplitFunction
from aunet_lab.data.splitting.unicode_classes import (
    _DIGIT,
    _ESCAPE_HI,
    _ESCAPE_LO,
    _MARK,
    _NEWLINE,
    _PUNCT,
    _PUNCT_CLASS,
    _SPACE,
    _SPACELESS_CJK,
    _SPACELESS_HANGUL,
    _SPACELESS_SEA,
    _class_bytes,
    _classes,
    _codepoints,
)

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
