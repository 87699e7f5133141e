"""`aunet-lab sweep`: run, --plan or --check an Optuna study of many training cells."""

from __future__ import annotations

import sys
from pathlib import Path

from aunet_lab.cli.common import UserError, check_option


def cmd_sweep(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from aunet_lab.config import ConfigError
    from aunet_lab.data.corpus import CorpusError
    from aunet_lab.data.dataconfig import DataConfigError
    from aunet_lab.data.manifest import ManifestError
    from aunet_lab.sweep.spec import load_spec
    from aunet_lab.sweep.storage import StorageError
    from aunet_lab.mlflow_client import TrackingError

    check_option(args.workers >= 1, "--workers", "at least 1", args.workers)
    if args.check and (args.plan or args.json):
        raise UserError("--check: validates only; not with --plan or --json")
    console = Console(stderr=True)
    if not console.is_terminal:
        console = Console(stderr=True, width=200)
    try:
        overrides = {}
        if args.tracking_uri:
            overrides["tracking_uri"] = args.tracking_uri
        if args.output_dir:
            overrides["output_dir"] = args.output_dir
        overrides = _spec_overrides(args.set, overrides)
        spec = load_spec(args.study, overrides)
        spec.overrides = list(args.set)
        if args.plan:
            return _print_plan(spec, console, args.json, args.strict, args.cells)
        if args.json:
            raise UserError("--json: only with --plan (the plan as JSON)")
        if args.check:
            return _check_sweep(spec, args)
        from aunet_lab.sweep.runner import StudyRunner

        runner = StudyRunner(spec, args.storage, args.workers, console, strict=args.strict, cells=args.cells)
        runner.prepare(args.resume)
    except (ConfigError, DataConfigError, ManifestError, CorpusError, StorageError, TrackingError) as err:
        raise UserError(str(err)) from None
    total = sum(sum(spec.trials_wanted(p.cell)) for p in runner.plans)
    console.print(f"study {spec.name}: {len(runner.plans)} cells, {total} trials, {runner.workers} worker(s); "
                  f"Optuna storage {runner.storage_url}; MLflow {runner.tracking_uri} (parent run {runner.parent_run_id})",
                  highlight=False)
    done = [0]

    def progress(outcome):
        done[0] += 1
        value = f"{outcome.value:.4f}" if outcome.value is not None else outcome.reason[:80]
        console.print(f"[{done[0]}] {outcome.cell} trial {outcome.number}: {outcome.state} {value} "
                      f"({outcome.seconds:.0f}s)", highlight=False)

    import signal

    previous = {sig: signal.signal(sig, lambda signum, frame: runner.request_stop(signum))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if console.is_terminal:  # a live table of the cells and their running trials
            from rich.live import Live

            from aunet_lab.sweep.display import StudyDisplay

            with Live(StudyDisplay(runner), console=console, refresh_per_second=1, transient=True):
                runner.run(progress)
        else:  # a log: the line per finished trial is the record
            runner.run(progress)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if runner.stopping is not None:
        return _stopped_sweep(runner, args)
    frame = runner.finish()
    table = Table(title=f"study {spec.name}: best trial per cell (validation objective; test BPB of that trial)")
    columns = ["cell", "shape", "lr", "val_objective", "test_bpb", "complete", "pruned", "failed"]
    for col in columns:
        table.add_column(col, justify="left" if col in ("cell", "shape") else "right")
    for _, row in frame.iterrows():
        table.add_row(*[_fmt(row[c]) for c in columns])
    out = Console()
    (out if out.is_terminal else Console(width=200)).print(table)
    print(f"summary: {spec.folder / 'summary.csv'}; browse: aunet-lab ui --tracking-uri {runner.tracking_uri}")
    if "blocked" in frame and frame["blocked"].any():
        print(f"{int(frame['blocked'].sum())} cell(s) not run: their pretraining has no completed trial "
              f"(see its trial logs under {spec.folder / 'trials'})")
        frame = frame[~frame["blocked"]]
    unfinished = int((frame["wanted"] - frame["finished"]).clip(lower=0).sum())
    if unfinished:  # other processes sharing the study are still running these
        print(f"{unfinished} trial(s) still running in other workers of this study; the last one to finish "
              f"writes the final summary")
    return 0


def _spec_overrides(items: list[str], into: dict) -> dict:
    """``sweep --set KEY.PATH=VALUE`` (values parsed as YAML) as a nested mapping merged into the spec."""
    from aunet_lab.config import parse_overrides

    for key, value in parse_overrides(items, " (e.g. base.trainer.val_every=100)"):
        keys = [k.strip() for k in key.split(".")]
        node = into
        for k in keys[:-1]:
            if not isinstance(node.get(k), dict):
                node[k] = {}
            node = node[k]
        node[keys[-1]] = value
    return into


def _check_sweep(spec, args) -> int:
    from aunet_lab.data.corpus import default_cache, prepared_state
    from aunet_lab.data.manifest import load_manifest
    from aunet_lab.paths import check_folder
    from aunet_lab.sweep.plan import base_config
    from aunet_lab.sweep.storage import check_storage, storage_url
    from aunet_lab.mlflow_client import check_tracking_uri, resolve_tracking_uri

    base = base_config(spec)
    check_folder(spec.folder, "output_dir", UserError)
    storage = storage_url(args.storage, spec.folder)
    check_storage(storage)
    uri = resolve_tracking_uri(base.tracking.tracking_uri)
    check_tracking_uri(uri)
    manifest = load_manifest(base.data.manifest)
    missing = [lang for lang in spec.languages() if lang not in manifest.languages]
    if missing:
        raise UserError(f"{spec.path}: {missing[0]!r} is not a language of {manifest.path} "
                        f"(has: {', '.join(manifest.languages)})")
    cache = Path(base.data.cache or default_cache())
    cells = spec.cells()
    total = sum(sum(spec.trials_wanted(c)) for c in cells)
    print(f"check passed: study {spec.name}: {len(cells)} cells, {total} trials; folder {spec.folder}; "
          f"Optuna storage {storage}; MLflow {uri}")
    for cell in cells:
        print(f"  {cell.id}: {cell.arch}, {cell.budget_kind} budget {cell.budget_label}, mixture {cell.mixture_name}"
              f" (seed {cell.seed}, {sum(spec.trials_wanted(cell))} trials)")
    for lang in spec.languages():
        print(f"  corpus {manifest.name}/{lang}: {prepared_state(manifest, lang, cache)}")
    print("nothing created, measured or trained (--check); sizes and compute: aunet-lab sweep --plan")
    return 0


def _stopped_sweep(runner, args) -> int:
    import signal

    from aunet_lab.mlflow_client import client_for

    name = signal.Signals(runner.stopping).name
    interrupted = [o for o in runner.outcomes if o.reason.startswith("interrupted")]
    from optuna.trial import TrialState

    # Other sweep processes may still be working on the study: its parent run stays RUNNING then.
    others = any(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) for study in runner.studies.values())
    if not others:
        try:
            client = client_for(runner.tracking_uri)
            client.set_tag(runner.parent_run_id, "aunet.status", f"killed: stopped by {name}")
            client.set_terminated(runner.parent_run_id, "KILLED")
        except Exception as err:  # the store is unreachable: --resume reopens the run anyway
            print(f"warning: could not mark the study's MLflow run KILLED ({type(err).__name__})", file=sys.stderr)
    print(f"stopped by {name}: {len(interrupted)} running trial(s) checkpointed and marked; continue with: "
          f"aunet-lab sweep {args.study} --resume" + (f" --storage {args.storage}" if args.storage else ""),
          file=sys.stderr)
    return 128 + runner.stopping


def _fmt(value) -> str:
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if value < 0.01 else f"{value:.4f}"
    return str(value)


def _refused_lines(spec, plans, strict: bool) -> int:
    """A refused cell: an error with --strict (exit 2), else a note that the sweep skips it."""
    refused = [p for p in plans if not p.feasible]
    for p in refused:
        what = "error" if strict else "skipped"
        print(f"{what}: {spec.path}: cell {p.cell.id}: {'; '.join(p.refusals)}", file=sys.stderr)
    return 2 if refused and strict else 0


def _print_plan(spec, console, as_json: bool = False, strict: bool = False, cells=None) -> int:
    from rich.console import Console
    from rich.table import Table

    from aunet_lab.sweep.plan import (_duration, base_config, ensure_prepared, plan_json, plan_study, plan_table,
                                      select_cells, study_seconds)

    chosen = select_cells(spec, cells)
    ensure_prepared(spec, base_config(spec), lambda m: console.print(m, highlight=False))
    plans = plan_study(spec, cells=chosen)
    if as_json:
        import json

        print(json.dumps(plan_json(spec, plans), indent=1))
        return _refused_lines(spec, plans, strict)
    frame = plan_table(spec, plans)
    pre = sum(p.cell.phase == "pretrain" for p in plans)
    table = Table(title=f"study {spec.name}: {len(plans) - pre} cells x {spec.tune.trials} trials"
                        + (f" + {len(spec.tune.repeat_seeds)} repeat seeds" if spec.tune.repeat_seeds else "")
                        + (f", warm-started from {pre} pretraining cell(s)" if pre else ""))
    for col in frame.columns:
        table.add_column(col, overflow="fold")
    for _, row in frame.iterrows():
        table.add_row(*[str(v) for v in row])
    Console(width=240).print(table)
    print(f"estimated time with one worker on this machine: {_duration(study_seconds(spec, plans))}")
    return _refused_lines(spec, plans, strict)


def add_sweep_parser(sub) -> None:
    p = sub.add_parser("sweep", help="run (or --plan) an Optuna study from studies/*.yaml, tracked in MLflow")
    p.add_argument("study", help="study spec YAML (see studies/)")
    p.add_argument("--plan", action="store_true", help="print every cell's configs, sizes and estimated time; train nothing")
    p.add_argument("--json", action="store_true", help="with --plan: the plan as JSON on stdout (cells and estimated hours)")
    p.add_argument("--workers", type=int, default=1, help="trials run at once by this process (default 1)")
    p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a spec key, like train's --set (e.g. base.trainer.val_every=100, tune.trials=2); "
                        "repeatable, recorded on the study's MLflow run")
    p.add_argument("--storage", help="Optuna storage: a journal file path, sqlite:///... or postgresql://... "
                                     "(default: optuna.journal in the study's folder)")
    p.add_argument("--resume", action="store_true", help="continue the study, or join workers already running it")
    p.add_argument("--tracking-uri", help="MLflow store (default sqlite:///./mlruns/mlflow.db or $MLFLOW_TRACKING_URI)")
    p.add_argument("--output-dir", help="where the study's folder goes (default: the spec's output_dir, runs/studies)")
    p.add_argument("--check", action="store_true", help="validate the spec, storage, store and folders; list the "
                   "cells; create, train and measure nothing")
    p.add_argument("--strict", action="store_true", help="a cell the plan refuses is an error (exit 2); by default "
                   "it is skipped with its reason and the other cells run")
    p.add_argument("--cells", type=lambda v: [c for c in v.split(",") if c], metavar="GLOB[,GLOB]",
                   help="only the cells whose ids match (shell globs, e.g. 'bpe-1e13-*,aunet2-*'): a ladder run in "
                        "parts, on several machines; merge the parts' tables with report --export --merge")
    p.set_defaults(func=cmd_sweep)
