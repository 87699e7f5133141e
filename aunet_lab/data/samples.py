"""Embedded sample text: the UDHR (30 articles) in 13 languages and 10 scripts (see the JSON's header)."""

from __future__ import annotations

import functools
import json
from importlib import resources

SAMPLE_FILE = "udhr.json"


@functools.lru_cache(maxsize=1)
def _load() -> dict:
    return json.loads(resources.files("aunet_lab.data").joinpath("samples", SAMPLE_FILE).read_text("utf-8"))


def udhr_articles(lang: str) -> list[str]:
    """The 30 articles of one language (NFC), article 1 first."""
    languages = _load()["languages"]
    if lang not in languages:
        raise KeyError(f"no embedded UDHR text for {lang!r} (have: {', '.join(languages)})")
    return list(languages[lang]["articles"])


def sample_languages() -> list[str]:
    return list(_load()["languages"])


def sample_texts(articles: int = 3) -> dict[str, str]:
    """Language code -> the first ``articles`` articles, one per line."""
    return {lang: "\n".join(udhr_articles(lang)[:articles]) + "\n" for lang in sample_languages()}


def sample_attribution() -> str:
    return _load()["source"]
