"""`make demo` / `aunet-lab demo`: the main job on embedded data.

Until training lands, it shows the split functions at work on UDHR text in 13 languages: units per
byte by stage for every built-in split function, the script-aware splitter's bytes per unit against
English (the 2x bound), example units, and a stability check of each built-in.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from aunet_lab.data.samples import sample_attribution, sample_texts
from aunet_lab.data.splitting import (
    byte_levels,
    check_stability,
    get_split_function,
    list_split_functions,
    units_by_stage,
    units_per_byte,
)

SCRIPT_BOUND = 2.0  # the script-aware splitter keeps bytes per stage-2 unit within 2x of English's
SPACELESS_LANGUAGES = ("zh", "ja", "th")
DEMO_SPECS = ("word", "script", "stride:4,8,16")


def bytes_per_unit(text: str, spec: str, stage: int = 2) -> float:
    split = get_split_function(spec)
    rate = units_per_byte(byte_levels(text, split), split.max_level)[stage - 2]
    return 1.0 / rate if rate else float("inf")


def script_bound_rows(texts: dict[str, str], spec: str = "script") -> list[tuple[str, float, float]]:
    """(language, bytes per stage-2 unit, ratio to English) for the spaceless-script samples."""
    english = bytes_per_unit(texts["en"], spec)
    return [(lang, bpu, bpu / english) for lang in SPACELESS_LANGUAGES for bpu in [bytes_per_unit(texts[lang], spec)]]


def _visible(unit: bytes) -> str:
    return unit.decode("utf-8", "replace").replace(" ", "\u2423").replace("\n", "\\n")


def run_demo(console: Console | None = None) -> int:
    console = console or Console()
    texts = sample_texts()
    console.rule("[bold]aunet_lab demo: split functions on UDHR articles 1-3")
    console.print(f"[dim]{sample_attribution()}[/dim]")

    table = Table(title="Units per byte by stage (stage 2 / 3 / 4)")
    table.add_column("lang")
    table.add_column("bytes", justify="right")
    for spec in DEMO_SPECS:
        table.add_column(spec, justify="right")
    for lang, text in texts.items():
        row = [lang, str(len(text.encode()))]
        for spec in DEMO_SPECS:
            split = get_split_function(spec)
            rates = units_per_byte(byte_levels(text, split), split.max_level)
            row.append("/".join(f"{r:.3f}" for r in rates))
        table.add_row(*row)
    console.print(table)

    bound = Table(title=f"Script-aware splitter: bytes per stage-2 unit against English (bound {SCRIPT_BOUND}x)")
    for col in ("lang", "word", "script", "ratio to en", "within bound"):
        bound.add_column(col, justify="right")
    english = bytes_per_unit(texts["en"], "script")
    bound.add_row("en", f"{bytes_per_unit(texts['en'], 'word'):.2f}", f"{english:.2f}", "1.00", "-")
    for lang, bpu, ratio in script_bound_rows(texts):
        ok = 1 / SCRIPT_BOUND <= ratio <= SCRIPT_BOUND
        bound.add_row(lang, f"{bytes_per_unit(texts[lang], 'word'):.2f}", f"{bpu:.2f}", f"{ratio:.2f}",
                      "[green]yes[/green]" if ok else "[red]NO[/red]")
    console.print(bound)

    console.rule("Stage-2 units of the first sentence")
    for lang, spec in (("en", "word"), ("hi", "word"), ("zh", "word"), ("zh", "script"), ("ja", "script"),
                       ("th", "script")):
        first = texts[lang].split("\n")[0][:60]
        units = units_by_stage(first, spec)[0]
        console.print(f"[bold]{lang}[/bold] [cyan]{spec}[/cyan]: " + "|".join(_visible(u) for u in units),
                      markup=True, highlight=False)

    console.rule("Stability to rightward insertion, byte by byte")
    for name in list_split_functions():
        report = check_stability(name, max_bytes=200)
        style = "green" if report.stable else "red"
        console.print(f"[{style}]{report.summary()}[/{style}]", highlight=False)
    reference = check_stability("aunet_lab.data.splitting:paper_reference_word", max_bytes=200)
    console.print(f"[yellow]reference code's rule, for comparison: {reference.summary()}[/yellow]", highlight=False)
    return 0
