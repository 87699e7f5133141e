"""Checks on folders a command will write to, made before anything is written (creating nothing)."""

from __future__ import annotations

import os
from pathlib import Path


def folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be used to write into (it exists as a file, or the nearest existing
    ancestor is not a writable folder), or None if it exists or can be made."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file, not a folder"
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


def check_folder(folder: Path, what: str, error: type[Exception]) -> None:
    problem = folder_problem(folder)
    if problem:
        raise error(f"{what}: {problem}")
