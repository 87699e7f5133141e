"""torch.compile changes no number, for every arm: BPE, AU-Net-2 and AU-Net-3 trained a few AdamW
steps eager and compiled (Inductor) from the same weights on the same UDHR text, fp32; the largest
loss difference per arm (the suite checks AU-Net-2 alone, ``tests/test_compile.py``).

    python benchmarks/compile_check.py [--steps 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from aunet_lab.data.samples import udhr_articles
from aunet_lab.models import AUNet, AUNetConfig, TokenTransformer, TransformerConfig

TOLERANCE = 1e-5


def arms(window: int) -> dict:
    out = {"bpe": TransformerConfig.tiny(vocab_size=258, dim=64)}
    for stages in (2, 3):
        config = AUNetConfig.tiny(stages=stages, dim=32)
        for k, stage in enumerate(config.stages[1:], start=1):
            stage.max_len = window // (2 * k)  # static coarse lengths: one graph, no recompiles
        out[f"aunet{stages}"] = config
    return out


def run_steps(model, ids, levels, steps: int, compiled: bool) -> list[float]:
    forward = torch.compile(model, dynamic=False) if compiled else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    args = (ids[:, :-1],) if levels is None else (ids[:, :-1], levels[:, :-1])
    losses = []
    for _ in range(steps):
        logits = forward(*args)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), ids[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    text = "\n".join(udhr_articles("en")).encode()
    ids = torch.tensor(list(text[: 2 * (args.window + 1)])).view(2, args.window + 1).to(args.device)
    results = {}
    for name, config in arms(args.window).items():
        torch.manual_seed(0)
        model = (TokenTransformer(config) if name == "bpe" else AUNet(config)).to(args.device)
        twin = copy.deepcopy(model)
        levels = None if name == "bpe" else model.compute_levels(ids)
        start = time.perf_counter()
        eager = run_steps(model, ids, levels, args.steps, compiled=False)
        compiled = run_steps(twin, ids, levels, args.steps, compiled=True)
        diff = max(abs(a - b) for a, b in zip(eager, compiled))
        results[name] = {"eager": eager, "compiled": compiled, "max_abs_diff": diff, "within": diff <= TOLERANCE,
                         "seconds": time.perf_counter() - start}
        print(f"{name}: losses {', '.join(f'{v:.6f}' for v in eager)}; compiled - eager at most {diff:.2e} "
              f"({'within' if diff <= TOLERANCE else 'OVER'} {TOLERANCE:g}; {results[name]['seconds']:.0f} s)",
              file=sys.stderr)
    report = {"command": "python benchmarks/compile_check.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": {"platform": platform.platform(), "torch": torch.__version__, "device": args.device},
              "tolerance": TOLERANCE, "arms": results}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compile_check.json").write_text(json.dumps(report, indent=1))
    return 0 if all(r["within"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
