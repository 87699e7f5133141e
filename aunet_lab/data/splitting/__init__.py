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

Levels are computed per document. This package imports only torch and regex (it must run on a bare
GPU box); it is the single implementation used for training data, generation and reports. Its modules,
each importing only those listed before it: ``unicode_classes``, ``split_function`` (the interface),
the built-ins ``word``, ``stride`` and ``user_defined``, ``registry`` (names and specs), ``levels``
and ``stability``.
"""

from aunet_lab.data.splitting.levels import byte_levels, byte_levels_batch, level_mask, units_by_stage, units_per_byte
from aunet_lab.data.splitting.registry import (
    describe_split_functions,
    get_split_function,
    list_split_functions,
    register_split_function,
    registering_module,
)
from aunet_lab.data.splitting.split_function import LevelStream, SplitFunction, SplitSpecError
from aunet_lab.data.splitting.stability import StabilityReport, check_stability, stability_corpus
from aunet_lab.data.splitting.stride import StrideSplit
from aunet_lab.data.splitting.user_defined import CallableSplit, RegexSplit
from aunet_lab.data.splitting.word import ScriptAwareSplit, WordSplit, paper_reference_word

# Not in __all__, but importable from the package as when it was one module (tests use the internals).
from aunet_lab.data.splitting.registry import _REGISTRY  # noqa: F401
from aunet_lab.data.splitting.split_function import MAX_SUPPORTED_LEVEL  # noqa: F401
from aunet_lab.data.splitting.unicode_classes import _classes, _codepoints  # noqa: F401
from aunet_lab.data.splitting.word import _doc_flags, _start_boundaries, _start_boundary_mask  # noqa: F401

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
    "registering_module",
    "list_split_functions",
    "describe_split_functions",
    "units_per_byte",
    "units_by_stage",
    "check_stability",
    "stability_corpus",
    "paper_reference_word",
]
