"""`aunet-lab data prepare|stats`: fetch and lock a manifest's corpus, show what is prepared."""

from __future__ import annotations

import sys
from pathlib import Path

from aunet_lab.cli.common import Parser, UserError


def _manifest(path: str):
    from aunet_lab.data.manifest import ManifestError, load_manifest

    try:
        return load_manifest(path)
    except ManifestError as err:
        raise UserError(str(err)) from None


def _languages_arg(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def cmd_data_prepare(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from aunet_lab.data.corpus import CorpusError, Preparer
    from aunet_lab.data.languages import UnknownLanguage
    from aunet_lab.data.manifest import ManifestError
    from aunet_lab.data.sources import SourceError

    from aunet_lab.data.corpus import default_cache
    from aunet_lab.paths import check_folder

    manifest = _manifest(args.manifest)
    languages = _languages_arg(args.languages) or manifest.languages
    unknown = [tag for tag in languages if tag not in manifest.languages]
    if unknown:
        raise UserError(f"{manifest.path}: languages: {unknown[0]!r} is not in this manifest "
                        f"(has: {', '.join(manifest.languages)})")
    cache = Path(args.cache) if args.cache else default_cache()
    check_folder(cache, f"--cache {cache}", UserError)
    check_folder(manifest.lock_path.parent, f"lock {manifest.lock_path}", UserError)
    if args.check:
        return _check_prepare(manifest, languages, cache)
    # The live bar goes to a terminal; otherwise (CI, pipes) one line per language on stdout, so
    # stderr carries only a failure's one line.
    console = Console(stderr=True) if sys.stderr.isatty() else Console(file=sys.stdout)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=False, disable=not console.is_terminal) as bar:
        task = bar.add_task(f"{manifest.name}: preparing", total=len(languages))

        def progress(message: str) -> None:
            bar.update(task, description=f"{manifest.name}: {message}")
            if "documents," in message or "already prepared" in message:
                bar.advance(task)
                bar.console.print(f"  {message}", highlight=False)
            elif "damaged cache" in message:
                bar.console.print(f"  {message}", highlight=False)

        try:
            stats = Preparer(manifest, cache, progress).prepare(languages)
        except (ManifestError, SourceError, CorpusError, UnknownLanguage, ValueError) as err:
            raise UserError(str(err)) from None
    total = sum(sum(s.bytes.values()) for s in stats.values())
    print(f"{manifest.name}: {len(stats)} languages, {total:,} bytes; lock {manifest.lock_path}")
    return 0


def _check_prepare(manifest, languages: list[str], cache: Path) -> int:
    from aunet_lab.data.corpus import prepared_state

    print(f"check passed: {manifest.path} ({manifest.name}: {manifest.usage}; {manifest.licence}), cache {cache}")
    for tag in languages:
        sources = ", ".join(f"{s.name} ({s.kind})" for s in manifest.sources_for(tag))
        print(f"  {tag}: {prepared_state(manifest, tag, cache)}; sources: {sources}")
    print("nothing fetched or written (--check)")
    return 0


def cmd_data_stats(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from aunet_lab.data.corpus import default_cache, prepared_stats
    from aunet_lab.data.manifest import load_manifest

    cache = args.cache or default_cache()
    if args.manifest:
        manifests = [_manifest(args.manifest)]
    else:
        folder = Path(__file__).resolve().parents[2] / "data_manifests"
        manifests = [load_manifest(p) for p in sorted(folder.glob("*.yaml")) if not p.name.endswith(".lock.yaml")]
    console = Console()
    shown = 0
    for manifest in manifests:
        stats = prepared_stats(manifest, cache)
        if not stats:
            if args.manifest:
                raise UserError(f"{manifest.path}: nothing prepared under {cache} (run: aunet-lab data prepare {manifest.path})")
            continue
        shown += 1
        table = Table(title=f"{manifest.name} ({manifest.usage}; {manifest.licence})")
        for col in ("lang", "split", "documents", "bytes", "characters", "bytes/char"):
            table.add_column(col, justify="right")
        for tag, st in stats.items():
            for split in ("train", "val", "test"):
                chars = st.characters.get(split, 0)
                table.add_row(tag, split, f"{st.documents.get(split, 0):,}", f"{st.bytes.get(split, 0):,}",
                              f"{chars:,}", f"{st.bytes.get(split, 0) / chars:.2f}" if chars else "-")
            table.add_row(tag, "[dim]dropped[/dim]", f"{st.duplicates_dropped} dup",
                          f"{st.replaced_bytes} replaced", "", "", end_section=True)
        console.print(table)
        sources = {}
        for st in stats.values():
            for src in st.sources:
                sources[src["name"]] = src
        for src in sources.values():
            console.print(f"  source {src['name']} ({src['kind']}, {src['segment']}): licence {src['licence']}; "
                          f"{src['attribution']}", highlight=False)
    if not shown:
        print(f"nothing prepared under {cache}")
    return 0


def add_data_parser(sub) -> None:
    data = sub.add_parser("data", help="corpora: prepare a manifest, show statistics")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=Parser)
    p = data_sub.add_parser("prepare", help="fetch, extract, normalise, split and lock a manifest's corpus")
    p.add_argument("manifest", help="path to a manifest YAML (see data_manifests/)")
    p.add_argument("--languages", help="comma-separated subset of the manifest's languages")
    p.add_argument("--cache", type=Path, help="cache folder (default $AUNET_LAB_CACHE or ~/.cache/aunet_lab)")
    p.add_argument("--check", action="store_true", help="validate the manifest and cache; say what would be fetched "
                   "and which languages are prepared (checked against the lock); fetch nothing")
    p.set_defaults(func=cmd_data_prepare)
    p = data_sub.add_parser("stats", help="documents, bytes and characters per language and split")
    p.add_argument("manifest", nargs="?", help="a manifest (default: every manifest in data_manifests/)")
    p.add_argument("--cache", type=Path, help="cache folder (default $AUNET_LAB_CACHE or ~/.cache/aunet_lab)")
    p.set_defaults(func=cmd_data_stats)
