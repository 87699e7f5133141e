"""`aunet-lab ui`: the MLflow UI for the project's store, with links to each experiment's training view."""

from __future__ import annotations

import sys
from pathlib import Path

from aunet_lab.cli.common import UserError, check_option


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

    check_option(1 <= args.port <= 65535, "--port", "1-65535", args.port)
    check_option(args.workers >= 1, "--workers", "at least 1", args.workers)
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


def add_ui_parser(sub) -> None:
    p = sub.add_parser("ui", help="start the MLflow UI on 127.0.0.1 for the project's store")
    p.add_argument("--tracking-uri", help="MLflow database store to serve (default sqlite:///./mlruns/mlflow.db "
                   "or $MLFLOW_TRACKING_URI)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=5000, help="port to listen on (default 5000)")
    p.add_argument("--workers", type=int, default=1, help="web server processes (default 1: one local viewer)")
    p.set_defaults(func=cmd_ui)
