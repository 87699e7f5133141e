"""The documentation's commands and links are real.

Every ``aunet-lab ...`` command quoted in README.md and docs/*.md (in shell code blocks, and in inline
code spans) must parse with the real CLI parser, the repository files it names must exist, and every
relative link must point at an existing file (and, for ``file.md#anchor``, an existing heading).
"""
from __future__ import annotations

import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from aunet_lab.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Fenced blocks whose lines are shell commands (```bash, ```sh, ..., or no language at all).
SHELL_LANGS = {"", "bash", "sh", "shell", "console", "text"}
# Folders commands write to, never inputs: run folders, the MLflow store, exports and evaluation
# output. Not `studies/` (it holds the input specs; a study's output goes to runs/studies/) and not
# `reports/` (it holds committed runs tables that commands read; outputs there are named by --out or
# --export, which are treated as outputs below).
OUTPUT_DIRS = {"runs", "mlruns", "out", "exports", "results"}
# Options whose value is something the command writes (so later commands may read it).
OUTPUT_OPTIONS = {"--out", "--export", "--output-dir", "--cache"}
PATH_SUFFIXES = (".yaml", ".yml", ".json", ".txt", ".md", ".csv", ".parquet")
# Placeholders: such a line is a template, not a command; it is skipped (and reported by the last
# test). An argument in capitals (`CKPT`, `<RUN>`), or `<name>` inside a word (`runs/<run>/x`, which
# a shell would even read as a redirection).
PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_ ]*>|^[A-Z][A-Z0-9_]{2,}$")
GLUED_PLACEHOLDER = re.compile(r"[^\s<>]<[\w.-]+>|<[\w.-]+>[^\s<>&|;]")
SEPARATORS = re.compile(r"^[;&|<>()]+$")


@dataclass
class Command:
    doc: Path
    line: int
    text: str
    argv: list[str]

    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}: {self.text}"


def _tokens(text: str) -> list[str]:
    lex = shlex.shlex(text, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    lex.commenters = "#"
    return list(lex)


def _segments(tokens: list[str]) -> list[list[str]]:
    """Split on `|`, `&&`, `;`, `>` and friends: each piece is one simple command."""
    out, cur = [], []
    for tok in tokens:
        if SEPARATORS.match(tok):
            out.append(cur)
            cur = []
        else:
            cur.append(tok)
    out.append(cur)
    return [s for s in out if s]


def _argv(segment: list[str]) -> list[str] | None:
    """The arguments after `aunet-lab` (any path to it, after env assignments, srun, ...) or after
    `python -m aunet_lab.cli` (torchrun); None when the segment runs something else."""
    for i, tok in enumerate(segment):
        if tok.rsplit("/", 1)[-1] == "aunet-lab":
            return segment[i + 1:]
        if tok == "aunet_lab.cli" and i and segment[i - 1] == "-m":
            return segment[i + 1:]
    return None


def _shell_lines(text: str):
    """(line number, logical line) of every line in shell code blocks, continuations joined."""
    fence, lang, pending, start = None, "", "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if fence is None:
            m = re.match(r"^(```+|~~~+)\s*([\w+-]*)", stripped)
            if m:
                fence, lang = m.group(1), m.group(2).lower()
            continue
        if stripped.startswith(fence):
            fence = None
            continue
        if lang not in SHELL_LANGS:
            continue
        if not pending:
            start = n
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        yield start, pending + stripped
        pending = ""


def _prose(text: str) -> str:
    """The text with fenced code blocks blanked out (line numbers kept)."""
    out, fence = [], None
    for raw in text.splitlines():
        stripped = raw.strip()
        if fence is None and re.match(r"^(```+|~~~+)", stripped):
            fence = re.match(r"^(```+|~~~+)", stripped).group(1)
            out.append("")
        elif fence is not None:
            if stripped.startswith(fence):
                fence = None
            out.append("")
        else:
            out.append(raw)
    return "\n".join(out)


def _inline_spans(text: str):
    for n, line in enumerate(_prose(text).splitlines(), 1):
        for m in re.finditer(r"(`+)(.+?)\1", line):
            span = m.group(2).strip()
            if re.match(r"^(\$ )?([A-Z_][A-Z0-9_]*=\S+ )*aunet-lab\b", span):
                yield n, span


def _subcommand_names() -> set[str]:
    names = set()

    def walk(parser):
        for action in parser._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                for name, sub in action.choices.items():
                    names.add(name)
                    walk(sub)

    walk(build_parser())
    return names


def collect() -> tuple[list[Command], list[Command]]:
    """(commands, skipped placeholders) of every doc."""
    subcommands = _subcommand_names()
    commands, skipped = [], []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        found = [(n, line, False) for n, line in _shell_lines(text)]
        found += [(n, span, True) for n, span in _inline_spans(text)]
        for n, line, inline in found:
            line = re.sub(r"^\$ ", "", line.strip())
            try:
                words = shlex.split(line, comments=True)  # comments gone, `<name>` kept inside words
                tokens = _tokens(line)
            except ValueError as e:  # unbalanced quotes
                if re.search(r"aunet-lab|aunet_lab\.cli", line):
                    commands.append(Command(doc, n, line, [f"<not a shell line: {e}>"]))
                continue
            runs_cli = any(_argv(words[i - 1:i + 1]) is not None for i in range(len(words)))
            if runs_cli and any(GLUED_PLACEHOLDER.search(w) for w in words):
                skipped.append(Command(doc, n, line, []))
                continue
            for seg in _segments(tokens):
                argv = _argv(seg)
                if argv is None:
                    continue
                cmd = Command(doc, n, line, argv)
                if inline and set(argv) <= subcommands:
                    continue  # `aunet-lab sweep` in prose names a command; it is not a command line
                if any(PLACEHOLDER.search(a) for a in argv):
                    skipped.append(cmd)
                    continue
                commands.append(cmd)
    return commands, skipped


COMMANDS, SKIPPED = collect()


def test_enough_commands_are_found():
    assert len(COMMANDS) >= 30, f"only {len(COMMANDS)} aunet-lab commands found in the docs"


def test_every_documented_command_parses():
    bad = []
    for cmd in COMMANDS:
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                build_parser().parse_args(cmd.argv)
        except SystemExit as e:  # argparse's own error
            last = (err.getvalue().strip().splitlines() or [f"exit {e.code}"])[-1]
            bad.append(f"{cmd.where()}\n    {last}")
        except Exception as e:  # the CLI's parser raises its one-line user error instead of exiting
            bad.append(f"{cmd.where()}\n    {e}")
    assert not bad, f"{len(bad)} documented command(s) do not parse:\n" + "\n".join(bad)


def _first(path: str) -> str:
    return path.removeprefix("./").split("/", 1)[0]


def _looks_like_repo_path(arg: str, top_level: set[str]) -> bool:
    return ("/" in arg or arg.endswith(PATH_SUFFIXES)) and _first(arg) in top_level


def _named_inputs(argv: list[str]) -> set[str]:
    """The files a command reads by the parser's own account, wherever they are: train's config,
    sweep's study spec, a manifest."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            ns = build_parser().parse_args(argv)
    except (SystemExit, Exception):
        return set()  # reported by test_every_documented_command_parses
    names = {getattr(ns, "manifest", None), getattr(ns, "config", None)}
    if argv[:1] == ["sweep"]:
        names.add(ns.study)
    return {n.rstrip("/") for n in names if isinstance(n, str) and "://" not in n}


def test_files_named_by_commands_exist():
    top_level = {p.name for p in ROOT.iterdir() if not p.name.startswith(".")}
    bad = []
    by_doc: dict[Path, list[Command]] = {}
    for cmd in COMMANDS:
        by_doc.setdefault(cmd.doc, []).append(cmd)
    for doc, cmds in by_doc.items():
        written: set[str] = set()  # paths an earlier command of this doc writes
        for cmd in sorted(cmds, key=lambda c: c.line):
            args = cmd.argv
            outputs = set()
            for i, a in enumerate(args):
                opt, _, val = a.partition("=")
                if opt in OUTPUT_OPTIONS and val:
                    outputs.add(val)
                elif a in OUTPUT_OPTIONS and i + 1 < len(args):
                    outputs.add(args[i + 1])
            if args[:1] == ["export"]:
                positionals = [a for a in args[1:] if not a.startswith("-")]
                outputs.update(positionals[1:2])
            named_inputs = _named_inputs(args)
            for a in args:
                value = a.rsplit("=", 1)[-1] if a.startswith("-") or "=" in a else a
                value = value.rstrip("/")
                named = value in named_inputs and not value.startswith("/")
                if not (named or _looks_like_repo_path(value, top_level)):
                    continue
                if value in outputs or _first(value) in OUTPUT_DIRS:
                    continue
                if any(value == w or value.startswith(w + "/") for w in written):
                    continue
                if not (ROOT / value).exists():
                    bad.append(f"{cmd.where()}\n    {value}: no such file in the repository")
            written |= {o.rstrip("/") for o in outputs}
    assert not bad, f"{len(bad)} documented command(s) name missing files:\n" + "\n".join(bad)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    prose = _prose(path.read_text(encoding="utf-8"))
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", prose, re.M)}


LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def test_relative_links_point_at_files():
    bad, links = [], 0
    for doc in DOCS:
        name = doc.relative_to(ROOT)
        # code spans blanked with spaces (offsets keep their line numbers); a link may wrap lines
        text = _prose(doc.read_text(encoding="utf-8"))
        prose = re.sub(r"(`+)[^`]+?\1", lambda m: " " * len(m.group(0)), text)
        for m in LINK.finditer(prose):
            n = prose.count("\n", 0, m.start()) + 1
            target = m.group(1)
            if target.startswith("#"):
                if target[1:] not in _anchors(doc):
                    bad.append(f"{name}:{n}: {target}: no such heading")
                continue
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, mailto:, ...
                continue
            links += 1
            path, _, anchor = target.partition("#")
            dest = (doc.parent / path).resolve()
            if not dest.exists():
                bad.append(f"{name}:{n}: {target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                bad.append(f"{name}:{n}: {target}: no such heading in {path}")
    assert links, "no relative links found"
    assert not bad, f"{len(bad)} broken link(s):\n" + "\n".join(bad)


def test_commands_use_example_paths_not_placeholders():
    """A template line (`aunet-lab eval CKPT`) checks nothing: the docs use real example paths."""
    assert not SKIPPED, "commands with placeholders instead of example paths:\n" + "\n".join(
        c.where() for c in SKIPPED)
