"""The MLflow client every part uses (training, sweeps, evaluation, reports, the CLI): the default
store, the checks that refuse an unusable tracking URI in one line, and MLflow's own source tags."""

from __future__ import annotations

import os
from pathlib import Path

from aunet_lab.messages import first_line

DEFAULT_EXPERIMENT = "aunet-lab"


class TrackingError(RuntimeError):
    """The tracking store cannot be used; one line."""


def default_tracking_uri(root: Path | None = None) -> str:
    root = Path(root or Path.cwd()) / "mlruns"
    return f"sqlite:///{root.resolve() / 'mlflow.db'}"


def resolve_tracking_uri(uri: str | None) -> str:
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def check_tracking_uri(uri: str) -> None:
    """Refuse, in one line and creating nothing, a tracking URI that cannot work: an SQLite file in a
    folder that cannot be made or written, a plain file store, an unknown scheme."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        if db.is_dir():
            raise TrackingError(f"tracking URI {uri}: {db} is a folder (expected sqlite:///PATH/mlflow.db)")
        from aunet_lab.paths import check_folder

        check_folder(db.parent, f"tracking URI {uri}", TrackingError)
    elif uri.startswith("file:") or "://" not in uri:
        raise TrackingError(f"tracking URI {uri}: the plain file store is refused by MLflow 3; use "
                            "sqlite:///PATH/mlflow.db or an MLflow server")
    elif uri.split("://", 1)[0].split("+", 1)[0] not in ("http", "https", "sqlite", "postgresql", "mysql", "mssql",
                                                          "databricks"):
        raise TrackingError(f"tracking URI {uri}: unknown scheme (expected sqlite:///PATH/mlflow.db or "
                            "http://HOST:PORT)")


def client_for(uri: str):
    """An MlflowClient for ``uri``, after checking the store can be reached (before any training)."""
    from mlflow.tracking import MlflowClient

    check_tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise TrackingError(f"tracking URI {uri}: cannot create {db.parent} ({err.strerror})") from None
    elif uri.startswith(("http://", "https://")):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    import logging

    for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):  # table creation chatter
        logging.getLogger(name).setLevel(logging.WARNING)
    # No mlflow.set_tracking_uri: it exports MLFLOW_TRACKING_URI, which child processes (a sweep's
    # trials, a demo's study) would then take as their store. The URI is always passed explicitly.
    try:
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
    except Exception as err:  # any failure to reach the store is the user's to fix
        if "Max retries exceeded" in str(err) or "Connection refused" in str(err):
            raise TrackingError(f"tracking URI {uri} cannot be reached: no MLflow server answers there "
                                "(start one with `mlflow server`, or check the host and port)") from None
        raise TrackingError(f"tracking URI {uri} cannot be reached: {first_line(err)}") from None
    return client


def source_tags(commit: str, entry: str) -> dict[str, str]:
    """MLflow's own source, user and git tags (the UI's Source and User columns)."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = "unknown"
    tags = {"mlflow.source.name": entry, "mlflow.source.type": "LOCAL", "mlflow.user": user}
    if commit and commit != "unknown":
        tags["mlflow.source.git.commit"] = commit
    return tags
