"""GPU training throughput and MFU of BPE, AU-Net-2 and AU-Net-3 at matched compute, bf16 autocast +
torch.compile, side by side in one process; one JSON per arm, written as each arm finishes.

    python benchmarks/gpu.py [--budget 1e20] [--seconds 25] [--out benchmarks/gpu-results]
    bash benchmarks/gpu.sh        # the same, checking the machine first (a GPU, torch, regex)

Plain training steps on the model (AdamW, cross-entropy), not the tracked Lightning path: the GPU
machine has torch but no MLflow, Optuna or network. Shapes: ``match_compute`` at the paper's
defaults (4.56 bytes per BPE token, 128k vocabulary, 8 kB sequences, head dim 64, byte window 512)
for ``--budget`` FLOPs; coarse stages get a static length cap (``max_len``, 1.5x the expected units)
so compile sees fixed shapes. Inputs are random ids with AU-Net boundaries every ``--word-bytes``
bytes (throughput does not depend on the text). MFU = achieved FLOP/s (analytic FLOPs per byte, head
included) / the bf16 matmul peak measured at the start. On a CPU (``--device cpu``, tiny budget)
it runs as a check of the script itself.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aunet_lab.models import AUNet, TokenTransformer  # noqa: E402
from aunet_lab.models.sizing import PAPER_BYTES_PER_TOKEN, flops_per_byte, match_compute  # noqa: E402


def peak_flops(device: str, dtype: torch.dtype, n: int) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = 0.0
    for _ in range(5):
        _sync(device)
        start = time.perf_counter()
        for _ in range(10):
            torch.mm(a, b)
        _sync(device)
        best = max(best, 10 * 2 * n**3 / (time.perf_counter() - start))
    return best


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def batch_for(arm: str, config, args, bpu: list[float]) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """(ids [B, T+1], levels or None, bytes per row)."""
    gen = torch.Generator().manual_seed(0)
    if arm == "bpe":
        tokens = int(args.seq_bytes / args.bytes_per_token)
        ids = torch.randint(0, config.vocab_size, (args.batch, tokens + 1), generator=gen)
        return ids, None, args.seq_bytes
    ids = torch.randint(0, 256, (args.batch, args.seq_bytes + 1), generator=gen)
    levels = torch.zeros_like(ids)
    pos = torch.arange(args.seq_bytes + 1)
    for k in range(1, config.n_stages):  # level k every bpu[k] bytes: words, pairs of words, ...
        levels[:, pos % int(bpu[k]) == 0] = k
    return ids, levels, args.seq_bytes


def measure(arm: str, config, args, bpu: list[float], peak: float, out: Path) -> dict:
    device = args.device
    torch.manual_seed(0)
    model = (TokenTransformer(config) if arm == "bpe" else AUNet(config)).to(device)
    report = flops_per_byte(config, args.seq_bytes if arm != "bpe" else int(args.seq_bytes / args.bytes_per_token),
                            None if arm == "bpe" else bpu[:config.n_stages], args.bytes_per_token)
    ids, levels, row_bytes = batch_for(arm, config, args, bpu)
    ids = ids.to(device)
    levels = levels.to(device) if levels is not None else None
    inputs, targets = ids[:, :-1], ids[:, 1:]
    lv = levels[:, :-1] if levels is not None else None
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.startswith("cuda"))
    forward = torch.compile(model) if args.compile else model
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32

    def step() -> torch.Tensor:
        with torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype != torch.float32):
            logits = forward(inputs, lv) if lv is not None else forward(inputs)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()  # no host sync inside the timed loop

    start = time.perf_counter()
    for _ in range(args.warmup):  # the first compiles
        step()
    _sync(device)
    warm = time.perf_counter() - start
    rates, deadline = [], time.perf_counter() + args.seconds
    while len(rates) < 3 or (time.perf_counter() < deadline and len(rates) < args.max_repeats):
        _sync(device)
        t = time.perf_counter()
        for _ in range(args.steps):
            step()
        _sync(device)
        rates.append(args.steps * args.batch * row_bytes / (time.perf_counter() - t))
    bytes_per_s = statistics.median(rates)
    result = {"arm": arm, "params": sum(p.numel() for p in model.parameters()),
              "flops_per_byte": report.total, "flops_per_byte_with_head": report.total_with_head,
              "bytes_per_s": bytes_per_s, "bytes_per_s_repeats": rates,
              "flops_per_s": bytes_per_s * report.total_with_head,
              "mfu": bytes_per_s * report.total_with_head / peak, "warmup_and_compile_s": warm,
              "batch": args.batch, "seq_bytes": args.seq_bytes, "dtype": args.dtype, "compile": args.compile,
              "config": repr(config)}
    if device.startswith("cuda"):
        result["max_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
    (out / f"{arm}.json").write_text(json.dumps(result, indent=1))
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda or cpu")
    parser.add_argument("--budget", type=float, default=1e20, help="training FLOPs the arms are sized for")
    parser.add_argument("--ratio", type=float, default=10.0, help="data-to-model ratio (BPE tokens per FLOP/token)")
    parser.add_argument("--seq-bytes", type=int, default=8192, help="bytes per sequence (the paper's 8 kB)")
    parser.add_argument("--batch", type=int, default=8, help="sequences per step")
    parser.add_argument("--bytes-per-token", type=float, default=PAPER_BYTES_PER_TOKEN, help="BPE bytes per token")
    parser.add_argument("--word-bytes", type=int, default=6, help="bytes per word (AU-Net's level-1 units)")
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16", help="autocast dtype")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="eager mode")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    parser.add_argument("--steps", type=int, default=5, help="steps per timed repeat")
    parser.add_argument("--seconds", type=float, default=25.0, help="timed seconds per arm (at least 3 repeats)")
    parser.add_argument("--max-repeats", type=int, default=20, help="timed repeats per arm at most")
    parser.add_argument("--arms", default="bpe,aunet2,aunet3", help="comma-separated: bpe, aunet2, aunet3")
    parser.add_argument("--out", default="benchmarks/gpu-results", help="folder for one JSON per arm")
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
    word = max(1, round(args.word_bytes))  # whole bytes, so that every pair boundary is a word boundary
    bpu = [1.0, float(word), 2.0 * word, 4.0 * word]
    matched = match_compute(args.budget, args.ratio, stages=(2, 3), bytes_per_token=args.bytes_per_token,
                            seq_len_bytes=args.seq_bytes, bytes_per_unit={2: bpu[:2], 3: bpu[:3]})
    configs = {"bpe": matched.bpe, "aunet2": matched.aunet[2], "aunet3": matched.aunet[3]}
    for k in (2, 3):  # static coarse lengths for compile
        for i, stage in enumerate(configs[f"aunet{k}"].stages[1:], start=1):
            stage.max_len = math.ceil(1.5 * args.seq_bytes / bpu[i])
    dtype = torch.bfloat16 if args.dtype == "bf16" and args.device != "cpu" else torch.float32
    peak = peak_flops(args.device, dtype, 8192 if args.device.startswith("cuda") else 1024)
    machine = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else
               (platform.processor() or platform.machine()),
               "torch": torch.__version__, "python": platform.python_version(), "peak_flops": peak,
               "peak_dtype": str(dtype), "budget": args.budget, "argv": sys.argv[1:]}
    (out / "machine.json").write_text(json.dumps(machine, indent=1))
    print(f"{machine['device']}: peak {peak / 1e12:.1f} TFLOP/s ({dtype}); budget {args.budget:.0e} FLOPs", flush=True)
    results = {}
    for arm in args.arms.split(","):
        try:
            results[arm] = r = measure(arm, configs[arm], args, bpu, peak, out)
        except Exception as err:  # out of memory, a compile failure: recorded, the next arm runs
            (out / f"{arm}.json").write_text(json.dumps({"arm": arm, "error": f"{type(err).__name__}: {err}"[:2000]}))
            print(f"{arm}: failed: {type(err).__name__}: {str(err)[:300]}", flush=True)
            continue
        print(f"{arm}: {r['params'] / 1e6:.0f}M params, {r['bytes_per_s'] / 1e3:.1f} kB/s, MFU {r['mfu']:.1%}, "
              f"warm-up+compile {r['warmup_and_compile_s']:.0f}s", flush=True)
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    if "bpe" in results:
        ratios = {f"{a}/bpe": results[a]["bytes_per_s"] / results["bpe"]["bytes_per_s"] for a in results if a != "bpe"}
        (out / "ratios.json").write_text(json.dumps(ratios, indent=1))
        print("bytes/s against BPE: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
