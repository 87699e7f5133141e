"""Where a smoke-study trial's wall time goes, and how close ``sweep --plan``'s estimate comes.

Runs cells of ``studies/smoke.yaml`` (one trial each, one worker) in a scratch folder, with trials
forked from the sweep's fork server (the default) and, for comparison, started as fresh
interpreters (``AUNET_LAB_TRIAL_START=spawn``). Per trial: the phases of its ``timings.json``
(process start and imports, data, tokenizer, training steps, validation, checkpoints, test, export,
samples, logging), the share in training steps and evaluation, its process time (fork or interpreter
start to the end of training, from ``timings.json``), its wall time as Optuna recorded it (the first
trial's includes the wait for the fork server's imports), and the plan's estimate for it; the whole
sweep's wall time against the plan's estimate for the study. Medians over ``--repeats`` runs.

    python benchmarks/trial_breakdown.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ("training steps", "validation", "test")


def sweep(study: Path, folder: Path, cells: str, mode: str, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AUNET_LAB_TRIAL_START": mode}
    command = [sys.executable, "-m", "aunet_lab.cli", "sweep", str(study), "--set", "tune.trials=1", "--cells", cells,
               "--output-dir", str(folder / "out"), "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}", *extra]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"sweep failed ({mode}): {result.stderr[-2000:]}")
    return result


def trial_walls(folder: Path, study_name: str) -> dict[str, float]:
    import optuna

    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(folder / "out" / study_name / "optuna.journal")))
    walls = {}
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        for t in optuna.load_study(study_name=summary.study_name, storage=storage).get_trials():
            if t.datetime_complete is not None:
                walls[summary.study_name.split("/", 1)[1]] = (t.datetime_complete - t.datetime_start).total_seconds()
    return walls


def one_run(study: Path, cells: str, mode: str, estimates: dict[str, float]) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="trial-breakdown-"))
    try:
        start = time.perf_counter()
        sweep(study, folder, cells, mode)
        sweep_seconds = time.perf_counter() - start
        walls = trial_walls(folder, "smoke")
        trials = {}
        for timings in (folder / "out" / "smoke" / "runs").glob("*/timings.json"):
            cell = timings.parent.name.rsplit("-t", 1)[0]
            data = json.loads(timings.read_text())
            phases = data["seconds"]
            wall = walls[cell]
            trials[cell] = {"wall_s": wall, "phases_s": phases, "process_s": data["total"],
                            "training_and_evaluation_share": sum(phases.get(k, 0.0) for k in WORK) / data["total"],
                            "plan_estimate_s": estimates[cell], "estimate_over_process": estimates[cell] / data["total"]}
        return {"sweep_s": sweep_seconds, "trials": trials}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default=str(ROOT / "studies" / "smoke.yaml"))
    parser.add_argument("--cells", default="bpe-100KB-en,aunet2-100KB-en")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    study = Path(args.study)

    folder = Path(tempfile.mkdtemp(prefix="trial-breakdown-plan-"))
    plan = json.loads(sweep(study, folder, args.cells, "fork", "--plan", "--json").stdout)
    shutil.rmtree(folder, ignore_errors=True)
    estimates = {c["cell"]: c["estimated_seconds"] / c["trials"] for c in plan["cells"] if c["estimated_seconds"]}
    study_estimate = plan["estimated_hours"] * 3600

    runs = {"fork": [], "spawn": []}
    for r in range(args.repeats):
        for mode in runs:
            runs[mode].append(one_run(study, args.cells, mode, estimates))
            print(f"repeat {r + 1}/{args.repeats} {mode}: "
                  + ", ".join(f"{c} {t['wall_s']:.1f}s" for c, t in sorted(runs[mode][-1]["trials"].items())),
                  file=sys.stderr)

    def med(mode, cell, *path):
        values = []
        for run in runs[mode]:
            value = run["trials"][cell]
            for key in path:
                value = value.get(key, 0.0)
            values.append(value)
        return statistics.median(values)

    summary = {}
    for cell in sorted(estimates):
        phases = sorted({k for run in runs["fork"] for k in run["trials"][cell]["phases_s"]})
        summary[cell] = {
            "wall_s": {mode: med(mode, cell, "wall_s") for mode in runs},
            "process_s": {mode: med(mode, cell, "process_s") for mode in runs},
            "training_and_evaluation_share": {mode: med(mode, cell, "training_and_evaluation_share") for mode in runs},
            "phases_s": {k: med("fork", cell, "phases_s", k) for k in phases},
            "spawn_imports_s": med("spawn", cell, "phases_s", "imports"),
            "plan_estimate_s": estimates[cell],
            "estimate_over_process": estimates[cell] / med("fork", cell, "process_s"),
        }
    report = {
        "command": "python benchmarks/trial_breakdown.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "repeats": args.repeats,
        "sweep_s": {mode: statistics.median(r["sweep_s"] for r in runs[mode]) for mode in runs},
        "plan_study_estimate_s": study_estimate,
        "cells": summary,
        "runs": runs,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "trial_breakdown.json").write_text(json.dumps(report, indent=1))
    lines = [f"`{report['command']}` (medians of {args.repeats})", "",
             "| cell | trial process, forked | trial process, fresh interpreter | in training + evaluation "
             "(forked / fresh) | plan estimate | estimate / forked trial |", "|---|---|---|---|---|---|"]
    for cell, s in summary.items():
        share = s["training_and_evaluation_share"]
        lines.append(f"| {cell} | {s['process_s']['fork']:.1f} s | {s['process_s']['spawn']:.1f} s | "
                     f"{share['fork']:.0%} / {share['spawn']:.0%} | {s['plan_estimate_s']:.1f} s | "
                     f"{s['estimate_over_process']:.2f} |")
    lines += ["", f"Whole sweep (both cells, one worker): {report['sweep_s']['fork']:.1f} s forked, "
                  f"{report['sweep_s']['spawn']:.1f} s fresh interpreters; the plan estimates {study_estimate:.1f} s "
                  f"(estimate / forked sweep {study_estimate / report['sweep_s']['fork']:.2f}; the sweep's "
                  "own start, corpus check and summary are not in the estimate)."]
    lines += ["", "| phase (forked trial) | " + " | ".join(summary) + " |", "|---|" + "---|" * len(summary)]
    phases = sorted({k for s in summary.values() for k in s["phases_s"]}, key=lambda k: -max(
        s["phases_s"].get(k, 0) for s in summary.values()))
    for k in phases:
        lines.append(f"| {k} | " + " | ".join(f"{s['phases_s'].get(k, 0):.2f} s" for s in summary.values()) + " |")
    (out / "trial_breakdown.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
