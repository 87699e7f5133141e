"""Training throughput through the real training path: Lightning steps with data loading, MLflow
logging and the Throughput callback, for BPE, the flat byte transformer (aunet1) and AU-Net-2/3/4.

    python benchmarks/train_throughput.py [--sizes matched] [--budget 1e15] [--precision 32-true,bf16-mixed]
        [--repeats 3] [--steps 20] [--compile] [--out benchmarks/results]

* ``matched``: every arm sized by the paper's compute-matching rule for one budget (``--budget``),
  so all have about the same FLOPs per byte; the ratio of achieved FLOP/s to BPE's is what the
  hierarchy's bookkeeping (pooling, upsampling, small byte-stage matmuls) costs (aim: >= 0.95).
* ``paper``: the paper's Table 9 shapes (1B class: BPE 1B, AU-Net-2/3/4, the flat byte model of
  BPE's shape). GPU only: in fp32 with AdamW they need about 20-70 GB.

Each (arm, precision) is trained ``--repeats`` times for ``--steps`` optimizer steps on the
embedded UDHR (13 languages); a repeat's figure is the median of the callback's per-step bytes/s
after ``--skip`` warm-up steps, and the table gives the median over repeats. MFU divides by the
peak of ``aunet-lab peak`` (measured here first if the cache has none). JSON + markdown.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

PAPER_ARMS = {"bpe": "bpe-1b", "aunet1": "bytes-1b", "aunet2": "aunet2-1b", "aunet3": "aunet3-1b", "aunet4": "aunet4-1b"}


def base_config(root: Path, manifest: Path, args, precision: str):
    from aunet_lab.config import load_config
    from aunet_lab.data.manifest import load_manifest

    languages = load_manifest(manifest).languages
    mixture = {lang: round(1 / len(languages), 6) for lang in languages}
    mixture[languages[0]] += 1 - sum(mixture.values())
    return load_config(None, overrides=[
        f"data.manifest={manifest}", f"data.cache={root / 'cache'}", f"data.mixture={json.dumps(mixture)}",
        "data.budget=2MB", f"data.window_bytes={args.window}", f"data.batch_size={args.batch}",
        f"data.vocab_size={args.vocab}", "data.max_epochs=50",
        f"trainer.max_steps={args.steps}", "trainer.val_every=0", f"trainer.checkpoint_every={10 * args.steps}",
        "trainer.test_at_end=false", "trainer.samples=0", "trainer.progress=false", f"trainer.precision={precision}",
        f"trainer.compile={str(args.compile).lower()}", f"trainer.accelerator={args.accelerator}",
        "trainer.deterministic=false", f"tracking.tracking_uri=sqlite:///{root / 'mlflow.db'}",
        "tracking.experiment=train-throughput", f"output_dir={root / 'runs'}",
        *(["trainer.peak_flops=" + str(args.peak)] if args.peak else []),
    ])


def measured_units(config) -> dict:
    """Bytes per BPE token and per AU-Net unit on the training text, as the sweep would size with."""
    from aunet_lab.data.bpe import measure_units
    from aunet_lab.data.datamodule import AUNetDataModule

    bpe = AUNetDataModule(dataclasses.replace(config.data, arch="bpe"))
    bpe.setup()
    texts: dict[str, list[str]] = {}
    for lang, _, text in bpe.selection.docs:
        texts.setdefault(lang, []).append(text)
    return measure_units(texts, "word", 4, bpe.tokenizer)


def one_run(config, name: str, skip: int) -> dict:
    from mlflow.tracking import MlflowClient

    from aunet_lab.training.run import train

    config.tracking.run_name = name
    start = time.perf_counter()
    result = train(config)
    wall = time.perf_counter() - start
    client = MlflowClient(config.tracking.tracking_uri)
    series = {}
    for key in ("throughput/bytes_per_s", "throughput/tokens_per_s", "throughput/flops_per_s", "throughput/mfu"):
        values = [m.value for m in sorted(client.get_metric_history(result.run_id, key), key=lambda m: m.step)]
        series[key] = statistics.median(values[skip:]) if len(values) > skip else float("nan")
    return {"run_id": result.run_id, "wall_s": wall, **series}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", choices=("matched", "paper"), default="matched")
    parser.add_argument("--archs", default="bpe,aunet1,aunet2,aunet3,aunet4")
    parser.add_argument("--budget", type=float, default=1e15, help="training FLOPs the matched arms are sized for")
    parser.add_argument("--precision", default="32-true,bf16-mixed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--skip", type=int, default=5, help="warm-up steps left out of each repeat's median")
    parser.add_argument("--window", type=int, default=1024, help="bytes per training window")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--peak", type=float, default=None, help="peak FLOP/s per device (default: measured)")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available() and args.accelerator in ("auto", "gpu", "cuda")
    if args.sizes == "paper" and not cuda:
        print("train_throughput: --sizes paper needs a GPU (1B-class models in fp32 with AdamW)", file=sys.stderr)
        return 2

    import logging

    from aunet_lab.data.corpus import prepare
    from aunet_lab.data.manifest import load_manifest
    from aunet_lab.demo import write_embedded_corpus
    from aunet_lab.models.sizing import model_flops, preset_config
    from aunet_lab.data.datamodule import measure_training_stream
    from aunet_lab.training.arms import matched_models, with_model
    from aunet_lab.training.callbacks import load_peak, measure_peak_flops, save_peak

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    root = Path(args.work or tempfile.mkdtemp(prefix="train-throughput-"))
    manifest = write_embedded_corpus(root / "corpus")
    prepare(load_manifest(manifest), root / "cache")
    archs = args.archs.split(",")
    precisions = args.precision.split(",")

    device = "cuda" if cuda else "cpu"
    peaks = {}
    for precision in precisions:
        dtype = torch.bfloat16 if precision.startswith("bf16") else torch.float32
        key = str(dtype).replace("torch.", "")
        peaks[precision] = args.peak or load_peak(root / "cache", key, device)
        if not peaks[precision]:
            found = measure_peak_flops(dtype, device, 4096 if cuda else 2048)
            save_peak(root / "cache", found)
            peaks[precision] = found["flops"]

    first = base_config(root, manifest, args, precisions[0])
    measured = measured_units(first)
    pooled = measured["all"]
    if args.sizes == "matched":
        models = matched_models(args.budget, archs, measured=measured, seq_len_bytes=args.window, vocab_size=args.vocab)
    else:
        models = {a: preset_config(PAPER_ARMS[a]) for a in archs}
    results = []
    for precision in precisions:
        for arch in archs:
            model = models[arch]
            config = with_model(base_config(root, manifest, args, precision), model)
            config.trainer.peak_flops = peaks[precision]
            # The run's own FLOPs per byte: its training stream measured as training measures it.
            stream, window = measure_training_stream(dataclasses.replace(config.data, arch=config.model.arch))
            fpb = model_flops(model, window, stream)
            runs = [one_run(config, f"{arch}-{precision}-{r}", args.skip) for r in range(args.repeats)]
            row = {"arch": arch, "precision": precision, "shape": _shape(model),
                   "flops_per_byte": fpb.total, "head_flops_per_byte": fpb.head, "runs": runs}
            for key in ("throughput/bytes_per_s", "throughput/flops_per_s", "throughput/mfu"):
                row[key.split("/")[1]] = statistics.median(r[key] for r in runs)
            results.append(row)
            print(f"{arch:7s} {precision:10s} {row['bytes_per_s']:10.0f} bytes/s  "
                  f"{row['flops_per_s'] / 1e9:7.1f} GFLOP/s  MFU {row['mfu']:.3f}", file=sys.stderr)

    ratios = {}
    for precision in precisions:
        by = {r["arch"]: r for r in results if r["precision"] == precision}
        if "bpe" not in by:
            continue
        for arch, r in by.items():
            if arch != "bpe":
                ratios[f"{arch}/bpe bytes/s ({precision})"] = r["bytes_per_s"] / by["bpe"]["bytes_per_s"]
                ratios[f"{arch}/bpe achieved FLOP/s ({precision})"] = r["flops_per_s"] / by["bpe"]["flops_per_s"]
    if len(precisions) > 1:
        for arch in archs:
            a = next(r for r in results if r["arch"] == arch and r["precision"] == precisions[0])
            b = next(r for r in results if r["arch"] == arch and r["precision"] == precisions[1])
            ratios[f"{arch} {precisions[1]}/{precisions[0]} bytes/s"] = b["bytes_per_s"] / a["bytes_per_s"]
    report = {
        "command": "python benchmarks/train_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"platform": platform.platform(), "device": torch.cuda.get_device_name() if cuda else "cpu",
                    "threads": torch.get_num_threads(), "torch": torch.__version__},
        "sizes": args.sizes, "budget": args.budget, "peaks": peaks, "bytes_per_token": pooled["bytes_per_token"],
        "bytes_per_unit": pooled["bytes_per_unit"], "results": results, "ratios": ratios,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"train_throughput_{args.sizes}"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1))
    lines = [f"{args.sizes} sizes" + (f" (budget {args.budget:.0e} FLOPs)" if args.sizes == "matched" else "")
             + f", {args.window}-byte windows x {args.batch}, {args.steps} steps, median of {args.repeats} repeats; "
             f"peak {', '.join(f'{p}: {v / 1e9:.0f} GFLOP/s' for p, v in peaks.items())}", "",
             "| arm | precision | dims x layers | FLOPs/byte | bytes/s | achieved GFLOP/s | MFU |", "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['arch']} | {r['precision']} | {r['shape']} | {r['flops_per_byte']:.3g} | "
                     f"{r['bytes_per_s']:.0f} | {r['flops_per_s'] / 1e9:.1f} | {r['mfu']:.3f} |")
    lines += ["", "| ratio | value |", "|---|---|"] + [f"| {k} | {v:.2f} |" for k, v in ratios.items()]
    markdown = "\n".join(lines)
    (out / f"{stem}.md").write_text(markdown + "\n")
    print(markdown)
    return 0


def _shape(model) -> str:
    if hasattr(model, "stages"):
        return "; ".join(f"{s.dim}x{s.layers}" for s in model.stages)
    return f"{model.dim}x{model.layers}"


if __name__ == "__main__":
    sys.exit(main())
