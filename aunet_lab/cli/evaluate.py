"""`aunet-lab eval`: a checkpoint's test BPB and character tasks, or lm-evaluation-harness tasks."""

from __future__ import annotations

from pathlib import Path

from aunet_lab.cli.common import UserError, check_option


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
    check_option(args.limit is None or args.limit > 0, "--limit", "a positive number", args.limit)
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
    check_option(args.per_task >= 1, "--per-task", "at least 1 item per task", args.per_task)
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


def add_eval_parser(sub) -> None:
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
