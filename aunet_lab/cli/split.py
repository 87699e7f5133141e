"""`aunet-lab split list|show|check|train-entropy`: the registered split functions, a text's units, their
stability, and the boundary model of the ``entropy`` split function."""

from __future__ import annotations

from pathlib import Path

from aunet_lab.cli.common import Parser, UserError, check_option


def _visible(unit: bytes) -> str:
    text = unit.decode("utf-8", "backslashreplace")
    return text.replace(" ", "\u2423").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def _split_function(spec: str):
    from aunet_lab.data.splitting import SplitSpecError, get_split_function

    try:
        return get_split_function(spec)
    except SplitSpecError as err:
        raise UserError(str(err)) from None


def cmd_split_list(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from aunet_lab.data.splitting import describe_split_functions

    table = Table(title="Registered split functions")
    table.add_column("name", style="bold")
    table.add_column("what it does")
    for name, description in describe_split_functions().items():
        table.add_row(name, description)
    Console().print(table)
    print("Also: regex:PATTERN (a boundary on the last character of each match) and "
          "module.path:callable (fn(text) -> one level per character).")
    return 0


def _read_text_arg(args) -> bytes:
    if args.file is not None:
        path = Path(args.file)
        if not path.is_file():
            raise UserError(f"--file {args.file}: no such file")
        return path.read_bytes()
    if args.text is None:
        raise UserError("split show: give TEXT or --file PATH")
    return args.text.encode("utf-8", "surrogateescape")


def cmd_split_show(args) -> int:
    from aunet_lab.data.splitting import byte_levels, units_by_stage, units_per_byte

    split = _split_function(args.spec)
    data = _read_text_arg(args)
    levels = byte_levels(data, split)
    rates = units_per_byte(levels, split.max_level)
    print(f"{split.name}: {len(data)} bytes")
    for stage, (units, rate) in enumerate(zip(units_by_stage(data, split), rates), start=2):
        per_unit = f"{1 / rate:.2f} bytes/unit" if rate else "no boundary"
        print(f"stage {stage}: {len(units)} units, {rate:.3f} units/byte ({per_unit})")
        print("  " + "|".join(_visible(u) for u in units))
    return 0


def cmd_split_check(args) -> int:
    from aunet_lab.data.splitting import check_stability, stability_corpus

    check_option(args.max_bytes >= 1, "--max-bytes", "at least 1 byte", args.max_bytes)
    check_option(args.generated >= 0, "--generated", "0 or more texts", args.generated)
    split = _split_function(args.spec)
    texts = stability_corpus(seed=args.seed, generated=args.generated)
    if args.file:
        for name in args.file:
            path = Path(name)
            if not path.is_file():
                raise UserError(f"--file {name}: no such file")
            texts.append((str(path), path.read_bytes()))
    report = check_stability(split, texts, max_bytes=args.max_bytes)
    report.spec = args.spec
    print(report.summary())
    return 0 if report.stable else 1


def _training_texts(manifest_path: str, languages: str, cache, max_bytes: int) -> dict[str, list[str]]:
    """Each language's training documents in id order, whole, up to ``max_bytes`` of UTF-8."""
    from aunet_lab.data.corpus import CorpusError, default_cache, leading_texts
    from aunet_lab.data.manifest import ManifestError, load_manifest

    try:
        manifest = load_manifest(manifest_path)
    except ManifestError as err:
        raise UserError(str(err)) from None
    chosen = [x for x in languages.split(",") if x]
    unknown = [x for x in chosen if x not in manifest.languages]
    if not chosen or unknown:
        raise UserError(f"--languages {languages}: {', '.join(unknown) or 'none given'} not in {manifest_path} "
                        f"(has: {', '.join(manifest.languages)})")
    try:
        return {lang: leading_texts(manifest, lang, "train", Path(cache) if cache else default_cache(), max_bytes)
                for lang in chosen}
    except CorpusError as err:
        raise UserError(str(err)) from None


def cmd_split_train_entropy(args) -> int:
    from aunet_lab.data.dataconfig import DataConfigError, parse_bytes
    from aunet_lab.data.splitting.entropy import ByteModelConfig
    from aunet_lab.training.entropy_boundaries import EntropyTrainConfig, train_entropy_model

    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"--out {out}: a folder (expected a file path, e.g. boundaries/entropy.pt)")
    if out.exists() and not args.force:
        raise UserError(f"--out {out}: exists (--force to replace it)")
    try:
        max_bytes = parse_bytes(args.max_bytes, "--max-bytes")
        targets = tuple(float(t) for t in args.targets.split(","))
        config = EntropyTrainConfig(ByteModelConfig(args.dim, args.layers, args.heads, args.block), args.steps,
                                    args.batch_size, args.lr, args.seed, targets)
    except (ValueError, DataConfigError) as err:
        raise UserError(f"split train-entropy: {err}") from None
    texts = _training_texts(args.manifest, args.languages, args.cache, max_bytes)
    info = {"manifest": str(args.manifest), "languages": sorted(texts)}

    def progress(step, loss):
        print(f"step {step}/{config.steps}: loss {loss / 0.6931471805599453:.3f} bits per byte", flush=True)

    try:
        result = train_entropy_model(texts, config, out, info, progress)
    except ValueError as err:
        raise UserError(f"split train-entropy: {err}") from None
    print(f"entropy boundary model: {result.path} (sha256 {result.sha256[:16]}; {result.train_bytes:,} training "
          f"bytes, {result.seconds:.0f} s); budgets " + ", ".join(f"{b:.2f}" for b in result.budgets)
          + " bits")
    for lang, rates in result.bytes_per_unit.items():
        print(f"  {lang}: bytes per unit " + ", ".join(f"stage {k} {r:.1f}" for k, r in enumerate(rates, start=2)))
    print(f"use it as the split function entropy:{result.path} (check it: aunet-lab split check entropy:{result.path})")
    return 0


def add_split_parser(sub) -> None:
    split = sub.add_parser("split", help="split functions: list, show, check, train-entropy")
    split_sub = split.add_subparsers(dest="split_command", required=True, parser_class=Parser)
    split_sub.add_parser("list", help="registered split functions").set_defaults(func=cmd_split_list)
    p = split_sub.add_parser("show", help="print the units of every stage for a text")
    p.add_argument("spec", help="name, regex:PATTERN or module.path:callable")
    p.add_argument("text", nargs="?", help="text to split")
    p.add_argument("--file", help="read the text (raw bytes) from a file instead")
    p.set_defaults(func=cmd_split_show)
    p = split_sub.add_parser("check", help="is a split function stable to rightward insertion, byte by byte?")
    p.add_argument("spec", help="name, regex:PATTERN or module.path:callable")
    p.add_argument("--file", action="append", help="also check this file's first bytes (repeatable)")
    p.add_argument("--generated", type=int, default=60, help="generated texts to check (default 60)")
    p.add_argument("--seed", type=int, default=0, help="seed for the generated texts")
    p.add_argument("--max-bytes", type=int, default=400, help="bytes of each text whose prefixes are checked")
    p.set_defaults(func=cmd_split_check)
    p = split_sub.add_parser("train-entropy", help="train the boundary model of the entropy split function")
    p.add_argument("manifest", help="a corpus manifest (prepared: aunet-lab data prepare MANIFEST)")
    p.add_argument("--languages", required=True, help="comma-separated languages whose training split it learns")
    p.add_argument("--out", required=True, help="the model file to write (then: entropy:PATH)")
    p.add_argument("--targets", default="5,10,20",
                   help="bytes per unit of stage 2, 3, ... on the training text, increasing (default 5,10,20)")
    p.add_argument("--max-bytes", default="1MB", help="training text per language (default 1MB)")
    p.add_argument("--steps", type=int, default=300, help="optimiser steps (default 300)")
    p.add_argument("--batch-size", type=int, default=32, help="windows per step (default 32)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3)")
    p.add_argument("--dim", type=int, default=64, help="model width (default 64)")
    p.add_argument("--layers", type=int, default=2, help="transformer layers (default 2)")
    p.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    p.add_argument("--block", type=int, default=32, help="bytes per block; the model reads 2 (default 32)")
    p.add_argument("--seed", type=int, default=0, help="seed for initialisation and sampling (default 0)")
    p.add_argument("--cache", help="prepared-corpus cache (default: $AUNET_LAB_CACHE or ~/.cache/aunet_lab)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=cmd_split_train_entropy)
