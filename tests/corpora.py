"""Small multilingual fixture corpora that the tests write and prepare themselves."""

import json
import random
from pathlib import Path

import yaml

from aunet_lab.data.corpus import prepare
from aunet_lab.data.manifest import load_manifest

WORDS = {
    "en": "the cat sat on a mat and then it rained over 12 green hills".split(),
    "fr": "le chat était assis sur un tapis puis il a plu sur 12 collines vertes".split(),
    "ru": "кошка сидела на коврике а потом пошёл дождь над 12 зелёными холмами".split(),
    "zh-CN": list("猫坐在垫子上然后在十二座绿色的山上下起了雨"),
}


def make_corpus(root: Path, languages, docs: int, words_per_sentence=(4, 12), sentences=(1, 6),
                split=None, name: str = "fixture", seed: int = 0) -> tuple[Path, Path]:
    """Random sentences from small vocabularies (no spaces in Chinese), one JSONL per language with
    shared document ids; returns the prepared manifest's path and the cache."""
    rng = random.Random(seed)
    for tag in languages:
        words = WORDS[tag]
        folder = root / "src" / tag
        folder.mkdir(parents=True, exist_ok=True)
        sep = "" if tag == "zh-CN" else " "
        with (folder / "docs.jsonl").open("w", encoding="utf-8") as fh:
            for i in range(docs):
                text = "\n".join(sep.join(rng.choice(words) for _ in range(rng.randint(*words_per_sentence)))
                                 for _ in range(rng.randint(*sentences)))
                fh.write(json.dumps({"id": f"doc{i:03d}", "text": text}, ensure_ascii=False) + "\n")
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "licence": "CC0", "attribution": "tests", "languages": list(languages),
        "split": split or {"val": 0.1, "test": 0.1, "seed": 1},
        "sources": [{"kind": "local", "reader": "jsonl", "paths": str(root / "src/{tag}/*.jsonl"), "id_field": "id"}]}))
    cache = root / "cache"
    prepare(load_manifest(path), cache)
    return path, cache
