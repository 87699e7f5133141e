"""`make demo` / `aunet-lab demo`: the main job on embedded data.

Until the Lightning training path lands, it shows the split functions at work on UDHR text in 13
languages (units per byte by stage, the script-aware splitter's bytes per unit against English, a
stability check of each built-in), then trains a tiny AU-Net-2 and a matched BPE baseline on the
same UDHR documents through the real pipeline (a local manifest, the DataModule, Lightning, MLflow
in ./mlruns) and compares their held-out bits per byte per language.
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

    steps = int(os.environ.get("AUNET_DEMO_STEPS", "300"))
    console.rule(f"AU-Net-2 against BPE, {steps} steps each, on the embedded UDHR (13 languages)")
    results = train_demo_pair(steps, console)
    table = Table(title="Held-out UDHR articles (test split), bits per byte: lower is better")
    table.add_column("language")
    for arch in results:
        table.add_column(arch, justify="right")
    languages = sorted({k.split("/")[2] for r in results.values() for k in r["test"] if k.count("/") == 2})
    for lang in languages + ["(micro)", "(macro)"]:
        key = {"(micro)": "test/bpb", "(macro)": "test/bpb_macro"}.get(lang, f"test/bpb/{lang}")
        table.add_row(lang, *[f"{r['test'].get(key, float('nan')):.3f}" for r in results.values()])
    console.print(table)
    for arch, r in results.items():
        console.print(f"{arch}: MLflow run {r['run_id']}, {r['bytes_per_s']:.0f} bytes/s; sample: {r['sample']!r}",
                      highlight=False)
    console.print(f"Browse the runs: aunet-lab ui --tracking-uri {results[next(iter(results))]['tracking_uri']}",
                  highlight=False)
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
        "sources": [{"kind": "local", "name": "udhr", "reader": "jsonl", "paths": str(folder / "{tag}.jsonl"),
                     "id_field": "id"}]}, allow_unicode=True))
    return manifest


def train_demo_pair(steps: int, console: Console | None = None, root: Path | None = None) -> dict:
    """Prepare the embedded corpus and train a tiny AU-Net-2 and a matched BPE baseline on the same
    documents through the real training path (Lightning, MLflow in ./mlruns)."""
    import logging

    from aunet_lab.config import load_config
    from aunet_lab.data.corpus import prepare
    from aunet_lab.data.manifest import load_manifest
    from aunet_lab.training.run import train

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    root = Path(root or Path.cwd())
    cache = root / ".cache" / "aunet_lab"
    manifest = write_embedded_corpus(cache / "demo")
    prepare(load_manifest(manifest), cache)
    mixture = {lang: 1 / 13 for lang in load_manifest(manifest).languages}
    mixture[next(iter(mixture))] += 1 - sum(mixture.values())
    common = [f"data.manifest={manifest}", f"data.cache={cache}", f"data.mixture={json.dumps(mixture)}",
              "data.budget=600KB", "data.window_bytes=256", "data.batch_size=8", "data.vocab_size=1024",
              f"trainer.max_steps={steps}", f"trainer.val_every={max(steps // 3, 1)}",
              f"trainer.checkpoint_every={max(steps // 3, 1)}", "trainer.limit_val_batches=2", "trainer.samples=1",
              "trainer.sample_bytes=60", "optim.lr=3e-3", f"optim.warmup_steps={max(steps // 10, 1)}",
              "tracking.experiment=aunet-lab-demo", f"output_dir={root / 'runs'}"]
    arms = {
        "AU-Net-2": ["model.arch=aunet", "model.aunet.stages=[{dim: 64, layers: 1, heads: 2, window: 64},"
                     " {dim: 128, layers: 2, heads: 4}]", "model.aunet.ffn_multiple_of=32",
                     f"tracking.run_name=demo-aunet2-{steps}"],
        "BPE": ["model.arch=bpe", "model.bpe={dim: 128, layers: 2, heads: 4, ffn_multiple_of: 32}",
                f"tracking.run_name=demo-bpe-{steps}"],
    }
    results = {}
    for arch, extra in arms.items():
        config = load_config(None, overrides=common + extra)
        if (Path(config.output_dir) / config.tracking.run_name / "final.ckpt").exists():
            import shutil

            shutil.rmtree(Path(config.output_dir) / config.tracking.run_name)
        start = time.monotonic()
        result = train(config)
        elapsed = time.monotonic() - start
        sample = (result.run_dir / "samples.txt").read_text(encoding="utf-8").split("-> ", 1)[-1]
        from aunet_lab.training.tracking import resolve_tracking_uri

        results[arch] = {"run_id": result.run_id, "test": result.test, "val": result.val, "sample": sample,
                         "bytes_per_s": float(steps * 8 * 256) / max(elapsed, 1e-9),
                         "tracking_uri": resolve_tracking_uri(config.tracking.tracking_uri)}
        if console is not None:
            console.print(f"  {arch}: {result.steps} steps, final loss {result.final_loss:.3f}", highlight=False)
    return results
