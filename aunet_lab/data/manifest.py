"""Data manifests (YAML): what a corpus is made of, and the lock written after preparation.

A manifest names the corpus, its licence and attribution, its languages (BCP-47 tags from
``aunet_lab.data.languages``), how documents are split into train/val/test (by a hash of their
alignment id, so the same ids are held out in every language), and its sources. Errors name the
file, the key path and what was expected.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aunet_lab.data.languages import LANGUAGES

SOURCE_KINDS = ("debian", "npm", "local", "hf")
READERS = ("libreoffice-help", "libreoffice-ui", "udhr", "text", "jsonl", "parquet", "hf")
DEFAULT_READER = {"local": "text", "hf": "hf"}
SPLITS = ("train", "val", "test")


class ManifestError(ValueError):
    """A manifest (or lock) that cannot be used; one line naming the file and key."""


@dataclass
class SplitRule:
    val: float = 0.02
    test: float = 0.03
    seed: int = 0


@dataclass
class SourceSpec:
    kind: str
    name: str
    reader: str
    package: str | None = None  # debian / npm: a template over the language table, e.g. libreoffice-help-{lo_package}
    paths: dict[str, str] | str | None = None  # local: {tag: glob} or one glob with {tag}
    code: str | None = None  # template for the source's own language code (udhr: {udhr})
    text_field: str = "text"
    id_field: str | None = None
    language_field: str | None = None
    reference_language: str | None = None  # drop paragraphs identical to this language's (untranslated)
    languages: list[str] | None = None  # the manifest languages this source covers (default: all)
    segment: str = "document"  # or "ui-strings": short UI segments, marked as such in stats
    licence: str | None = None
    attribution: str | None = None
    dataset: str | None = None  # hf
    config: str | None = None  # hf
    split: str = "train"  # hf


@dataclass
class Manifest:
    path: Path
    name: str
    licence: str
    attribution: str
    languages: list[str]
    sources: list[SourceSpec]
    split: SplitRule = field(default_factory=SplitRule)
    description: str = ""
    usage: str = "train"  # or "eval": evaluation only, never trained on
    # A parallel corpus (the same documents by alignment id in every language): evaluation caps are
    # cut on this reference language and the same ids are scored in every language.
    aligned: str | None = None

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name.rsplit(".", 1)[0] + ".lock.yaml")

    def sources_for(self, tag: str) -> list[SourceSpec]:
        return [s for s in self.sources if s.languages is None or tag in s.languages]


def _expect(cond: bool, path: Path, key: str, what: str) -> None:
    if not cond:
        raise ManifestError(f"{path}: {key}: {what}")


def _string(data: dict, key: str, path: Path, where: str, required: bool = True, default: str | None = None):
    if key not in data or data[key] is None:
        _expect(not required, path, f"{where}{key}", "missing (expected a string)")
        return default
    _expect(isinstance(data[key], str) and data[key].strip() != "", path, f"{where}{key}",
            f"expected a non-empty string, got {data[key]!r}")
    return data[key]


def _languages(value: Any, path: Path, key: str) -> list[str]:
    _expect(isinstance(value, list) and value and all(isinstance(v, str) for v in value), path, key,
            f"expected a non-empty list of language tags, got {value!r}")
    for i, tag in enumerate(value):
        _expect(tag in LANGUAGES, path, f"{key}[{i}]", f"unknown language {tag!r} (known: {', '.join(LANGUAGES)})")
    _expect(len(set(value)) == len(value), path, key, "a language is listed twice")
    return list(value)


def _source(data: Any, path: Path, i: int, languages: list[str]) -> SourceSpec:
    where = f"sources[{i}]."
    _expect(isinstance(data, dict), path, f"sources[{i}]", f"expected a mapping, got {type(data).__name__}")
    known = set(SourceSpec.__dataclass_fields__)
    for key in data:
        _expect(key in known, path, f"{where}{key}", f"unknown key (expected one of: {', '.join(sorted(known))})")
    kind = _string(data, "kind", path, where)
    _expect(kind in SOURCE_KINDS, path, f"{where}kind", f"expected one of {', '.join(SOURCE_KINDS)}, got {kind!r}")
    reader = _string(data, "reader", path, where, required=kind in ("debian", "npm"), default=DEFAULT_READER.get(kind))
    _expect(reader in READERS, path, f"{where}reader", f"expected one of {', '.join(READERS)}, got {reader!r}")
    spec = SourceSpec(kind=kind, name=_string(data, "name", path, where, required=False, default=f"{kind}-{i}"),
                      reader=reader)
    for key in ("package", "code", "text_field", "id_field", "language_field", "reference_language", "segment",
                "licence", "attribution", "dataset", "config", "split"):
        if key in data:
            setattr(spec, key, _string(data, key, path, where))
    if kind in ("debian", "npm"):
        _expect(spec.package is not None, path, f"{where}package", f"missing: a {kind} source names its package")
    if kind == "hf":
        _expect(spec.dataset is not None, path, f"{where}dataset", "missing: an hf source names its dataset")
    if kind == "local":
        paths = data.get("paths")
        ok = isinstance(paths, str) or (isinstance(paths, dict) and paths and
                                        all(isinstance(k, str) and isinstance(v, str) for k, v in paths.items()))
        _expect(ok, path, f"{where}paths", "expected a glob (may use {tag}) or a mapping language -> glob")
        if isinstance(paths, dict):
            for tag in paths:
                _expect(tag in languages, path, f"{where}paths.{tag}", "not one of the manifest's languages")
        spec.paths = paths
    if "languages" in data:
        spec.languages = _languages(data["languages"], path, f"{where}languages")
        for j, tag in enumerate(spec.languages):
            _expect(tag in languages, path, f"{where}languages[{j}]", f"{tag!r} is not one of the manifest's languages")
    if spec.reference_language is not None:
        _expect(spec.reference_language in LANGUAGES, path, f"{where}reference_language",
                f"unknown language {spec.reference_language!r}")
    _expect(spec.segment in ("document", "ui-strings"), path, f"{where}segment",
            f"expected document or ui-strings, got {spec.segment!r}")
    return spec


def load_manifest(path: str | os.PathLike) -> Manifest:
    from aunet_lab.yamlio import read_yaml

    path = Path(path)
    data = read_yaml(path, ManifestError, "manifest file")
    _expect(isinstance(data, dict), path, "(top level)", "expected a mapping")
    known = {"name", "description", "licence", "attribution", "languages", "sources", "split", "usage", "aligned"}
    for key in data:
        _expect(key in known, path, str(key), f"unknown key (expected one of: {', '.join(sorted(known))})")
    name = _string(data, "name", path, "")
    _expect(all(c.isalnum() or c in "-_." for c in name), path, "name", "use letters, digits, - _ . only")
    languages = _languages(data.get("languages"), path, "languages")
    split = SplitRule()
    if "split" in data:
        raw = data["split"]
        _expect(isinstance(raw, dict), path, "split", "expected a mapping with val, test, seed")
        for key, value in raw.items():
            _expect(key in ("val", "test", "seed"), path, f"split.{key}", "unknown key (expected val, test, seed)")
            if key == "seed":
                _expect(isinstance(value, int), path, "split.seed", f"expected an integer, got {value!r}")
            else:
                _expect(isinstance(value, (int, float)) and 0 <= value < 1, path, f"split.{key}",
                        f"expected a fraction in [0, 1), got {value!r}")
            setattr(split, key, value)
        _expect(split.val + split.test < 1, path, "split", "val + test must leave some training data")
    sources = data.get("sources")
    _expect(isinstance(sources, list) and sources, path, "sources", "expected a non-empty list of sources")
    usage = _string(data, "usage", path, "", required=False, default="train")
    _expect(usage in ("train", "eval"), path, "usage", f"expected train or eval, got {usage!r}")
    aligned = data.get("aligned")
    _expect(aligned is None or aligned in languages, path, "aligned",
            f"expected one of the manifest's languages (the reference for evaluation caps), got {aligned!r}")
    return Manifest(
        path=path, name=name, licence=_string(data, "licence", path, ""),
        attribution=_string(data, "attribution", path, ""), languages=languages,
        sources=[_source(s, path, i, languages) for i, s in enumerate(sources)], split=split,
        description=_string(data, "description", path, "", required=False, default=""), usage=usage,
        aligned=aligned,
    )


# ------------------------------------------------------------------------------------------ lock


def read_lock(manifest: Manifest) -> dict:
    path = manifest.lock_path
    from aunet_lab.yamlio import read_yaml

    if not path.exists():
        return {"manifest": manifest.name, "packages": {}, "text_sha256": {}}
    data = read_yaml(path, ManifestError, "lock file") or {}
    _expect(isinstance(data, dict) and isinstance(data.get("text_sha256", {}), dict), path, "text_sha256",
            "expected a mapping language -> split -> sha256")
    data.setdefault("packages", {})
    data.setdefault("text_sha256", {})
    return data


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_lock(manifest: Manifest, lock: dict) -> None:
    header = (f"# Written by `aunet-lab data prepare` for {manifest.path.name}: package versions and the\n"
              "# sha256 of each prepared language/split file. Checked on every prepare.\n")
    write_atomic(manifest.lock_path, header + yaml.safe_dump(lock, sort_keys=True, allow_unicode=True))
