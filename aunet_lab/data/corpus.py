"""Prepare a manifest's corpus: per-language documents with alignment ids, split by id.

``prepare(manifest)`` fetches and reads every source, normalises (NFC; invalid UTF-8 already
replaced by U+FFFD and counted), drops exact duplicates, splits train/val/test by a hash of the
alignment id (the same ids are held out in every language), writes
``<cache>/corpora/<name>/<lang>/{train,val,test}.jsonl`` plus ``stats.json``, and writes or checks
the lock. Each language is written to a temporary folder and renamed into place, so an interrupted
prepare leaves no half-written language and the next run continues with the languages not done.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from aunet_lab.data.manifest import SPLITS, Manifest, ManifestError, read_lock, write_lock
from aunet_lab.data.sources import (
    DebianFetcher,
    NpmFetcher,
    RawDocument,
    SourceError,
    help_pages,
    language_dir,
    package_name,
    read_hf,
    read_libreoffice_help,
    read_libreoffice_ui,
    read_local,
    read_udhr,
)
from aunet_lab.data.languages import source_code


class CorpusError(RuntimeError):
    """A prepare that cannot go on (checksum mismatch, empty source...); one line."""


def default_cache() -> Path:
    """``$AUNET_LAB_CACHE``, else ``~/.cache/aunet_lab``."""
    return Path(os.environ.get("AUNET_LAB_CACHE") or Path.home() / ".cache" / "aunet_lab").expanduser()


_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_surrogates(text: str) -> tuple[str, int]:
    """Lone surrogates (a JSON ``\\ud800`` escape, a Parquet string from a lax writer) have no UTF-8
    form: each becomes U+FFFD, counted with the replaced bytes, so both arms see the same bytes."""
    found = len(_SURROGATE.findall(text))
    return (_SURROGATE.sub("\ufffd", text), found) if found else (text, 0)


def split_of(doc_id: str, val: float, test: float, seed: int) -> str:
    """train / val / test from a hash of the alignment id: the same for every language."""
    digest = hashlib.sha256(f"{seed}\x00{doc_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return "test" if u < test else "val" if u < test + val else "train"


@dataclass
class LanguageStats:
    language: str
    documents: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    characters: dict[str, int] = field(default_factory=dict)
    replaced_bytes: int = 0
    duplicates_dropped: int = 0
    empty_dropped: int = 0
    sources: list[dict] = field(default_factory=list)
    sha256: dict[str, str] = field(default_factory=dict)


def corpus_dir(manifest: Manifest, cache: Path) -> Path:
    return cache / "corpora" / manifest.name


class Preparer:
    def __init__(self, manifest: Manifest, cache: Path | None = None, progress: Callable[[str], None] | None = None):
        self.manifest = manifest
        self.cache = Path(cache) if cache is not None else default_cache()
        self.cache.mkdir(parents=True, exist_ok=True)
        self.debian = DebianFetcher(self.cache)
        self.npm = NpmFetcher(self.cache)
        self.progress = progress or (lambda message: None)
        self.packages: dict[str, str] = {}
        self._help_cache: dict[tuple[str, str], dict] = {}

    # -------------------------------------------------------------- reading sources
    def _help(self, spec, tag: str) -> dict:
        key = (spec.name, tag)
        if key not in self._help_cache:
            fetched = self._fetch(spec, tag)
            self.progress(f"{tag}: reading {fetched.package}")
            self._help_cache[key] = help_pages(fetched.root, language_dir(tag))
        return self._help_cache[key]

    def _fetch(self, spec, tag: str):
        if spec.kind == "debian":
            package = package_name(spec, tag)
            self.progress(f"{tag}: fetching Debian package {package}")
            fetched = self.debian.fetch(package)
        else:
            self.progress(f"{tag}: fetching npm package {spec.package}")
            fetched = self.npm.fetch(spec.package)
        self.packages[fetched.package] = fetched.version
        return fetched

    def raw_documents(self, spec, tag: str) -> Iterator[RawDocument]:
        if spec.kind == "local":
            return read_local(spec, tag)
        if spec.kind == "hf":
            return read_hf(spec, tag)
        if spec.reader == "libreoffice-help":
            reference = None
            if spec.reference_language and spec.reference_language != tag:
                reference = self._help(spec, spec.reference_language)
            return read_libreoffice_help(self._help(spec, tag), reference)
        fetched = self._fetch(spec, tag)
        if spec.reader == "libreoffice-ui":
            return read_libreoffice_ui(fetched.root, language_dir(tag))
        if spec.reader == "udhr":
            return read_udhr(fetched.root, source_code(tag, spec.code or "{udhr}"))
        raise SourceError(f"source {spec.name!r}: reader {spec.reader!r} does not apply to {spec.kind} sources")

    # -------------------------------------------------------------- one language
    def build_language(self, tag: str, out: Path) -> LanguageStats:
        rule = self.manifest.split
        stats = LanguageStats(tag)
        by_split: dict[str, list[dict]] = {s: [] for s in SPLITS}
        seen_text: set[str] = set()
        seen_ids: set[str] = set()
        for spec in self.manifest.sources_for(tag):
            count = 0
            for doc in self.raw_documents(spec, tag):
                text, lone = replace_surrogates(doc.text)
                text = unicodedata.normalize("NFC", text).strip()
                stats.replaced_bytes += doc.replaced + lone
                if not text:
                    stats.empty_dropped += 1
                    continue
                digest = hashlib.sha256(text.encode()).hexdigest()
                ident = f"{spec.name}/{doc.id}" if len(self.manifest.sources) > 1 else doc.id
                if digest in seen_text or ident in seen_ids:
                    stats.duplicates_dropped += 1
                    continue
                seen_text.add(digest)
                seen_ids.add(ident)
                # Evaluation-only corpora are never trained on: every document is test text.
                split = "test" if self.manifest.usage == "eval" else split_of(ident, rule.val, rule.test, rule.seed)
                by_split[split].append({"id": ident, "lang": tag, "text": text})
                count += 1
            if count == 0:
                raise CorpusError(f"source {spec.name!r} gave no documents for {tag!r} (manifest {self.manifest.path})")
            stats.sources.append({"name": spec.name, "kind": spec.kind, "documents": count, "segment": spec.segment,
                                  "licence": spec.licence or self.manifest.licence,
                                  "attribution": spec.attribution or self.manifest.attribution})
        for split in SPLITS:
            docs = sorted(by_split[split], key=lambda d: d["id"])
            path = out / f"{split}.jsonl"
            with path.open("w", encoding="utf-8", newline="\n") as fh:
                for d in docs:
                    fh.write(json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n")
            stats.documents[split] = len(docs)
            stats.bytes[split] = sum(len(d["text"].encode()) for d in docs)
            stats.characters[split] = sum(len(d["text"]) for d in docs)
            stats.sha256[split] = file_sha256(path)
        (out / "stats.json").write_text(json.dumps(asdict(stats), indent=1, ensure_ascii=False), encoding="utf-8")
        return stats

    # -------------------------------------------------------------- the whole manifest
    def prepare(self, languages: list[str] | None = None) -> dict[str, LanguageStats]:
        manifest = self.manifest
        wanted = languages or manifest.languages
        for tag in wanted:
            if tag not in manifest.languages:
                raise ManifestError(f"{manifest.path}: languages: {tag!r} is not in this manifest "
                                    f"(has: {', '.join(manifest.languages)})")
        lock = read_lock(manifest)
        root = corpus_dir(manifest, self.cache)
        root.mkdir(parents=True, exist_ok=True)
        for leftover in root.glob(".tmp-*"):  # from an interrupted run
            shutil.rmtree(leftover, ignore_errors=True)
        results = {}
        for tag in wanted:
            final = root / tag
            expected = lock["text_sha256"].get(tag)
            done = load_stats(final)
            if done is not None and all((final / f"{s}.jsonl").is_file() for s in SPLITS):
                actual = {s: file_sha256(final / f"{s}.jsonl") for s in SPLITS}
                if not _differs(expected, actual):
                    self.progress(f"{tag}: already prepared, checked")
                    results[tag] = done
                    lock["text_sha256"][tag] = actual
                    continue
                # The cached text no longer matches what was locked: the cache is damaged (the
                # source was not read again). Rebuild it from the source; the lock then decides.
                self.progress(f"{tag}: prepared text in {final} does not match the lock (damaged cache); "
                              "rebuilding it from the source")
            work = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-{tag}-"))
            try:
                stats = self.build_language(tag, work)
                _check(manifest, tag, expected, stats.sha256)
                if final.exists():
                    shutil.rmtree(final)
                os.replace(work, final)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            self.progress(f"{tag}: {sum(stats.documents.values())} documents, {sum(stats.bytes.values())} bytes")
            results[tag] = stats
            lock["text_sha256"][tag] = stats.sha256
            lock["packages"].update(self.packages)
            lock["manifest"] = manifest.name
            write_lock(manifest, lock)
        lock["packages"].update(self.packages)
        write_lock(manifest, lock)
        return results


def _differs(expected: dict | None, actual: dict) -> str | None:
    """The first split whose text differs from the lock's sha256, or None."""
    for split in SPLITS:
        if expected and expected.get(split) and expected[split] != actual.get(split):
            return split
    return None


def _check(manifest: Manifest, tag: str, expected: dict | None, actual: dict) -> None:
    """Text just built from the source against the lock: a difference means the source changed."""
    split = _differs(expected, actual)
    if split:
        raise CorpusError(
            f"checksum mismatch for {tag}/{split} of {manifest.name} (text sha256 now {actual.get(split, '')[:12]}..., "
            f"the lock says {expected[split][:12]}...): the source changed; to accept the new text, delete the "
            f"{tag} entry under text_sha256 in {manifest.lock_path}"
        )


_VERIFIED: dict[Path, tuple[int, int]] = {}  # prepared files checked against the lock in this process


def verify_prepared(manifest: Manifest, tag: str, split: str, path: Path) -> None:
    """A prepared file against its lock entry, once per process (and again if the file changes):
    a truncated or edited cache is refused with how to re-prepare it."""
    stat = path.stat()
    if _VERIFIED.get(path) == (stat.st_size, stat.st_mtime_ns):
        return
    expected = (read_lock(manifest)["text_sha256"].get(tag) or {}).get(split)
    if expected:
        actual = file_sha256(path)
        if actual != expected:
            cache = path.parents[3]  # <cache>/corpora/<manifest>/<tag>/<split>.jsonl
            option = "" if cache == default_cache() else f" --cache {cache}"
            raise CorpusError(
                f"{manifest.name} {tag}/{split}: the prepared text does not match the lock (damaged cache); "
                f"re-prepare: aunet-lab data prepare {manifest.path} --languages {tag}{option}")
    _VERIFIED[path] = (stat.st_size, stat.st_mtime_ns)


def prepared_state(manifest: Manifest, tag: str, cache: Path) -> str:
    """'prepared, matches the lock', 'not prepared', or that the cache is damaged (reads the files)."""
    folder = corpus_dir(manifest, Path(cache)) / tag
    files = [folder / f"{split}.jsonl" for split in SPLITS]
    if not all(f.is_file() for f in files):
        return "not prepared"
    try:
        for split, path in zip(SPLITS, files):
            verify_prepared(manifest, tag, split, path)
    except CorpusError:
        return "prepared, but does not match the lock (damaged: data prepare rebuilds it)"
    return "prepared, matches the lock"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_stats(folder: Path) -> LanguageStats | None:
    path = folder / "stats.json"
    if not path.is_file():
        return None
    return LanguageStats(**json.loads(path.read_text(encoding="utf-8")))


def prepare(manifest: Manifest, cache: Path | None = None, languages: list[str] | None = None,
            progress: Callable[[str], None] | None = None) -> dict[str, LanguageStats]:
    return Preparer(manifest, cache, progress).prepare(languages)


def documents(manifest: Manifest, tag: str, split: str, cache: Path | None = None) -> Iterator[dict]:
    """The prepared documents of one language and split, in id order."""
    path = corpus_dir(manifest, Path(cache) if cache else default_cache()) / tag / f"{split}.jsonl"
    if not path.is_file():
        raise CorpusError(f"{manifest.name}: {tag}/{split} is not prepared (run: aunet-lab data prepare {manifest.path})")
    verify_prepared(manifest, tag, split, path)
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


def leading_texts(manifest: Manifest, tag: str, split: str, cache: Path | None, max_bytes: int) -> list[str]:
    """The texts of a language's first documents of ``split`` (id order, whole documents) until
    they reach ``max_bytes`` of UTF-8."""
    texts, size = [], 0
    for doc in documents(manifest, tag, split, cache):
        texts.append(doc["text"])
        size += len(doc["text"].encode("utf-8", "surrogateescape"))
        if size >= max_bytes:
            break
    return texts


def prepared_stats(manifest: Manifest, cache: Path | None = None) -> dict[str, LanguageStats]:
    root = corpus_dir(manifest, Path(cache) if cache else default_cache())
    out = {}
    for tag in manifest.languages:
        stats = load_stats(root / tag)
        if stats is not None:
            out[tag] = stats
    return out

