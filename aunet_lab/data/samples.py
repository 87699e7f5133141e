"""Embedded sample text: UDHR articles 1-3 in 13 languages and 10 scripts (see the JSON's header)."""

from __future__ import annotations

import functools
import json
from importlib import resources

SAMPLE_FILE = "udhr_articles_1_3.json"


@functools.lru_cache(maxsize=1)
def _load() -> dict:
    return json.loads(resources.files("aunet_lab.data").joinpath("samples", SAMPLE_FILE).read_text("utf-8"))


def sample_texts() -> dict[str, str]:
    """Language code -> text (NFC, paragraphs separated by newlines)."""
    return {lang: entry["text"] for lang, entry in _load()["languages"].items()}


def sample_attribution() -> str:
    return _load()["source"]
