"""How often a 95% interval over a few seeds covers the truth: the percentile bootstrap over seeds
against the Student-t interval the summaries and reports use for a BPB difference paired by seed
(aunet_lab.intervals.seed_interval). The per-seed differences are drawn from a normal distribution
with a known mean; what matters is the number of seeds, not the scale.

    .venv/bin/python benchmarks/interval_coverage.py --trials 4000
"""

from __future__ import annotations

import argparse

import numpy as np

from aunet_lab.intervals import seed_interval


def bootstrap_interval(values: np.ndarray, replicates: int, rng) -> tuple[float, float]:
    draws = values[rng.integers(0, len(values), (replicates, len(values)))].mean(axis=1)
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4000, help="simulated studies per seed count")
    parser.add_argument("--replicates", type=int, default=1000, help="bootstrap replicates")
    parser.add_argument("--seeds", default="2,3,5,10", help="seed counts to simulate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    truth, spread = 0.8, 0.1  # a difference of +0.8 BPB with a seed-to-seed spread of 0.1
    print(f"{'seeds':>5s} {'bootstrap':>10s} {'Student-t':>10s}  ({args.trials} simulated studies each)")
    for n in (int(s) for s in args.seeds.split(",")):
        boot = t = 0
        for _ in range(args.trials):
            values = rng.normal(truth, spread, n)
            lo, hi = bootstrap_interval(values, args.replicates, rng)
            boot += lo <= truth <= hi
            _, lo, hi = seed_interval(values)
            t += lo <= truth <= hi
        print(f"{n:5d} {boot / args.trials:10.3f} {t / args.trials:10.3f}")


if __name__ == "__main__":
    main()
