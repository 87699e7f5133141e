"""`aunet-lab`: the command-line entry point.

User errors (bad specs, paths, arguments) print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A problem with what the user asked for: reported as one line, exit status 2."""


MAX_ERROR_CHARS = 300


def one_line(message: str, limit: int = MAX_ERROR_CHARS) -> str:
    """A user error as one line of at most ``limit`` characters (a value in it may be long)."""
    from aunet_lab.messages import cut

    return cut(" ".join(message.split()), limit)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        raise UserError(f"{self.prog}: {message}")


def _visible(unit: bytes) -> str:
    text = unit.decode("utf-8", "backslashreplace")
    return text.replace(" ", "\u2423").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def _split_function(spec: str):
    from aunet_lab.data.splitting import SplitSpecError, get_split_function

    try:
        return get_split_function(spec)
    except SplitSpecError as err:
        raise UserError(str(err)) from None


def cmd_split_list(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from aunet_lab.data.splitting import describe_split_functions

    table = Table(title="Registered split functions")
    table.add_column("name", style="bold")
    table.add_column("what it does")
    for name, description in describe_split_functions().items():
        table.add_row(name, description)
    Console().print(table)
    print("Also: regex:PATTERN (a boundary on the last character of each match) and "
          "module.path:callable (fn(text) -> one level per character).")
    return 0


def _read_text_arg(args) -> bytes:
    if args.file is not None:
        path = Path(args.file)
        if not path.is_file():
            raise UserError(f"--file {args.file}: no such file")
        return path.read_bytes()
    if args.text is None:
        raise UserError("split show: give TEXT or --file PATH")
    return args.text.encode("utf-8", "surrogateescape")


def cmd_split_show(args) -> int:
    from aunet_lab.data.splitting import byte_levels, units_by_stage, units_per_byte

    split = _split_function(args.spec)
    data = _read_text_arg(args)
    levels = byte_levels(data, split)
    rates = units_per_byte(levels, split.max_level)
    print(f"{split.name}: {len(data)} bytes")
    for stage, (units, rate) in enumerate(zip(units_by_stage(data, split), rates), start=2):
        per_unit = f"{1 / rate:.2f} bytes/unit" if rate else "no boundary"
        print(f"stage {stage}: {len(units)} units, {rate:.3f} units/byte ({per_unit})")
        print("  " + "|".join(_visible(u) for u in units))
    return 0


def cmd_split_check(args) -> int:
    from aunet_lab.data.splitting import check_stability, stability_corpus

    if args.max_bytes < 1:
        raise UserError(f"--max-bytes: expected at least 1 byte, got {args.max_bytes}")
    if args.generated < 0:
        raise UserError(f"--generated: expected 0 or more texts, got {args.generated}")
    split = _split_function(args.spec)
    texts = stability_corpus(seed=args.seed, generated=args.generated)
    if args.file:
        for name in args.file:
            path = Path(name)
            if not path.is_file():
                raise UserError(f"--file {name}: no such file")
            texts.append((str(path), path.read_bytes()))
    report = check_stability(split, texts, max_bytes=args.max_bytes)
    report.spec = args.spec
    print(report.summary())
    return 0 if report.stable else 1


def _manifest(path: str):
    from aunet_lab.data.manifest import ManifestError, load_manifest

    try:
        return load_manifest(path)
    except ManifestError as err:
        raise UserError(str(err)) from None


def _languages_arg(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def cmd_data_prepare(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from aunet_lab.data.corpus import CorpusError, Preparer
    from aunet_lab.data.languages import UnknownLanguage
    from aunet_lab.data.manifest import ManifestError
    from aunet_lab.data.sources import SourceError

    from aunet_lab.data.corpus import default_cache
    from aunet_lab.paths import check_folder

    manifest = _manifest(args.manifest)
    languages = _languages_arg(args.languages) or manifest.languages
    unknown = [tag for tag in languages if tag not in manifest.languages]
    if unknown:
        raise UserError(f"{manifest.path}: languages: {unknown[0]!r} is not in this manifest "
                        f"(has: {', '.join(manifest.languages)})")
    cache = Path(args.cache) if args.cache else default_cache()
    check_folder(cache, f"--cache {cache}", UserError)
    check_folder(manifest.lock_path.parent, f"lock {manifest.lock_path}", UserError)
    if args.check:
        return _check_prepare(manifest, languages, cache)
    # The live bar goes to a terminal; otherwise (CI, pipes) one line per language on stdout, so
    # stderr carries only a failure's one line.
    console = Console(stderr=True) if sys.stderr.isatty() else Console(file=sys.stdout)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=False, disable=not console.is_terminal) as bar:
        task = bar.add_task(f"{manifest.name}: preparing", total=len(languages))

        def progress(message: str) -> None:
            bar.update(task, description=f"{manifest.name}: {message}")
            if "documents," in message or "already prepared" in message:
                bar.advance(task)
                bar.console.print(f"  {message}", highlight=False)
            elif "damaged cache" in message:
                bar.console.print(f"  {message}", highlight=False)

        try:
            stats = Preparer(manifest, cache, progress).prepare(languages)
        except (ManifestError, SourceError, CorpusError, UnknownLanguage, ValueError) as err:
            raise UserError(str(err)) from None
    total = sum(sum(s.bytes.values()) for s in stats.values())
    print(f"{manifest.name}: {len(stats)} languages, {total:,} bytes; lock {manifest.lock_path}")
    return 0


def _check_prepare(manifest, languages: list[str], cache: Path) -> int:
    from aunet_lab.data.corpus import prepared_state

    print(f"check passed: {manifest.path} ({manifest.name}: {manifest.usage}; {manifest.licence}), cache {cache}")
    for tag in languages:
        sources = ", ".join(f"{s.name} ({s.kind})" for s in manifest.sources_for(tag))
        print(f"  {tag}: {prepared_state(manifest, tag, cache)}; sources: {sources}")
    print("nothing fetched or written (--check)")
    return 0


def cmd_data_stats(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from aunet_lab.data.corpus import default_cache, prepared_stats
    from aunet_lab.data.manifest import load_manifest

    cache = args.cache or default_cache()
    if args.manifest:
        manifests = [_manifest(args.manifest)]
    else:
        folder = Path(__file__).resolve().parent.parent / "data_manifests"
        manifests = [load_manifest(p) for p in sorted(folder.glob("*.yaml")) if not p.name.endswith(".lock.yaml")]
    console = Console()
    shown = 0
    for manifest in manifests:
        stats = prepared_stats(manifest, cache)
        if not stats:
            if args.manifest:
                raise UserError(f"{manifest.path}: nothing prepared under {cache} (run: aunet-lab data prepare {manifest.path})")
            continue
        shown += 1
        table = Table(title=f"{manifest.name} ({manifest.usage}; {manifest.licence})")
        for col in ("lang", "split", "documents", "bytes", "characters", "bytes/char"):
            table.add_column(col, justify="right")
        for tag, st in stats.items():
            for split in ("train", "val", "test"):
                chars = st.characters.get(split, 0)
                table.add_row(tag, split, f"{st.documents.get(split, 0):,}", f"{st.bytes.get(split, 0):,}",
                              f"{chars:,}", f"{st.bytes.get(split, 0) / chars:.2f}" if chars else "-")
            table.add_row(tag, "[dim]dropped[/dim]", f"{st.duplicates_dropped} dup",
                          f"{st.replaced_bytes} replaced", "", "", end_section=True)
        console.print(table)
        sources = {}
        for st in stats.values():
            for src in st.sources:
                sources[src["name"]] = src
        for src in sources.values():
            console.print(f"  source {src['name']} ({src['kind']}, {src['segment']}): licence {src['licence']}; "
                          f"{src['attribution']}", highlight=False)
    if not shown:
        print(f"nothing prepared under {cache}")
    return 0


def cmd_train(args) -> int:
    from aunet_lab.config import ConfigError, load_config
    from aunet_lab.data.corpus import CorpusError
    from aunet_lab.data.dataconfig import DataConfigError
    from aunet_lab.data.manifest import ManifestError
    from aunet_lab.models.aunet import ConfigError as ModelConfigError
    from aunet_lab.training.faults import Interrupted, NonFiniteLoss
    from aunet_lab.mlflow_client import TrackingError
    from aunet_lab.training.checkpoint import CheckpointError
    from aunet_lab.training.run import train

    try:
        config = load_config(args.config, overrides=args.set)
        if args.tracking_uri:
            config.tracking.tracking_uri = args.tracking_uri
        if args.output_dir:
            config.output_dir = args.output_dir
        if args.check:
            from aunet_lab.training.check import check_training

            print(check_training(config, resume=args.resume, init_from=args.init_from))
            return 0
        result = train(config, resume=args.resume, init_from=args.init_from)
    except (ConfigError, ModelConfigError, DataConfigError, ManifestError, CorpusError, CheckpointError,
            TrackingError) as err:
        raise UserError(str(err)) from None
    except NonFiniteLoss as err:
        print(f"error: training stopped: {err} (recorded on the MLflow run as aunet.failure)", file=sys.stderr)
        return 1
    except Interrupted as err:
        run = f"; MLflow run {err.run_id} is KILLED" if err.run_id else " before its MLflow run was created"
        print(f"{err.describe()}{run}; continue with: aunet-lab train {args.config} --resume", file=sys.stderr)
        return err.exit_code
    if result.final_loss is None:  # a second process of a multi-process run: the first one reports
        return 0
    summary = ", ".join(f"{k} {v:.4f}" for k, v in {**result.val, **result.test}.items() if k.count("/") == 1)
    print(f"run {result.run_id} ({result.run_dir}): {result.steps} steps, final loss {result.final_loss:.4f}; {summary}")
    return 0


def cmd_generate(args) -> int:
    import math

    from aunet_lab.training.checkpoint import CheckpointError, generate_from_checkpoint

    if args.max_new < 1:
        raise UserError(f"--max-new: expected at least 1 byte, got {args.max_new}")
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise UserError(f"--temperature: expected a number >= 0 (0: greedy), got {args.temperature}")
    if not (math.isfinite(args.top_p) and 0 < args.top_p <= 1):
        raise UserError(f"--top-p: expected a number in (0, 1], got {args.top_p}")
    try:
        args.prompt.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 reach argv as lone surrogates
        raise UserError("--prompt: not valid UTF-8 text") from None

    try:
        text = generate_from_checkpoint(args.checkpoint, args.prompt, args.max_new, args.temperature, args.top_p,
                                        args.seed)
    except CheckpointError as err:
        raise UserError(str(err)) from None
    print(args.prompt + text)
    return 0


def cmd_export(args) -> int:
    from aunet_lab.export import ExportError, export_checkpoint
    from aunet_lab.loaded import LoadError
    from aunet_lab.training.checkpoint import CheckpointError

    try:
        out = export_checkpoint(args.checkpoint, args.out)
    except (ExportError, LoadError, CheckpointError) as err:
        raise UserError(str(err)) from None
    print(f"exported {args.checkpoint} to {out}: " + ", ".join(sorted(p.name for p in out.iterdir())))
    return 0


def training_view_urls(uri: str, base: str, limit: int = 10) -> list[tuple[str, dict[str, str]]]:
    """(experiment, {"runs": URL, "charts": URL}) for the store's newest experiments, each in MLflow's
    Model training view; "charts" opens the experiment's "Training curves" view (mlflow_view)."""
    from aunet_lab.training.mlflow_view import experiment_urls
    from aunet_lab.mlflow_client import TrackingError, client_for

    try:
        experiments = client_for(uri).search_experiments(max_results=limit, order_by=["last_update_time DESC"])
    except TrackingError:
        return []
    return [(e.name, experiment_urls(base, e.experiment_id)) for e in experiments if e.name != "Default"]


def cmd_ui(args) -> int:
    import os
    import shutil
    import subprocess

    from aunet_lab.mlflow_client import TrackingError, check_tracking_uri, resolve_tracking_uri

    if not 1 <= args.port <= 65535:
        raise UserError(f"--port: expected 1-65535, got {args.port}")
    if args.workers < 1:
        raise UserError(f"--workers: expected at least 1, got {args.workers}")
    uri = resolve_tracking_uri(args.tracking_uri)
    if uri.startswith(("http://", "https://")):
        raise UserError(f"--tracking-uri {uri}: that is an MLflow server, whose UI is already at {uri}; "
                        "`aunet-lab ui` serves a database store (sqlite:///PATH/mlflow.db)")
    try:
        check_tracking_uri(uri)
    except TrackingError as err:
        raise UserError(str(err)) from None
    mlflow = shutil.which("mlflow") or str(Path(sys.executable).parent / "mlflow")
    base = f"http://{args.host}:{args.port}"
    print(f"MLflow UI for {uri} at {base} (Ctrl-C to stop)", flush=True)
    for name, urls in training_view_urls(uri, base):
        print(f"  {name}: runs {urls['runs']}\n  {' ' * len(name)}  charts {urls['charts']}", flush=True)
    # One local viewer: MLflow's defaults (4 web workers, a job runner and 7 job consumers for its GenAI
    # features, each importing mlflow) cost a minute of CPU to start on a laptop and are not needed here.
    env = {**os.environ}
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    try:
        return subprocess.call([mlflow, "ui", "--backend-store-uri", uri, "--host", args.host, "--port", str(args.port),
                                "--workers", str(args.workers)], env=env)
    except KeyboardInterrupt:
        return 0


def cmd_peak(args) -> int:
    import torch

    from aunet_lab.data.corpus import default_cache
    from aunet_lab.training.callbacks import measure_peak_flops, save_peak

    if args.max_size < 64:
        raise UserError(f"--max-size: expected a matrix side of at least 64, got {args.max_size}")
    if args.repeats < 1:
        raise UserError(f"--repeats: expected at least 1, got {args.repeats}")
    if args.device not in (None, "cpu") and not str(args.device).startswith("cuda"):
        raise UserError(f"--device: expected cpu or cuda, got {args.device!r}")
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    result = measure_peak_flops(dtype, device, args.max_size, args.repeats)
    cache = args.cache or default_cache()
    save_peak(cache, result)
    print(f"peak {result['flops'] / 1e9:.1f} GFLOP/s ({args.dtype} matmul {result['size']}x{result['size']} on "
          f"{device}, {result['threads']} threads); saved to {cache}/peak_flops.json for MFU")
    return 0


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

    if args.workers < 1:
        raise UserError(f"--workers: expected at least 1, got {args.workers}")
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


def cmd_report(args) -> int:
    from aunet_lab.reports.build import build_report
    from aunet_lab.reports.collect import ReportError
    from aunet_lab.mlflow_client import resolve_tracking_uri

    if args.merge and not args.export:
        raise UserError("--merge: only with --export (adds this store's runs to an existing runs table)")
    if args.runs and args.export:
        raise UserError("--runs builds from a runs table, --export writes one: not both")
    if not args.runs and not args.study:
        raise UserError("report: name a study (its MLflow experiment), or give --runs TABLE")
    try:
        if args.export:
            from aunet_lab.reports.collect import TABLE_SUFFIXES, collect, export_runs, load_runs_table

            if args.export.suffix not in TABLE_SUFFIXES:
                raise UserError(f"--export {args.export}: expected a .csv or .parquet file")

            runs = collect(args.study, resolve_tracking_uri(args.tracking_uri))
            written = export_runs(runs, args.export, merge=args.merge)
            total = f" ({len(load_runs_table(args.export).runs)} in the merged table)" if args.merge else ""
            print(f"runs table of {args.study}: {len(runs.runs)} runs{total} -> " + ", ".join(str(p) for p in written))
            print(f"rebuild the report from it: aunet-lab report --runs {args.export}")
            return 0
        if args.runs:
            from aunet_lab.reports.collect import load_runs_table

            runs = load_runs_table(args.runs)
            if args.study and args.study != runs.name:
                raise UserError(f"--runs {args.runs}: a table of study {runs.name!r}, not {args.study!r}")
            report = build_report(runs.name, runs.source, args.out, runs=runs)
        else:
            report = build_report(args.study, resolve_tracking_uri(args.tracking_uri), args.out)
    except ReportError as err:
        raise UserError(str(err)) from None
    print(f"report: {report.pdf} ({report.pages} pages); runs table: {report.csv}; figures: "
          f"{report.figures[0].parent if report.figures else 'none'}")
    for line in report.findings:
        print(f"  - {line}")
    return 0


def _eval_lm_harness(args) -> int:
    """``eval MODEL --lm-eval TASKS``: the harness's results JSON in --out (and the scores on the
    model's MLflow run when it has one in the store)."""
    import json

    from aunet_lab.loaded import LoadError, load
    from aunet_lab.training.checkpoint import CheckpointError

    tasks = [t.strip() for t in args.lm_eval.split(",") if t.strip()]
    if not tasks:
        raise UserError("--lm-eval: expected task names, e.g. --lm-eval hellaswag,wikitext")
    if args.out is None:
        raise UserError("--lm-eval: needs --out DIR for the harness's results JSON")
    if args.include_path is not None and not Path(args.include_path).is_dir():
        raise UserError(f"--include-path {args.include_path}: no such folder")
    if args.limit is not None and not args.limit > 0:
        raise UserError(f"--limit: expected a positive number, got {args.limit}")
    from aunet_lab.paths import check_folder

    check_folder(args.out, f"--out {args.out}", UserError)
    try:
        from aunet_lab.eval.harness import run_tasks, scores
    except ImportError as err:
        raise UserError(str(err)) from None
    try:
        model = load(args.checkpoint)
    except (LoadError, CheckpointError) as err:
        raise UserError(str(err)) from None
    limit = int(args.limit) if args.limit is not None and args.limit >= 1 else args.limit
    try:
        results = run_tasks(model, tasks, str(args.include_path) if args.include_path else None, limit)
    except KeyError as err:  # the harness's unknown task
        raise UserError(f"--lm-eval: {err.args[0] if err.args else err}") from None
    from lm_eval.utils import handle_non_serializable

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "lm_eval_results.json"
    path.write_text(json.dumps(results, indent=1, default=handle_non_serializable, ensure_ascii=False))
    flat = scores(results)
    from aunet_lab.eval.run import log_scores_to_run
    from aunet_lab.mlflow_client import resolve_tracking_uri

    logged = log_scores_to_run(args.checkpoint, resolve_tracking_uri(args.tracking_uri), flat, path)
    for key, value in flat.items():
        print(f"{key:40s} {value:.6g}")
    print(f"written to {path}" + (f"; logged to MLflow run {logged}" if logged else ""))
    return 0


def cmd_eval(args) -> int:
    if args.lm_eval is not None:
        return _eval_lm_harness(args)
    from aunet_lab.data.corpus import CorpusError
    from aunet_lab.data.dataconfig import DataConfigError
    from aunet_lab.data.manifest import ManifestError
    from aunet_lab.eval.run import SUITES, evaluate
    from aunet_lab.training.checkpoint import CheckpointError

    suites = [s.strip() for s in args.suite.split(",") if s.strip()]
    for s in suites:
        if s not in SUITES:
            raise UserError(f"--suite: unknown suite {s!r} (known: {', '.join(SUITES)})")
    if args.per_task < 1:
        raise UserError(f"--per-task: expected at least 1 item per task, got {args.per_task}")
    languages = [lang.strip() for lang in args.languages.split(",")] if args.languages else None
    if args.out is not None:
        from aunet_lab.paths import check_folder

        check_folder(args.out, f"--out {args.out}", UserError)
    eval_bytes = None
    if args.eval_bytes is not None:
        from aunet_lab.data.dataconfig import parse_bytes

        try:
            eval_bytes = parse_bytes(args.eval_bytes, "--eval-bytes")
        except DataConfigError as err:
            raise UserError(str(err)) from None
    try:
        results, out = evaluate(args.checkpoint, suites, languages, args.per_task, args.out, args.manifest,
                                eval_bytes)
    except (CheckpointError, CorpusError, DataConfigError, ManifestError) as err:
        raise UserError(str(err)) from None
    from aunet_lab.eval.run import log_to_run
    from aunet_lab.mlflow_client import resolve_tracking_uri

    logged = log_to_run(args.checkpoint, resolve_tracking_uri(args.tracking_uri), results, out)
    if "bpb" in results:
        for key, value in results["bpb"].items():
            print(f"{key:24s} {value:,.0f}" if "/bytes/" in key else f"{key:24s} {value:.4f}")
    if "chars" in results:
        print(results["chars"].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"written to {out}" + (f"; logged to MLflow run {logged}" if logged else ""))
    return 0


def cmd_demo(args) -> int:
    from aunet_lab.config import ConfigError
    from aunet_lab.demo import run_demo

    for name in ("workers", "trials"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name}: expected at least 1, got {value}")
    try:
        return run_demo(offline=args.offline, workers=args.workers, trials=args.trials, quick=args.quick)
    except ConfigError as err:
        raise UserError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aunet-lab", description="Byte-level hierarchical language models (AU-Net) lab.")
    from aunet_lab import __version__

    parser.add_argument("--version", action="version", version=f"aunet-lab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    split = sub.add_parser("split", help="split functions: list, show, check")
    split_sub = split.add_subparsers(dest="split_command", required=True, parser_class=_Parser)
    p = split_sub.add_parser("list", help="registered split functions")
    p.set_defaults(func=cmd_split_list)
    p = split_sub.add_parser("show", help="print the units of every stage for a text")
    p.add_argument("spec", help="name, regex:PATTERN or module.path:callable")
    p.add_argument("text", nargs="?", help="text to split")
    p.add_argument("--file", help="read the text (raw bytes) from a file instead")
    p.set_defaults(func=cmd_split_show)
    p = split_sub.add_parser("check", help="is a split function stable to rightward insertion, byte by byte?")
    p.add_argument("spec", help="name, regex:PATTERN or module.path:callable")
    p.add_argument("--file", action="append", help="also check this file's first bytes (repeatable)")
    p.add_argument("--generated", type=int, default=60, help="generated texts to check (default 60)")
    p.add_argument("--seed", type=int, default=0, help="seed for the generated texts")
    p.add_argument("--max-bytes", type=int, default=400, help="bytes of each text whose prefixes are checked")
    p.set_defaults(func=cmd_split_check)

    data = sub.add_parser("data", help="corpora: prepare a manifest, show statistics")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    p = data_sub.add_parser("prepare", help="fetch, extract, normalise, split and lock a manifest's corpus")
    p.add_argument("manifest", help="path to a manifest YAML (see data_manifests/)")
    p.add_argument("--languages", help="comma-separated subset of the manifest's languages")
    p.add_argument("--cache", type=Path, help="cache folder (default $AUNET_LAB_CACHE or ~/.cache/aunet_lab)")
    p.add_argument("--check", action="store_true", help="validate the manifest and cache; say what would be fetched "
                   "and which languages are prepared (checked against the lock); fetch nothing")
    p.set_defaults(func=cmd_data_prepare)
    p = data_sub.add_parser("stats", help="documents, bytes and characters per language and split")
    p.add_argument("manifest", nargs="?", help="a manifest (default: every manifest in data_manifests/)")
    p.add_argument("--cache", type=Path, help="cache folder (default $AUNET_LAB_CACHE or ~/.cache/aunet_lab)")
    p.set_defaults(func=cmd_data_stats)

    p = sub.add_parser("train", help="train one model from a YAML config, tracked in MLflow")
    p.add_argument("config", help="config YAML (see configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", help="override a config value")
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint, same MLflow run")
    p.add_argument("--init-from", metavar="CHECKPOINT", help="warm start: weights only (new optimizer, schedule, data)")
    p.add_argument("--tracking-uri", help="MLflow store (default sqlite:///./mlruns/mlflow.db or $MLFLOW_TRACKING_URI)")
    p.add_argument("--output-dir", help="where run folders (checkpoints) go (default: the config's output_dir)")
    p.add_argument("--check", action="store_true", help="validate the config, corpus, store and folders and print "
                   "what would train; create no run, train no tokenizer")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("generate", help="generate text from a checkpoint")
    p.add_argument("checkpoint", help="a checkpoint aunet-lab train wrote (e.g. runs/NAME/final.ckpt)")
    p.add_argument("--prompt", required=True, help="the text to continue (UTF-8)")
    p.add_argument("--max-new", type=int, default=200, help="bytes (AU-Net) or tokens (BPE) to generate")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: keep the most likely units "
                   "whose probabilities sum to this (1.0 = all)")
    p.add_argument("--seed", type=int, default=0, help="seed for sampling")
    p.set_defaults(func=cmd_generate)
    p = sub.add_parser("export", help="a checkpoint as model.safetensors, config.json, tokenizer and model card")
    p.add_argument("checkpoint", help="a checkpoint aunet-lab train wrote, or its run folder (final.ckpt)")
    p.add_argument("out", help="the export folder to create (refused if it exists and is not empty)")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("ui", help="start the MLflow UI on 127.0.0.1 for the project's store")
    p.add_argument("--tracking-uri", help="MLflow database store to serve (default sqlite:///./mlruns/mlflow.db "
                   "or $MLFLOW_TRACKING_URI)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=5000, help="port to listen on (default 5000)")
    p.add_argument("--workers", type=int, default=1, help="web server processes (default 1: one local viewer)")
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser("peak", help="measure this machine's peak matmul FLOP/s once, for MFU")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                   help="matmul precision (default float32, what CPU training uses)")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--max-size", type=int, default=4096, help="largest square matmul in the sweep")
    p.add_argument("--repeats", type=int, default=3, help="timed matmuls per size; the best counts")
    p.add_argument("--cache", type=Path, help="where the result is kept (default $AUNET_LAB_CACHE or ~/.cache/aunet_lab)")
    p.set_defaults(func=cmd_peak)

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

    p = sub.add_parser("report", help="a study's PDF report (fits, figures, tables) from its MLflow runs or a runs table")
    p.add_argument("study", nargs="?", help="the study's name (its MLflow experiment); optional with --runs")
    p.add_argument("--out", type=Path, help="the PDF (default reports/STUDY.pdf; the CSV and PNGs go beside it)")
    p.add_argument("--runs", type=Path, help="build from a runs table (.csv or .parquet) that --export wrote, "
                                             "not from MLflow")
    p.add_argument("--export", type=Path, help="write the study's runs table (.csv or .parquet, with its "
                                               ".study.json and .curves.csv) and stop; no PDF")
    p.add_argument("--merge", action="store_true", help="with --export: keep the runs already in that table and add "
                   "this store's (a study run in parts; same study and spec, a run exported twice kept once)")
    p.add_argument("--tracking-uri", help="MLflow store (default sqlite:///./mlruns/mlflow.db or $MLFLOW_TRACKING_URI)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("eval", help="test BPB per language and character tasks for a checkpoint, or harness tasks")
    p.add_argument("checkpoint", metavar="MODEL", help="a checkpoint (with --lm-eval also an export or run folder)")
    p.add_argument("--suite", default="bpb,chars", help="comma-separated: bpb, chars, diagnostics (AU-Net only) (default: bpb,chars)")
    p.add_argument("--languages", help="comma-separated (default: the checkpoint's training mixture)")
    p.add_argument("--per-task", type=int, default=50, help="character-task items per task and language")
    p.add_argument("--eval-bytes", help="score whole test documents up to this many UTF-8 bytes per language, "
                                        "e.g. 64KB (default: the whole test split)")
    p.add_argument("--manifest", type=Path, help="score on another prepared corpus's test split (e.g. "
                   "data_manifests/udhr.yaml: the same text in every language); logged as eval/<corpus>/...")
    p.add_argument("--out", type=Path, help="where bpb.json, chars.csv and diagnostics_by_*.csv go (default: eval/ beside the checkpoint)")
    p.add_argument("--tracking-uri", help="MLflow store holding the checkpoint's run, to log the results to "
                                          "(default sqlite:///./mlruns/mlflow.db or $MLFLOW_TRACKING_URI)")
    p.add_argument("--lm-eval", metavar="TASKS", help="lm-evaluation-harness tasks (comma-separated) instead of "
                   "the suites; MODEL may then be an export folder too (needs aunet_lab[lm-eval] and --out)")
    p.add_argument("--include-path", type=Path, help="with --lm-eval: a folder of the harness's task YAMLs")
    p.add_argument("--limit", type=float, help="with --lm-eval: documents per task (or a fraction below 1)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("demo", help="the main job on the embedded default data: split functions, then the smoke study")
    p.add_argument("--offline", action="store_true", help="run the smoke study on the UDHR embedded in the package")
    p.add_argument("--workers", type=int, help="trials at once (default: 2, or 1 on a one-core machine)")
    p.add_argument("--trials", type=int, help="learning-rate trials per cell (default: the spec's 2)")
    p.add_argument("--quick", action="store_true", help="one budget and one mixture (2 cells): a check that it all runs")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UserError as err:
        print(one_line(f"error: {err}"), file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as err:  # a path the system refuses (too long, no permission, disk full): one line
        where = f": {err.filename}" if err.filename else ""
        print(one_line(f"error: {err.strerror or err}{where}"), file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
