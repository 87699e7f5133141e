"""`aunet-lab split list|show|check`: the registered split functions, a text's units, their stability."""

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


def add_split_parser(sub) -> None:
    split = sub.add_parser("split", help="split functions: list, show, check")
    split_sub = split.add_subparsers(dest="split_command", required=True, parser_class=Parser)
    p = split_sub.add_parser("list", help="registered split functions")
    p.set_defaults(func=cmd_split_list)
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
