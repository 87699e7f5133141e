"""`make demo` / `aunet-lab demo`: the main job on the embedded default data.

It shows the split functions at work on UDHR text in 13 languages (units per byte by stage, the
script-aware splitter's bytes per unit against English, a stability check of each built-in), then
prepares English, German and French LibreOffice help (Debian packages) and runs the smoke study
(``studies/smoke.yaml``: BPE against AU-Net-2, two data budgets, two mixtures, learning rates tuned
per cell by Optuna, every trial an MLflow run), and ends by printing the results table and where
to look. ``--offline`` runs the same study on the UDHR embedded in the package instead.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import yaml

from rich.console import Console
from rich.table import Table

from aunet_lab.data.samples import sample_attribution, sample_languages, sample_texts, udhr_articles
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


def run_demo(console: Console | None = None, offline: bool = False, workers: int | None = None,
             trials: int | None = None, quick: bool = False) -> int:
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

    return run_smoke_study(console, offline=offline, workers=workers, trials=trials, quick=quick)


SMOKE_SPEC = Path(__file__).resolve().parent.parent / "studies" / "smoke.yaml"


def offline_overrides(cache: Path) -> dict:
    """The smoke study moved onto the embedded UDHR (about 8 kB of training text a language)."""
    manifest = write_embedded_corpus(cache / "demo")
    return {"description": "the smoke study on the embedded UDHR (offline)",
            "base": {"data": {"manifest": str(manifest), "window_bytes": 64, "batch_size": 4, "vocab_size": 300,
                              "max_epochs": 3, "eval_bytes": {"val": "1KB", "test": "2KB"}},
                     "trainer": {"val_every": 8, "checkpoint_every": 8}},
            "axes": {"data_budget": ["6KB", "12KB"]}}


def run_smoke_study(console: Console, offline: bool = False, workers: int | None = None, trials: int | None = None,
                    root: Path | None = None, quick: bool = False) -> int:
    import shutil
    import subprocess
    import sys

    from aunet_lab.data.corpus import default_cache

    root = Path(root or Path.cwd())
    overrides: dict = {"output_dir": str(root / "runs" / "demo")}
    if offline:
        overrides.update(offline_overrides(Path(default_cache())))
    else:  # the spec's manifest path is relative to the checkout, wherever the demo runs from
        overrides["base"] = {"data": {"manifest": str(SMOKE_SPEC.parent.parent / "data_manifests" /
                                                  "libreoffice-help.yaml")}}
    if trials:
        overrides["tune"] = {"trials": trials}
    if quick:  # one budget and one mixture: BPE and AU-Net-2, one cell each
        overrides.setdefault("axes", {})["data_budget"] = [overrides.get("axes", {}).get("data_budget", ["100KB"])[0]]
        overrides["axes"]["mixture"] = ["en"]  # a list replaces the spec's mapping (a mapping would merge)
    spec_path = SMOKE_SPEC if SMOKE_SPEC.is_file() else None
    if spec_path is None:
        console.print("[red]studies/smoke.yaml is not next to the package (run the demo from a source checkout)[/red]")
        return 2
    from aunet_lab.sweep.spec import load_spec

    spec = load_spec(spec_path, overrides)
    if spec.folder.exists():
        shutil.rmtree(spec.folder)  # the demo's own study folder: every demo starts afresh
    workers = workers or max(1, min(2, os.cpu_count() or 1))
    source = "the embedded UDHR" if offline else "LibreOffice help (en, de, fr; Debian packages, prepared once)"
    console.rule(f"Smoke study: BPE against AU-Net-2 on {source}, {workers} worker(s)")
    spec_file = spec.folder.parent / "smoke-demo.yaml"
    spec_file.parent.mkdir(parents=True, exist_ok=True)
    spec_file.write_text(yaml.safe_dump({**spec.raw, "output_dir": str(spec.folder.parent)}, allow_unicode=True))
    command = [sys.executable, "-m", "aunet_lab.cli", "sweep", str(spec_file), "--workers", str(workers)]
    start = time.monotonic()
    code = subprocess.call(command)
    if code != 0:
        if not offline:
            console.print("[yellow]the smoke study did not run on LibreOffice help (see above); "
                          "`aunet-lab demo --offline` runs it on the embedded UDHR[/yellow]")
        return code
    console.print(f"smoke study finished in {time.monotonic() - start:.0f}s", highlight=False)
    from aunet_lab.mlflow_client import resolve_tracking_uri

    from aunet_lab.reports.build import build_report

    report = build_report(spec.name, resolve_tracking_uri(spec.tracking_uri), root / "reports" / "smoke.pdf")
    console.rule("Where to look")
    console.print(f"report:        {report.pdf} ({report.pages} pages; figures in {report.figures[0].parent})",
                  highlight=False)
    console.print(f"results table: {spec.folder / 'summary.md'} (and summary.csv)", highlight=False)
    console.print(f"MLflow UI:     aunet-lab ui --tracking-uri {resolve_tracking_uri(spec.tracking_uri)}  "
                  f"(experiment '{spec.name}': the study's parent run, one child run per trial)", highlight=False)
    console.print(f"Optuna:        {spec.folder / 'optuna.journal'} (optuna-dashboard opens it)", highlight=False)
    return 0


def write_embedded_corpus(folder: Path) -> Path:
    """The embedded UDHR as a local manifest: one JSONL per language, a document per article; the
    test and validation articles are chosen by a hash of the article id, so they are the same
    articles in every language."""
    folder.mkdir(parents=True, exist_ok=True)
    for lang in sample_languages():
        code = "zh-CN" if lang == "zh" else lang
        with (folder / f"{code}.jsonl").open("w", encoding="utf-8") as fh:
            for number, text in enumerate(udhr_articles(lang), start=1):
                fh.write(json.dumps({"id": f"article-{number:02d}", "text": text}, ensure_ascii=False) + "\n")
    manifest = folder / "udhr-embedded.yaml"
    languages = ["zh-CN" if lang == "zh" else lang for lang in sample_languages()]
    manifest.write_text(yaml.safe_dump({
        "name": "udhr-embedded", "licence": "MIT package; UDHR text OHCHR, reproducible with attribution",
        "attribution": sample_attribution(), "languages": languages, "split": {"val": 0.1, "test": 0.1, "seed": 3},
        "aligned": "en",
        "sources": [{"kind": "local", "name": "udhr", "reader": "jsonl", "paths": str(folder / "{tag}.jsonl"),
                     "id_field": "id"}]}, allow_unicode=True))
    return manifest
