"""Reading YAML (configs, study specs, manifests, locks, ``--set`` values) with one-line errors that
name the file, and with bounds: a file larger than ``MAX_FILE_BYTES`` and a document whose aliases
expand to more than ``MAX_NODES`` nodes (a "billion laughs" bomb) are refused before anything walks
the parsed value, so a 1 KB file can neither hang a command nor fill a terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 4 << 20  # the largest shipped manifest is a few KB
MAX_NODES = 100_000  # nodes after alias expansion; a full study spec has a few hundred


class YAMLBoundsError(ValueError):
    """A YAML document whose aliases expand past ``MAX_NODES`` (or into themselves)."""


def _expanded_nodes(root: yaml.Node) -> int:
    """The number of nodes ``root`` would have with every alias copied out (each shared node once
    per reference), stopping as soon as the bound is passed."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in visiting:
            raise YAMLBoundsError("an alias refers to the collection that contains it")
        visiting.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > MAX_NODES:
                raise YAMLBoundsError(f"aliases expand to more than {MAX_NODES:,} values (an alias bomb?)")
        visiting.discard(key)
        sizes[key] = total
        return total

    return size(root)


_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class BoundedLoader(_Base):  # type: ignore[misc,valid-type]
    def construct_document(self, node):
        _expanded_nodes(node)
        return super().construct_document(node)


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load`` with the alias-expansion bound (``YAMLBoundsError``)."""
    return yaml.load(text, Loader=BoundedLoader)


def read_yaml(path: Path, error: type[Exception], what: str, missing_ok: bool = False) -> Any:
    """The parsed file; ``error`` (the caller's user-error class) if it is missing, unreadable, too
    large, not UTF-8, not YAML or an alias bomb. ``missing_ok``: None for a missing file."""
    path = Path(path)
    if not path.exists():
        if missing_ok:
            return None
        raise error(f"{path}: no such {what}")
    if not path.is_file():
        raise error(f"{path}: not a file (a {what} is a YAML file)")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise error(f"{path}: {size:,} bytes is too large for a {what} (at most {MAX_FILE_BYTES:,})")
        raw = path.read_bytes()
    except OSError as err:
        raise error(f"{path}: cannot read the {what} ({err.strerror or type(err).__name__})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{path}: not UTF-8 text (byte {err.start}); a {what} is a YAML text file") from None
    if "\x00" in text:
        raise error(f"{path}: contains NUL bytes; a {what} is a YAML text file")
    try:
        return parse_yaml(text)
    except YAMLBoundsError as err:
        raise error(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        problem = str(getattr(err, "problem", None) or err).splitlines()[0][:160]
        raise error(f"{path}: not valid YAML{line}: {problem}") from None
    except RecursionError:
        raise error(f"{path}: nested too deeply to be a {what}") from None
