"""Forward+backward throughput of AU-Net against the BPE baseline, side by side in one process.

    python benchmarks/model_throughput.py [--budget 3e13] [--repeats 5] [--steps 4] [--out benchmarks/results]

* Paper-sized: BPE, AU-Net-2 and AU-Net-3 sized by the paper's rules for the same training budget
  (``match_compute``: Table 9 shapes scaled down), and the flat byte transformer of the BPE width.
  Bytes/s ratios against BPE, to set beside the paper's H100 ratios (AU-Net-2 1.07x and AU-Net-3
  0.86x BPE; AU-Net-2 4.8x the flat byte transformer).
* Matched FLOPs per byte: achieved FLOP/s (bytes/s x analytic FLOPs per byte, head included) of
  AU-Net-k over BPE's: what pooling, upsampling and the stage bookkeeping cost (aim: >= 0.95).
* Generation: cached generation against recomputing the full forward pass, bytes/s at 1 kB out.
* The split function's own throughput (levels are precomputed by the data loader, not per step).

Real text: windows of the embedded UDHR (13 languages); BPE bytes per token measured with a
`tokenizers` byte-level BPE trained on the same text. Medians over ``--repeats``; JSON + markdown.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from aunet_lab.data.samples import sample_languages, udhr_articles
from aunet_lab.data.splitting import byte_levels, byte_levels_batch, level_mask
from aunet_lab.models import AUNet, AUNetConfig, StageConfig, TokenTransformer
from aunet_lab.models.generate import Generator
from aunet_lab.models.sizing import flops_per_byte, match_compute

PAPER_RATIOS = {"aunet2/bpe": 1.07, "aunet3/bpe": 0.86, "aunet2/bytes": 4.8}


def corpus() -> list[bytes]:
    return [("\n".join(udhr_articles(lang)) + "\n").encode() for lang in sample_languages()]


def measure_bytes_per_token(docs: list[bytes], vocab: int) -> tuple[float, object]:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    texts = [d.decode() for d in docs]
    tok.train_from_iterator(texts, trainer)
    n_tokens = sum(len(e.ids) for e in tok.encode_batch(texts))
    return sum(len(d) for d in docs) / n_tokens, tok


def windows(docs: list[bytes], n: int, length: int, stages: int, split: str, gen: torch.Generator):
    ids, levels = [], []
    for _ in range(n):
        d = docs[int(torch.randint(len(docs), (1,), generator=gen))]
        full_ids = torch.tensor([256] + list(d))
        full_levels = level_mask(d, split).clamp(max=stages - 1)
        off = int(torch.randint(len(full_ids) - length - 1, (1,), generator=gen))
        ids.append(full_ids[off : off + length + 1])
        levels.append(full_levels[off : off + length + 1])
    return torch.stack(ids), torch.stack(levels)


def time_steps(model, batch, steps: int, repeats: int, levels=None) -> list[float]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    inputs, targets = batch[:, :-1], batch[:, 1:]
    lv = None if levels is None else levels[:, :-1]

    def one():
        logits = model(inputs, lv) if lv is not None else model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        one()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            one()
        out.append(steps / (time.perf_counter() - start))
    return out  # steps per second, one value per repeat


@torch.no_grad()
def generation_rates(model: AUNet, prompt: torch.Tensor, new: int, repeats: int) -> dict[str, float]:
    cached, recompute = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        Generator(model).generate(prompt, new)
        cached.append(new / (time.perf_counter() - start))
    ids = prompt.clone()
    start = time.perf_counter()
    for _ in range(new):
        nxt = model(ids)[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], 1)
    recompute.append(new / (time.perf_counter() - start))
    return {"cached_bytes_per_s": statistics.median(cached), "recompute_bytes_per_s": statistics.median(recompute)}


@torch.no_grad()
def batched_generation(aunet: AUNet, bpe: TokenTransformer, tokenizer, docs: list[bytes], bpt: float, new_bytes: int,
                       rows: int, repeats: int) -> dict[str, float]:
    """Cached generation bytes/s of AU-Net and BPE at matched compute, one prompt and ``rows``
    prompts at once (64-byte prompts; BPE generates new_bytes / bytes-per-token tokens, counted as
    that many bytes)."""
    out = {}
    for count in (1, rows):
        texts = [docs[i % len(docs)][:64] for i in range(count)]
        byte_prompt = torch.tensor([[256] + list(t) for t in texts])
        encoded = [tokenizer.encode(t.decode("utf-8", "ignore")).ids for t in texts]
        width = min(len(e) for e in encoded)
        token_prompt = torch.tensor([e[:width] for e in encoded])
        new_tokens = max(1, round(new_bytes / bpt))
        for name, model, prompt, new, per in (("aunet2", aunet, byte_prompt, new_bytes, 1.0),
                                              ("bpe", bpe, token_prompt, new_tokens, bpt)):
            runs = []
            for _ in range(repeats):
                start = time.perf_counter()
                Generator(model).generate(prompt, new)
                runs.append(count * new * per / (time.perf_counter() - start))
            out[f"{name} {count} prompt(s) bytes/s"] = statistics.median(runs)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=1e15, help="training FLOPs the models are sized for")
    parser.add_argument("--ratio", type=float, default=10.0, help="data-to-model ratio (tokens per FLOP/token)")
    parser.add_argument("--seq-bytes", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=4, help="training steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gen-bytes", type=int, default=1024)
    parser.add_argument("--gen-rows", type=int, default=8, help="prompts generated at once for the batched figures")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    docs = corpus()
    bpt, tokenizer = measure_bytes_per_token(docs, args.vocab)
    # Bytes per unit of every AU-Net stage, measured on the same text.
    all_bytes = b"".join(docs)
    levels_all = torch.cat([byte_levels(d, "word") for d in docs])
    bpu = [1.0] + [len(all_bytes) / int((levels_all >= k).sum()) for k in (1, 2, 3)]
    small = dict(vocab_size=args.vocab, seq_len_bytes=args.seq_bytes, head_dim=32, width_multiple=32,
                 byte_layers=2, byte_window=256, ffn_multiple_of=32)
    matched = match_compute(args.budget, args.ratio, stages=(2, 3), bytes_per_token=bpt,
                            bytes_per_unit={2: bpu[:2], 3: bpu[:3]}, **small)
    bpe_cfg = matched.bpe
    flat = AUNetConfig([StageConfig(bpe_cfg.dim, bpe_cfg.layers, bpe_cfg.heads)], ffn_multiple_of=32)
    arms = {"bpe": bpe_cfg, "aunet2": matched.aunet[2], "aunet3": matched.aunet[3], "bytes": flat}

    seq_tokens = int(args.seq_bytes / bpt)
    token_batch = torch.tensor([tokenizer.encode(docs[i % len(docs)].decode()).ids[: seq_tokens + 1]
                                for i in range(args.batch)])
    results = {}
    for name, cfg in arms.items():
        if name == "bpe":
            model = TokenTransformer(cfg)
            rates = time_steps(model, token_batch, args.steps, args.repeats)
            units_per_step = token_batch[:, 1:].numel()
            bytes_per_step = units_per_step * bpt
            fpb = flops_per_byte(cfg, seq_tokens, bytes_per_token=bpt)
        else:
            stages = cfg.n_stages
            batch, levels = windows(docs, args.batch, args.seq_bytes, stages, "word", gen)
            model = AUNet(cfg)
            rates = time_steps(model, batch, args.steps, args.repeats, levels if stages > 1 else None)
            bytes_per_step = batch[:, 1:].numel()
            fpb = flops_per_byte(cfg, args.seq_bytes, bpu[:stages])
        bytes_s = [r * bytes_per_step for r in rates]
        med = statistics.median(bytes_s)
        results[name] = {
            "config": cfg.to_dict(),
            "bytes_per_s": med,
            "bytes_per_s_runs": bytes_s,
            "flops_per_byte": fpb.total,
            "head_flops_per_byte": fpb.head,
            "achieved_flops_per_s": med * fpb.total_with_head,
        }
        print(f"{name:7s} {med:10.0f} bytes/s  {fpb.total:.3e} FLOPs/byte (+{fpb.head:.2e} head)", file=sys.stderr)

    # Split-function throughput (done once per document by the loader).
    text = all_bytes
    split_rates = {}
    for spec in ("word", "script", "stride:4"):
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            byte_levels_batch(docs, spec)
            runs.append(len(text) / (time.perf_counter() - start))
        split_rates[spec] = statistics.median(runs)

    model2 = AUNet(matched.aunet[2]).eval()
    prompt = torch.tensor([[256] + list(docs[0][:64])])
    gen_rates = generation_rates(model2, prompt, args.gen_bytes, max(1, args.repeats // 2))
    torch.manual_seed(0)
    gen_rates.update(batched_generation(model2, TokenTransformer(bpe_cfg).eval(), tokenizer, docs, bpt, args.gen_bytes,
                                        args.gen_rows, max(1, args.repeats // 2)))

    bpe = results["bpe"]
    ratios = {
        "aunet2/bpe bytes/s": results["aunet2"]["bytes_per_s"] / bpe["bytes_per_s"],
        "aunet3/bpe bytes/s": results["aunet3"]["bytes_per_s"] / bpe["bytes_per_s"],
        "aunet2/bytes bytes/s": results["aunet2"]["bytes_per_s"] / results["bytes"]["bytes_per_s"],
        "aunet2/bpe achieved FLOP/s": results["aunet2"]["achieved_flops_per_s"] / bpe["achieved_flops_per_s"],
        "aunet3/bpe achieved FLOP/s": results["aunet3"]["achieved_flops_per_s"] / bpe["achieved_flops_per_s"],
        "cached/recompute generation": gen_rates["cached_bytes_per_s"] / gen_rates["recompute_bytes_per_s"],
        "aunet2/bpe cached generation bytes/s, 1 prompt": gen_rates["aunet2 1 prompt(s) bytes/s"]
        / gen_rates["bpe 1 prompt(s) bytes/s"],
        f"aunet2/bpe cached generation bytes/s, {args.gen_rows} prompts": gen_rates[f"aunet2 {args.gen_rows} prompt(s) bytes/s"]
        / gen_rates[f"bpe {args.gen_rows} prompt(s) bytes/s"],
    }
    report = {
        "command": "python benchmarks/model_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(), "torch": torch.__version__},
        "bytes_per_token": bpt,
        "bytes_per_unit": bpu,
        "budget": args.budget,
        "arms": results,
        "split_bytes_per_s": split_rates,
        "generation": gen_rates,
        "ratios": ratios,
        "paper_h100_ratios": PAPER_RATIOS,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model_throughput.json").write_text(json.dumps(report, indent=1))
    lines = [
        f"Budget {args.budget:.0e} FLOPs, {args.seq_bytes}-byte windows x {args.batch}, bytes/token {bpt:.2f}, "
        f"bytes/unit {', '.join(f'{b:.2f}' for b in bpu[1:])}; medians of {args.repeats} repeats.",
        "",
        "| arm | dims / layers | bytes/s | FLOPs/byte | achieved GFLOP/s |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        cfg = arms[name]
        shape = (f"{cfg.dim} x {cfg.layers}" if name == "bpe"
                 else "; ".join(f"{s.dim}x{s.layers}" for s in cfg.stages))
        lines.append(f"| {name} | {shape} | {r['bytes_per_s']:.0f} | {r['flops_per_byte']:.3g} | "
                     f"{r['achieved_flops_per_s'] / 1e9:.2f} |")
    lines += ["", "| ratio | here | paper (H100) |", "|---|---|---|"]
    for key, value in ratios.items():
        paper = PAPER_RATIOS.get(key.split(" ")[0], "")
        paper_s = f"{paper:.2f}" if isinstance(paper, float) and "FLOP" not in key and "gen" not in key else ""
        lines.append(f"| {key} | {value:.2f} | {paper_s} |")
    lines += ["", "| split function | MB/s |", "|---|---|"]
    lines += [f"| {k} | {v / 1e6:.2f} |" for k, v in split_rates.items()]
    lines += ["", f"Generation (AU-Net-2, {args.gen_bytes} bytes): cached {gen_rates['cached_bytes_per_s']:.0f} "
              f"bytes/s, recomputing the full forward {gen_rates['recompute_bytes_per_s']:.0f} bytes/s.", "",
              "| cached generation at matched compute | bytes/s |", "|---|---|"]
    lines += [f"| {k.replace(' bytes/s', '')} | {v:.0f} |" for k, v in gen_rates.items() if "prompt" in k]
    markdown = "\n".join(lines)
    (out / "model_throughput.md").write_text(markdown + "\n")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
