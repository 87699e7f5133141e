"""`make demo` / `aunet-lab demo`: the main job on embedded data.

Until the Lightning training path lands, it shows the split functions at work on UDHR text in 13
languages (units per byte by stage, the script-aware splitter's bytes per unit against English, a
stability check of each built-in), then trains a tiny AU-Net-2 for about a minute on UDHR articles
1-27 and reports its bits per byte on the held-out articles 28-30 and a sample generation.
"""

from __future__ import annotations

import math
import os
import time

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

    seconds = float(os.environ.get("AUNET_DEMO_SECONDS", "60"))
    console.rule(f"A tiny AU-Net-2 trained for {seconds:.0f} s on UDHR articles 1-27 (13 languages)")
    result = train_tiny_aunet(sample_languages(), seconds, console)
    console.print(
        f"steps {result['steps']}, {result['bytes_per_s']:.0f} bytes/s; held-out articles 28-30, bits per byte: "
        f"{result['bpb_before']:.2f} untrained -> [bold]{result['bpb_after']:.2f}[/bold] "
        f"(uniform over 256 bytes: 8.00)", highlight=False)
    console.print(f"sample (temperature 0.7, top-p 0.9, prompt {result['prompt']!r}): {result['sample']!r}",
                  highlight=False)
    return 0


HELD_OUT_ARTICLES = 3  # the last three UDHR articles (28-30) are never trained on


def udhr_train_test(lang: str) -> tuple[str, str]:
    articles = udhr_articles(lang)
    cut = len(articles) - HELD_OUT_ARTICLES
    return "\n".join(articles[:cut]) + "\n", "\n".join(articles[cut:]) + "\n"


def bits_per_byte(model, ids, levels) -> float:
    """Sum of next-byte NLL in nats / (ln 2 x bytes predicted); BOS is never a target."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        logits = model(ids[:, :-1], levels[:, :-1])
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum")
    return float(nll) / (math.log(2) * ids[:, 1:].numel())


def train_tiny_aunet(languages: list[str], seconds: float, console: Console | None = None,
                     window: int = 192, batch: int = 8, seed: int = 0) -> dict:
    """A minimal next-byte training loop (AdamW, warmup then constant) for the demo."""
    import torch
    import torch.nn.functional as F

    from aunet_lab.data.splitting import level_mask
    from aunet_lab.models import AUNet, AUNetConfig
    from aunet_lab.models.generate import Generator

    torch.manual_seed(seed)
    config = AUNetConfig.tiny(stages=2, dim=64, byte_window=64)
    model = AUNet(config)
    docs, held_out = [], []
    for lang in languages:
        train, test = udhr_train_test(lang)
        for part, out in ((train, docs), (test, held_out)):
            data = part.encode()
            ids = torch.tensor([256] + list(data))
            out.append((ids, level_mask(data, config.split).clamp(max=config.n_stages - 1)))

    def evaluate() -> float:
        nll_bits, n = 0.0, 0
        for ids, levels in held_out:
            bpb = bits_per_byte(model, ids[None], levels[None])
            nll_bits += bpb * (ids.numel() - 1)
            n += ids.numel() - 1
        return nll_bits / n

    model.eval()
    bpb_before = evaluate()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    rng = torch.Generator().manual_seed(seed)
    start, steps, seen = time.monotonic(), 0, 0
    while time.monotonic() - start < seconds:
        xs, ls = [], []
        for _ in range(batch):
            ids, levels = docs[int(torch.randint(len(docs), (1,), generator=rng))]
            off = int(torch.randint(max(1, ids.numel() - window - 1), (1,), generator=rng))
            xs.append(ids[off : off + window + 1])
            ls.append(levels[off : off + window + 1])
        width = min(x.numel() for x in xs)
        x = torch.stack([t[:width] for t in xs])
        lv = torch.stack([t[:width] for t in ls])
        for group in opt.param_groups:
            group["lr"] = 3e-3 * min(1.0, (steps + 1) / 50)
        logits = model(x[:, :-1], lv[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        steps += 1
        seen += x[:, 1:].numel()
        if console is not None and steps % 100 == 0:
            console.print(f"  step {steps}: loss {loss.item():.3f} nats/byte", highlight=False)
    elapsed = time.monotonic() - start
    model.eval()
    bpb_after = evaluate()
    prompt = "All human beings are "
    ids = torch.tensor([[256] + list(prompt.encode())])
    out = Generator(model).generate(ids, 60, temperature=0.7, top_p=0.9, stop_id=257, seed=seed)
    sample = bytes(t for t in out[0].tolist() if t < 256).decode("utf-8", "replace")
    return {"steps": steps, "bytes_per_s": seen / max(elapsed, 1e-9), "bpb_before": bpb_before,
            "bpb_after": bpb_after, "prompt": prompt, "sample": sample, "model": model}
