"""Study throughput: trials per hour of the smoke study with 1 and 2 workers, and the training
compute that median pruning saves against running every trial to the end, with the best values
it reaches either way.

    python benchmarks/sweep_throughput.py [--offline] [--trials 4] [--out benchmarks/results]

Three runs of the smoke study (``studies/smoke.yaml``; ``--offline``: its UDHR variant from the
demo), each in a fresh folder and MLflow store: 1 worker with pruning, 2 workers with pruning,
2 workers without. Compute is what MLflow's ``compute/flops`` says each trial trained (FLOPs per
byte x bytes seen), summed over trials.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def run_variant(work: Path, label: str, workers: int, pruner: str, trials: int, offline: bool) -> dict:
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from aunet_lab.demo import offline_overrides
    from aunet_lab.sweep.spec import load_spec

    folder = work / label
    overrides = {"output_dir": str(folder), "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
                 "tune": {"trials": trials}, "base": {"data": {"manifest": str(ROOT / "data_manifests" /
                                                                         "libreoffice-help.yaml")}}}
    if pruner == "none":
        overrides["pruner"] = {"name": "none"}
    if offline:
        extra = offline_overrides(work / "cache")
        overrides["base"] = extra["base"]
        overrides["axes"] = extra["axes"]
    spec = load_spec(ROOT / "studies" / "smoke.yaml", overrides)
    path = folder / "spec.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec.raw, allow_unicode=True))
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "aunet_lab.cli", "sweep", str(path), "--workers", str(workers)],
                            capture_output=True, text=True, cwd=folder)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"{label}: sweep failed:\n{result.stderr[-3000:]}")
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.get_experiment_by_name(spec.name)
    runs = [r for r in client.search_runs([exp.experiment_id], max_results=5000) if r.data.tags.get("mlflow.parentRunId")]
    flops = sum(r.data.metrics.get("compute/flops", 0.0) for r in runs)
    summary = pd.read_csv(spec.folder / "summary.csv").to_dict("records")
    states = [r.info.status for r in runs]
    return {"label": label, "workers": workers, "pruner": pruner, "seconds": elapsed, "trials": len(runs),
            "trials_per_hour": len(runs) / elapsed * 3600, "pruned": states.count("KILLED"),
            "compute_flops": flops, "best_val": {row["cell"]: row["val_objective"] for row in summary},
            "mean_best_val": statistics.fmean(row["val_objective"] for row in summary)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--offline", action="store_true", help="the UDHR variant (no Debian packages needed)")
    parser.add_argument("--trials", type=int, default=4, help="trials per cell (the pruner needs a few)")
    parser.add_argument("--work", default=None)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="sweep-throughput-"))
    os.environ.setdefault("AUNET_LAB_CACHE", str(work / "cache"))
    variants = [("1-worker-pruned", 1, "median"), ("2-workers-pruned", 2, "median"), ("2-workers-unpruned", 2, "none")]
    results = []
    for label, workers, pruner in variants:
        results.append(run_variant(work, label, workers, pruner, args.trials, args.offline))
        r = results[-1]
        print(f"{label}: {r['trials']} trials in {r['seconds']:.0f}s ({r['trials_per_hour']:.0f}/h), "
              f"{r['pruned']} pruned, {r['compute_flops']:.3g} FLOPs, mean best val {r['mean_best_val']:.4f}",
              file=sys.stderr)
    one, two, full = results
    ratios = {"trials/hour, 2 workers / 1": two["trials_per_hour"] / one["trials_per_hour"],
              "compute, pruned / unpruned (2 workers)": two["compute_flops"] / full["compute_flops"],
              "mean best val, pruned - unpruned": two["mean_best_val"] - full["mean_best_val"]}
    report = {"command": "python benchmarks/sweep_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}, "results": results,
              "ratios": ratios}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep_throughput.json").write_text(json.dumps(report, indent=1))
    lines = [f"smoke study{' (offline, UDHR)' if args.offline else ''}, {args.trials} trials per cell, 8 cells", "",
             "| run | trials | pruned | wall time | trials/hour | training compute (FLOPs) | mean best val BPB |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['label']} | {r['trials']} | {r['pruned']} | {r['seconds']:.0f}s | {r['trials_per_hour']:.0f} | "
                     f"{r['compute_flops']:.3g} | {r['mean_best_val']:.4f} |")
    lines += ["", "| ratio | value |", "|---|---|"] + [f"| {k} | {v:.3f} |" for k, v in ratios.items()]
    markdown = "\n".join(lines)
    (out / "sweep_throughput.md").write_text(markdown + "\n")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
