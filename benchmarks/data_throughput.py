"""Data pipeline throughput on one core: text -> level masks -> packed batches (AU-Net) against
text -> BPE tokens -> packed batches (baseline), side by side in one process.

    python benchmarks/data_throughput.py [--repeats 5] [--copies 4] [--out benchmarks/results]

Real text: the embedded UDHR in 13 languages (``--copies`` concatenated copies, each document
kept whole). MB/s of UTF-8 input, medians over repeats. The aim: never what limits training
(at least 20 MB/s per core).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # one core for the tokenizer too
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from aunet_lab.data.bpe import train_bpe  # noqa: E402
from aunet_lab.data.datamodule import FromIndexSampler, WindowDataset, pack_bytes, pack_tokens  # noqa: E402
from aunet_lab.data.samples import sample_languages, udhr_articles  # noqa: E402
from aunet_lab.data.splitting import byte_levels, byte_levels_batch  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, object]:
    runs, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), out


def batches(stream, window: int, batch: int) -> int:
    ds = WindowDataset(stream, window)
    n = 0
    for b in DataLoader(ds, batch_size=batch, sampler=FromIndexSampler(len(ds))):
        n += b["input_ids"].numel()
    return n


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    texts = [a for lang in sample_languages() for a in udhr_articles(lang)] * args.copies
    n_bytes = sum(len(t.encode()) for t in texts)
    mb = n_bytes / 1e6
    tokenizer = train_bpe(texts[: len(texts) // args.copies], vocab_size=4096)

    results = {}
    t, _ = timed(lambda: byte_levels_batch(texts, "word"), args.repeats)
    results["aunet: split function (word), batched as the loader runs it"] = mb / t
    t, _ = timed(lambda: [byte_levels(t, "word") for t in texts[: len(texts) // args.copies]], args.repeats)
    results["aunet: split function (word), one call per document"] = mb / args.copies / t
    t, stream = timed(lambda: pack_bytes(texts, "word"), args.repeats)
    results["aunet: text -> levels -> packed stream"] = mb / t
    t, _ = timed(lambda: batches(stream, args.window, args.batch), args.repeats)
    results["aunet: packed stream -> batches"] = mb / t
    t, _ = timed(lambda: batches(pack_bytes(texts, "word"), args.window, args.batch), args.repeats)
    results["aunet: end to end"] = mb / t
    t, tokens = timed(lambda: pack_tokens(texts, tokenizer), args.repeats)
    results["bpe: text -> tokens -> packed stream"] = mb / t
    bpt = n_bytes / tokens.ids.numel()
    window_tokens = max(8, round(args.window / bpt))
    t, _ = timed(lambda: batches(tokens, window_tokens, args.batch), args.repeats)
    results["bpe: packed stream -> batches"] = mb / t
    t, _ = timed(lambda: batches(pack_tokens(texts, tokenizer), window_tokens, args.batch), args.repeats)
    results["bpe: end to end"] = mb / t

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"command": "python benchmarks/data_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "input_mb": mb, "threads": 1, "mb_per_s": results,
              "ratio_aunet_over_bpe_end_to_end": results["aunet: end to end"] / results["bpe: end to end"]}
    (out / "data_throughput.json").write_text(json.dumps(report, indent=1))
    lines = [f"{mb:.2f} MB of UDHR text (13 languages), one core, medians of {args.repeats}.", "",
             "| stage | MB/s |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in results.items()]
    lines += ["", f"AU-Net / BPE end to end: {report['ratio_aunet_over_bpe_end_to_end']:.2f}"]
    (out / "data_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
