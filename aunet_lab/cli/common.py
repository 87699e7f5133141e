"""What every command module shares: the user-error type, its one-line message and the parser class."""

from __future__ import annotations

import argparse

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A problem with what the user asked for: reported as one line, exit status 2."""


MAX_ERROR_CHARS = 300


def one_line(message: str, limit: int = MAX_ERROR_CHARS) -> str:
    """A user error as one line of at most ``limit`` characters (a value in it may be long)."""
    from aunet_lab.messages import cut

    return cut(" ".join(message.split()), limit)


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        raise UserError(f"{self.prog}: {message}")


def check_option(ok: bool, option: str, expected: str, value) -> None:
    """Refuse an option's value in one line (``--workers: expected at least 1, got 0``) unless ``ok``."""
    if not ok:
        raise UserError(f"{option}: expected {expected}, got {value}")
