"""`aunet-lab report`: a study's PDF report, or its runs table (--export)."""

from __future__ import annotations

from pathlib import Path

from aunet_lab.cli.common import UserError


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


def add_report_parser(sub) -> None:
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
