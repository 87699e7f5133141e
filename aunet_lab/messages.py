"""One-line messages from exceptions raised by libraries (torch, MLflow, SQLAlchemy, pandas), whose
text can run to pages."""

from __future__ import annotations


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of ``err``'s message, cut to ``limit`` characters; its type's name if empty."""
    text = str(err).strip()
    return cut(text.splitlines()[0] if text else type(err).__name__, limit)


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, cut at a word boundary with "..." (never mid-word)."""
    if len(text) <= limit:
        return text
    head = text[: limit - 3]
    space = head.rfind(" ")
    return (head[:space] if space > limit // 2 else head).rstrip(" ,;:") + "..."
