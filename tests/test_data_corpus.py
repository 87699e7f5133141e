"""Manifests and corpus preparation on small fixture corpora written by the tests."""

import json
import os
import subprocess
import sys
import textwrap
import unicodedata
from pathlib import Path

import pytest
import yaml

from aunet_lab.data.corpus import CorpusError, Preparer, documents, prepare, split_of
from aunet_lab.data.manifest import ManifestError, load_manifest, read_lock
from aunet_lab.data.sources import SourceError, help_pages, read_libreoffice_help, read_udhr

LANGS = {"en": "The cat sat on the mat number {i}.", "ru": "Кошка сидела на коврике номер {i}.",
         "zh-CN": "猫坐在第{i}号垫子上。"}


def write_manifest(folder: Path, body: dict) -> Path:
    path = folder / "fixture.yaml"
    path.write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def aligned(tmp_path):
    """Three languages of 200 aligned JSONL documents (same ids), plus a manifest."""
    for tag, template in LANGS.items():
        folder = tmp_path / "src" / tag
        folder.mkdir(parents=True)
        with (folder / "part.jsonl").open("w", encoding="utf-8") as fh:
            for i in range(200):
                fh.write(json.dumps({"doc": f"d{i:03d}", "body": template.format(i=i)}, ensure_ascii=False) + "\n")
    manifest = write_manifest(tmp_path, {
        "name": "fixture", "licence": "CC0", "attribution": "the tests", "languages": list(LANGS),
        "split": {"val": 0.1, "test": 0.1, "seed": 3},
        "sources": [{"kind": "local", "name": "shards", "reader": "jsonl", "paths": str(tmp_path / "src/{tag}/*.jsonl"),
                     "text_field": "body", "id_field": "doc"}],
    })
    return load_manifest(manifest), tmp_path / "cache"


def ids(manifest, cache, tag, split):
    return [d["id"] for d in documents(manifest, tag, split, cache)]


def test_alignment_id_splits_hold_out_the_same_ids_in_every_language(aligned):
    manifest, cache = aligned
    stats = prepare(manifest, cache)
    per_lang = {tag: {s: set(ids(manifest, cache, tag, s)) for s in ("train", "val", "test")} for tag in LANGS}
    for tag, splits in per_lang.items():
        assert not (splits["train"] & splits["val"]) and not (splits["train"] & splits["test"])
        assert not (splits["val"] & splits["test"])
        assert sum(len(v) for v in splits.values()) == 200
        assert 5 <= len(splits["test"]) <= 40 and 5 <= len(splits["val"]) <= 40
        assert stats[tag].documents["test"] == len(splits["test"])
    for split in ("val", "test"):
        assert per_lang["en"][split] == per_lang["ru"][split] == per_lang["zh-CN"][split]
    # The split is a function of the id alone (and the seed).
    assert all(split_of(i, 0.1, 0.1, 3) == "test" for i in per_lang["ru"]["test"])


def test_normalisation_replacement_counts_and_deduplication(tmp_path):
    src = tmp_path / "src" / "fr"
    src.mkdir(parents=True)
    (src / "a.txt").write_bytes(unicodedata.normalize("NFD", "café déjà vu").encode())
    (src / "b.txt").write_bytes(b"bad \xff\xfe bytes and a cut \xe4\xb8")
    (src / "c.txt").write_bytes("café déjà vu".encode())  # the NFC twin of a.txt: a duplicate
    (src / "d.txt").write_bytes(b"   \n")  # empty after stripping
    manifest = load_manifest(write_manifest(tmp_path, {
        "name": "norm", "licence": "CC0", "attribution": "tests", "languages": ["fr"],
        "split": {"val": 0.0, "test": 0.0},
        "sources": [{"kind": "local", "reader": "text", "paths": str(tmp_path / "src/{tag}/*.txt")}]}))
    stats = prepare(manifest, tmp_path / "cache")["fr"]
    texts = {d["id"]: d["text"] for d in documents(manifest, "fr", "train", tmp_path / "cache")}
    assert texts["a.txt"] == "café déjà vu" and unicodedata.is_normalized("NFC", texts["a.txt"])
    assert "c.txt" not in texts and stats.duplicates_dropped == 1
    assert texts["b.txt"] == "bad \ufffd\ufffd bytes and a cut \ufffd"
    assert stats.replaced_bytes == 4 and stats.empty_dropped == 1


def test_idempotent_and_locked(aligned):
    manifest, cache = aligned
    prepare(manifest, cache)
    lock = read_lock(manifest)
    files = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (cache / "corpora").rglob("*.jsonl")}
    prepare(manifest, cache)
    assert read_lock(manifest) == lock
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (cache / "corpora").rglob("*.jsonl")} == files
    assert set(lock["text_sha256"]) == set(LANGS)
    # Prepared again from scratch elsewhere: the same bytes, so the lock verifies.
    prepare(manifest, cache.parent / "other-cache")


def test_interrupted_prepare_leaves_nothing_half_written_and_resumes(aligned, monkeypatch):
    manifest, cache = aligned
    original = Preparer.build_language

    def failing(self, tag, out):
        if tag == "ru":
            (out / "train.jsonl").write_text("half-written")
            raise KeyboardInterrupt
        return original(self, tag, out)

    monkeypatch.setattr(Preparer, "build_language", failing)
    with pytest.raises(KeyboardInterrupt):
        prepare(manifest, cache)
    root = cache / "corpora" / "fixture"
    assert (root / "en" / "stats.json").is_file()
    assert not (root / "ru").exists() and not list(root.glob(".tmp-*"))
    en_mtime = (root / "en" / "train.jsonl").stat().st_mtime_ns
    monkeypatch.setattr(Preparer, "build_language", original)
    prepare(manifest, cache)
    assert (root / "en" / "train.jsonl").stat().st_mtime_ns == en_mtime
    assert set(read_lock(manifest)["text_sha256"]) == set(LANGS)


def test_killed_prepare_resumes(aligned):
    manifest, cache = aligned
    script = textwrap.dedent(f"""
        import os, signal
        from aunet_lab.data.corpus import Preparer
        from aunet_lab.data.manifest import load_manifest
        original = Preparer.build_language
        def dying(self, tag, out):
            if tag == "ru":
                (out / "train.jsonl").write_text("partial")
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, tag, out)
        Preparer.build_language = dying
        Preparer(load_manifest({str(manifest.path)!r}), {str(cache)!r}).prepare()
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode == -9
    root = cache / "corpora" / "fixture"
    assert list(root.glob(".tmp-ru-*")) and not (root / "ru").exists()
    prepare(manifest, cache)
    assert not list(root.glob(".tmp-*"))
    assert len(ids(manifest, cache, "ru", "train")) + len(ids(manifest, cache, "ru", "test")) + \
        len(ids(manifest, cache, "ru", "val")) == 200


def test_checksum_mismatch_names_language_and_split(aligned):
    manifest, cache = aligned
    prepare(manifest, cache)
    lock = yaml.safe_load(manifest.lock_path.read_text())
    lock["text_sha256"]["ru"]["test"] = "0" * 64
    manifest.lock_path.write_text(yaml.safe_dump(lock))
    with pytest.raises(CorpusError, match=r"checksum mismatch for ru/test"):
        prepare(manifest, cache)
    # A fresh cache: the new text is built in a temporary folder and never lands.
    with pytest.raises(CorpusError, match=r"ru/test"):
        prepare(manifest, cache.parent / "fresh")
    assert not (cache.parent / "fresh" / "corpora" / "fixture" / "ru").exists()


@pytest.mark.parametrize("body, fragment", [
    ({"licence": "x", "attribution": "y", "languages": ["en"], "sources": [{"kind": "local", "paths": "x"}]},
     "name: missing"),
    ({"name": "n", "licence": "x", "attribution": "y", "languages": ["en", "xx"], "sources": [{"kind": "local", "paths": "x"}]},
     "languages[1]: unknown language 'xx'"),
    ({"name": "n", "licence": "x", "attribution": "y", "languages": ["en"], "sources": [{"kind": "ftp"}]},
     "sources[0].kind: expected one of"),
    ({"name": "n", "licence": "x", "attribution": "y", "languages": ["en"], "sources": [{"kind": "local", "paths": 3}]},
     "sources[0].paths"),
    ({"name": "n", "licence": "x", "attribution": "y", "languages": ["en"], "sources": [{"kind": "debian", "reader": "text"}]},
     "sources[0].package: missing"),
    ({"name": "n", "licence": "x", "attribution": "y", "languages": ["en"], "split": {"val": 2},
      "sources": [{"kind": "local", "paths": "x"}]}, "split.val"),
    ({"name": "n", "licence": "x", "attribution": "y", "languages": ["en"], "colour": "red",
      "sources": [{"kind": "local", "paths": "x"}]}, "colour: unknown key"),
    ({"name": "n", "licence": "x", "attribution": "y", "languages": ["en"],
      "sources": [{"kind": "local", "paths": "x", "textfield": "t"}]}, "sources[0].textfield: unknown key"),
])
def test_malformed_manifests_name_file_and_key(tmp_path, body, fragment):
    path = write_manifest(tmp_path, body)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert str(info.value).startswith(str(path)) and fragment in str(info.value), str(info.value)


def test_missing_manifest_and_bad_yaml(tmp_path):
    with pytest.raises(ManifestError, match="no such manifest"):
        load_manifest(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_manifest(bad)


def test_empty_sources_and_unknown_languages(aligned, tmp_path):
    manifest, cache = aligned
    with pytest.raises(ManifestError, match="'fi' is not in this manifest"):
        prepare(manifest, cache, languages=["fi"])
    empty = load_manifest(write_manifest(tmp_path, {
        "name": "empty", "licence": "x", "attribution": "y", "languages": ["en"],
        "sources": [{"kind": "local", "reader": "text", "paths": str(tmp_path / "nothing-here/*.txt")}]}))
    with pytest.raises(SourceError, match="no files match"):
        prepare(empty, cache)
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "a.txt").write_text("  ")
    blank = load_manifest(write_manifest(tmp_path, {
        "name": "blank", "licence": "x", "attribution": "y", "languages": ["en"],
        "sources": [{"kind": "local", "reader": "text", "paths": str(tmp_path / "blank/*.txt")}]}))
    with pytest.raises(CorpusError, match="gave no documents"):
        prepare(blank, cache)


def test_parquet_and_language_field(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"id": ["a", "b", "c"], "text": ["hello", "bonjour", "salut"], "lang": ["en", "fr", "fr"]})
    pq.write_table(table, tmp_path / "mixed.parquet")
    manifest = load_manifest(write_manifest(tmp_path, {
        "name": "pq", "licence": "x", "attribution": "y", "languages": ["en", "fr"], "split": {"val": 0.0, "test": 0.0},
        "sources": [{"kind": "local", "reader": "parquet", "paths": str(tmp_path / "*.parquet"),
                     "id_field": "id", "language_field": "lang"}]}))
    prepare(manifest, tmp_path / "cache")
    assert ids(manifest, tmp_path / "cache", "fr", "train") == ["b", "c"]
    assert ids(manifest, tmp_path / "cache", "en", "train") == ["a"]


HELP_PAGE = """<html><body><header><p>menu</p></header>
<h1 id="hd_id1">{title}</h1>
<p id="par_id2">{first}<span class="x"> <b>{bold}</b></span></p>
<p id="par_id3">{untranslated}</p>
<div><p id="par_id4">{last}</p><br></div>
</body></html>"""


def _help_tree(root: Path, lo_dir: str, **texts):
    page = root / "usr/share/libreoffice/help" / lo_dir / "text/swriter/guide/page.html"
    page.parent.mkdir(parents=True)
    page.write_text(HELP_PAGE.format(**texts), encoding="utf-8")


def test_libreoffice_help_reader_keeps_translated_paragraphs(tmp_path):
    _help_tree(tmp_path / "en", "en-US", title="Tables", first="Click", bold="here", untranslated="Same text",
               last="Done.")
    _help_tree(tmp_path / "de", "de", title="Tabellen", first="Klicken Sie", bold="hier", untranslated="Same text",
               last="Fertig.")
    english = help_pages(tmp_path / "en", "en-US")
    german = help_pages(tmp_path / "de", "de")
    assert english["text/swriter/guide/page.html"][0] == {"hd_id1": "Tables", "par_id2": "Click here",
                                                          "par_id3": "Same text", "par_id4": "Done."}
    (doc,) = read_libreoffice_help(german, english)
    assert doc.id == "text/swriter/guide/page.html"
    assert doc.text == "Tabellen\nKlicken Sie hier\nFertig."
    with pytest.raises(SourceError, match="no LibreOffice help"):
        help_pages(tmp_path / "de", "fr")


def test_udhr_reader(tmp_path):
    path = tmp_path / "package/declaration/xyz.html"
    path.parent.mkdir(parents=True)
    path.write_text("""<html><body><h1>Title</h1><p>Preamble [sic] text.</p>
        <article data-number="1"><h2>Article 1</h2><p>All   free.</p></article>
        <article data-number="2"><h2>Article 2</h2><ol><li>One.</li><li>Two.</li></ol></article></body></html>""")
    docs = list(read_udhr(tmp_path, "xyz"))
    assert [(d.id, d.text) for d in docs] == [("udhr/article/00", "Preamble text."), ("udhr/article/01", "All free."),
                                             ("udhr/article/02", "One.\nTwo.")]


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "aunet_lab.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_cli_prepare_stats_and_errors(aligned, tmp_path):
    manifest, cache = aligned
    result = _cli("data", "prepare", str(manifest.path), "--cache", str(cache), "--languages", "en,ru")
    assert result.returncode == 0, result.stderr
    result = _cli("data", "stats", str(manifest.path), "--cache", str(cache))
    assert result.returncode == 0 and "ru" in result.stdout and "CC0" in result.stdout
    for args, fragment in [
        (("data", "prepare", str(tmp_path / "missing.yaml")), "no such manifest"),
        (("data", "prepare", str(manifest.path), "--cache", str(cache), "--languages", "fi"), "not in this manifest"),
        (("data", "stats", str(manifest.path), "--cache", str(tmp_path / "empty-cache")), "nothing prepared"),
    ]:
        result = _cli(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and fragment in lines[0], result.stderr


def test_hf_source_without_datasets_package_says_so(tmp_path):
    try:
        import datasets  # noqa: F401
        pytest.skip("the datasets package is installed here")
    except ImportError:
        pass
    manifest = load_manifest(write_manifest(tmp_path, {
        "name": "hub", "licence": "x", "attribution": "y", "languages": ["en"],
        "sources": [{"kind": "hf", "dataset": "some/dataset"}]}))
    with pytest.raises(SourceError, match="need the `datasets` package"):
        prepare(manifest, tmp_path / "cache")
