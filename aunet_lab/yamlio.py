"""Reading a YAML file with one-line errors that name the file (and the line of a syntax error)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def read_yaml(path: Path, error: type[Exception], what: str) -> Any:
    """The parsed file; ``error`` (the caller's user-error class) if it is missing or not YAML."""
    if not path.is_file():
        raise error(f"{path}: no such {what}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise error(f"{path}: not valid YAML{line}: {getattr(err, 'problem', err)}") from None
