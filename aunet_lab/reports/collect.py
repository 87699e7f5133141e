"""A study's runs from MLflow as a pandas frame: one row per trial run (the tags, params and
metrics docs/training.md and docs/studies.md list are the contract), plus the study's parent run."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field

import pandas as pd

from aunet_lab.messages import first_line

STATUS = {"FINISHED": "finished", "FAILED": "failed", "KILLED": "pruned", "RUNNING": "running",
          "SCHEDULED": "running"}


def _status(mlflow_status: str, tags: dict) -> str:
    """MLflow's status in the report's words: a KILLED run is pruned, unless a signal stopped it
    (``aunet.status: killed: ...``, see training/run.py), which is 'killed', never a pruned trial."""
    if mlflow_status == "KILLED" and tags.get("aunet.status", "").startswith("killed"):
        return "killed"
    return STATUS.get(mlflow_status, mlflow_status.lower())


class ReportError(ValueError):
    """A report that cannot be made (unknown study, unreachable store); one line."""


@dataclass
class StudyRuns:
    name: str
    tracking_uri: str
    parent: dict = field(default_factory=dict)  # tags and params of the parent run ({} if none)
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    languages: list[str] = field(default_factory=list)
    spec_text: str = ""
    source: str = ""  # where the runs came from: the MLflow store, or the runs table's path
    curves: pd.DataFrame | None = None  # from a runs table: run_id, bytes_seen, value of train/bpb

    @property
    def refused(self) -> dict[str, str]:
        """Cells the sweep skipped, with the plan's reason (the parent run's ``aunet.refused``)."""
        try:
            return dict(json.loads(self.parent.get("tags", {}).get("aunet.refused", "{}")))
        except ValueError:
            return {}

    def learning_curve(self, run_id: str, key: str = "train/bpb") -> tuple[list[float], list[float]]:
        """(bytes seen, value) of one run's training curve, from MLflow or from the runs table."""
        if self.curves is not None:
            rows = self.curves[(self.curves["run_id"] == run_id) & (self.curves["key"] == key)]
            return rows["bytes_seen"].tolist(), rows["value"].tolist()
        from aunet_lab.mlflow_client import client_for

        return learning_curve(client_for(self.tracking_uri), run_id, key)

    def counts(self) -> dict[str, int]:
        if self.runs.empty:
            return {"finished": 0, "failed": 0, "pruned": 0, "running": 0, "killed": 0}
        found = self.runs["status"].value_counts().to_dict()
        return {k: int(found.get(k, 0)) for k in ("finished", "failed", "pruned", "running", "killed")}

    def best_per_cell(self) -> pd.DataFrame:
        """The best tuning trial of each cell (lowest validation objective among finished runs),
        with the mean and spread of its cell's repeat seeds' test BPB."""
        done = self.runs[(self.runs["status"] == "finished") & self.runs["val_objective"].notna()]
        if done.empty:
            return done
        tuning = done[done["role"] != "repeat"]
        best = tuning.loc[tuning.groupby("cell")["val_objective"].idxmin()].copy()
        repeats = done[done["role"] == "repeat"].groupby("cell")["test_bpb"].apply(list)
        best["seeds"] = [1 + len(repeats.get(c, [])) for c in best["cell"]]
        best["test_bpb_seeds"] = [[b] + list(repeats.get(c, [])) for c, b in zip(best["cell"], best["test_bpb"])]
        best["test_bpb_mean"] = [statistics.fmean(v) for v in best["test_bpb_seeds"]]
        return best.sort_values(["arch", "compute"]).reset_index(drop=True)


def _objective(parent_params: dict) -> tuple[str, list[str] | None]:
    try:
        spec = json.loads(parent_params.get("objective", "{}"))
    except ValueError:
        spec = {}
    return spec.get("metric", "val/bpb"), ("mixture" if spec.get("on_mixture") else spec.get("languages"))


def collect(study: str, tracking_uri: str) -> StudyRuns:
    """Every run of ``study`` (an MLflow experiment named after it). ReportError if there is none."""
    from aunet_lab.mlflow_client import TrackingError, client_for

    try:
        client = client_for(tracking_uri)
    except TrackingError as err:
        raise ReportError(str(err)) from None
    exp = client.get_experiment_by_name(study)
    if exp is None:
        known = sorted(e.name for e in client.search_experiments() if e.name != "Default")
        raise ReportError(f"no study {study!r} in {tracking_uri} (studies there: {', '.join(known) or 'none'})")
    runs = client.search_runs([exp.experiment_id], max_results=50000, order_by=["attributes.start_time ASC"])
    parents = [r for r in runs if r.data.tags.get("aunet.kind") == "study"]
    out = StudyRuns(study, tracking_uri, source=tracking_uri)
    if parents:
        # The study run most recently started (a study run again from scratch, as the demo does,
        # gets a new parent run in the same experiment); only its trials are reported.
        p = parents[-1]
        runs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == p.info.run_id]
        out.parent = {"run_id": p.info.run_id, "tags": dict(p.data.tags), "params": dict(p.data.params)}
        out.spec_text = _spec_text(client, p.info.run_id)
    metric, languages = _objective(out.parent.get("params", {}))
    rows = [_row(client, r, metric, languages) for r in runs if r.data.tags.get("aunet.kind") != "study"]
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values(["cell", "trial"], kind="stable").reset_index(drop=True)
        out.languages = sorted({c.split("/", 2)[2] for c in frame.columns if c.startswith("test/bpb/")})
    out.runs = frame
    return out


def _spec_text(client, run_id: str) -> str:
    import os
    import tempfile
    from pathlib import Path

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        items = client.list_artifacts(run_id, "spec")
        if not items:
            return ""
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(run_id, items[0].path, tmp)
            return Path(local).read_text(encoding="utf-8")
    except Exception:  # an artifact store out of reach only costs the title page its spec
        return ""


def _row(client, r, metric: str, languages: list[str] | None) -> dict:
    tags, params, metrics = r.data.tags, r.data.params, r.data.metrics
    stages = int(tags.get("aunet.stages", "0") or 0)
    arch = "bpe" if tags.get("aunet.arch") == "bpe" else f"aunet{stages}"
    data_bytes = _float(params.get("data.budget"))
    fpb = metrics.get("compute/flops_per_byte", _float(params.get("compute.flops_per_byte")))
    if languages == "mixture":  # the cell's own training languages
        languages = [lang for lang in tags.get("aunet.languages", "").split(",") if lang]
    if languages:
        vals = [metrics.get(f"val/bpb/{lang}") for lang in languages]
        val = statistics.fmean(vals) if all(v is not None for v in vals) else None
    else:
        val = metrics.get(metric)
    row = {
        "run_id": r.info.run_id, "run_name": r.info.run_name, "status": _status(r.info.status, tags),
        "cell": tags.get("aunet.cell", r.info.run_name), "trial": int(tags.get("aunet.trial", "0") or 0),
        "role": tags.get("aunet.role", "tuning"), "arch": arch, "stages": stages, "split": tags.get("aunet.split", ""),
        "languages": tags.get("aunet.languages", ""), "mixture": tags.get("aunet.mixture", tags.get("aunet.languages", "")),
        "seed": int(tags.get("aunet.seed", "0") or 0), "budget": tags.get("aunet.budget", ""),
        "budget_kind": tags.get("aunet.budget_kind", "data"), "bytes": data_bytes, "flops_per_byte": fpb,
        "compute": (data_bytes * fpb) if data_bytes and fpb else metrics.get("compute/flops"),
        "params": _float(params.get("model.non_embedding_params")), "lr": _float(params.get("optim.lr")),
        "val_objective": val, "val_bpb": metrics.get("val/bpb"), "test_bpb": metrics.get("test/bpb"),
        "test_bpb_macro": metrics.get("test/bpb_macro"), "bytes_seen": metrics.get("data/bytes_seen"),
        "git_commit": tags.get("git.commit", ""), "data_hash": tags.get("data.hash", ""),
        "manifest": params.get("data.manifest", ""),
        "bytes_per_s": _median_metric(client, r, "throughput/bytes_per_s"),
        "mfu": _median_metric(client, r, "throughput/mfu"),
        "failure": tags.get("aunet.failure", ""),
        "pretrain_cell": tags.get("aunet.pretrain_cell", ""),
        "head_counted": params.get("trainer.count_head_flops") == "True",
    }
    data_window = _float(params.get("data.window"))
    window_bytes = _float(params.get("data.window_bytes"))
    row["bytes_per_token"] = (window_bytes / data_window) if arch == "bpe" and data_window and window_bytes else None
    for key, value in metrics.items():
        if key.startswith(("test/bpb/", "val/bpb/", "test/bytes/", "test/context_bytes/", "aunet/units_per_byte/", "aunet/dropped/", "eval/chars",
                           "eval/diagnostics/", "test/units_per_byte/", "test/grapheme_cuts/")):
            row[key] = value
    for key, value in tags.items():  # the units of a test passage (training.tracking.log_boundaries)
        if key.startswith("aunet.units_example."):
            row[key] = value
    return row


def _median_metric(client, run, key: str):
    if key not in run.data.metrics:
        return None
    values = [m.value for m in client.get_metric_history(run.info.run_id, key)]
    return statistics.median(values) if values else None


def learning_curve(client, run_id: str, key: str = "train/loss") -> tuple[list[float], list[float]]:
    """(bytes seen, value) of one run's training loss."""
    seen = {m.step: m.value for m in client.get_metric_history(run_id, "data/bytes_seen")}
    points = sorted((seen[m.step], m.value) for m in client.get_metric_history(run_id, key) if m.step in seen)
    return [p[0] for p in points], [p[1] for p in points]


def _float(value):
    try:
        return float(value) if value not in (None, "", "null", "None") else None
    except ValueError:
        return None


# ---------------------------------------------------------------------------- runs tables
# A study's runs as a file: the frame collect() builds (CSV or Parquet, by the suffix), a sidecar
# ``<name>.study.json`` (study name, parent run's tags and params, the spec, languages) and
# ``<name>.curves.csv`` (each run's training curve). A report built from the three is the report
# built from MLflow; the files can be committed, shared and rebuilt without the store.

TABLE_SUFFIXES = (".csv", ".parquet")
TEXT_COLUMNS = ("run_id", "run_name", "status", "cell", "role", "arch", "split", "languages", "mixture", "budget",
                "budget_kind", "git_commit", "data_hash", "manifest", "failure", "pretrain_cell")
REQUIRED_COLUMNS = ("run_id", "status", "cell", "trial", "role", "arch", "seed", "compute", "val_objective",
                    "test_bpb", "git_commit", "data_hash", "manifest")


def _sidecars(path) -> tuple:
    from pathlib import Path

    path = Path(path)
    return path.with_name(path.stem + ".study.json"), path.with_name(path.stem + ".curves.csv")


def export_runs(runs: StudyRuns, path, progress=None, merge: bool = False) -> list:
    """Write ``runs`` to ``path`` (.csv or .parquet) with its two sidecars; each file written whole
    (a temporary file, then renamed). With ``merge``, an existing table at ``path`` is kept and
    ``runs`` added to it (see :func:`merge_runs`): a study run in parts, from several stores.
    Returns the paths written."""
    import os
    from pathlib import Path

    from aunet_lab.mlflow_client import client_for

    path = Path(path)
    if path.suffix not in TABLE_SUFFIXES:
        raise ReportError(f"--export {path}: expected a .csv or .parquet file")
    meta_path, curves_path = _sidecars(path)
    old = load_runs_table(path) if merge and path.exists() else None
    if old is not None and old.name != runs.name:
        raise ReportError(f"--merge {path}: a table of study {old.name!r}, not {runs.name!r}")
    if old is not None and old.spec_text and runs.spec_text and old.spec_text != runs.spec_text:
        raise ReportError(f"--merge {path}: study {runs.name!r} ran there from another spec; its numbers "
                          f"would not be comparable (export to a new table)")
    client = client_for(runs.tracking_uri)
    curves = []
    finished = runs.runs[runs.runs["status"] == "finished"] if not runs.runs.empty else runs.runs
    for run_id in finished.get("run_id", []):
        x, y = learning_curve(client, run_id, "train/bpb")
        curves += [{"run_id": run_id, "key": "train/bpb", "bytes_seen": a, "value": b} for a, b in zip(x, y)]
        if progress:
            progress(run_id)
    curves = pd.DataFrame(curves, columns=["run_id", "key", "bytes_seen", "value"])
    part = {"tracking_uri": runs.tracking_uri, "parent_run": runs.parent.get("run_id", ""),
            "runs": int(len(runs.runs))}
    meta = {"study": runs.name, "tracking_uri": runs.tracking_uri, "parent": runs.parent,
            "languages": runs.languages, "spec_text": runs.spec_text, "parts": [part]}
    frame = runs.runs
    if old is not None:
        frame, curves = merge_runs(old, runs.runs, curves)
        old_meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
        meta["parts"] = old_meta.get("parts") or [{"tracking_uri": old.tracking_uri, "runs": int(len(old.runs))}]
        meta["parts"].append(part)
        meta["languages"] = sorted(set(old.languages) | set(runs.languages))
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for target, write in ((path, lambda tmp: (frame.to_parquet(tmp, index=False) if path.suffix == ".parquet"
                                              else frame.to_csv(tmp, index=False))),
                          (meta_path, lambda tmp: tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))),
                          (curves_path, lambda tmp: curves.to_csv(tmp, index=False))):
        tmp = target.with_name(target.name + ".tmp")
        write(tmp)
        os.replace(tmp, target)
        written.append(target)
    return written


def merge_runs(old: StudyRuns, new: pd.DataFrame, new_curves: pd.DataFrame) -> tuple:
    """(rows, curves) of the runs table ``old`` with the rows ``new`` of the same study added. A run
    in both, or a cell and seed that both ran, is taken from ``new`` (a cell run again in a later part
    replaces its earlier runs: no seed counts twice)."""
    frame = old.runs
    if not new.empty and not frame.empty:
        replaced = set(zip(new["cell"].astype(str), new["seed"].astype(str)))
        again = pd.Series([(str(c), str(s)) in replaced for c, s in zip(frame["cell"], frame["seed"])],
                          index=frame.index, dtype=bool)
        frame = frame[~again & ~frame["run_id"].isin(set(new["run_id"]))]
    parts = [f for f in (frame, new) if not f.empty]
    rows = pd.concat(parts, ignore_index=True) if parts else new
    old_curves = old.curves if old.curves is not None else new_curves.iloc[:0]
    kept = old_curves[old_curves["run_id"].isin(set(frame["run_id"]) if "run_id" in frame else set())]
    curves = pd.concat([kept, new_curves], ignore_index=True) if not kept.empty else new_curves
    return rows, curves


def load_runs_table(path) -> StudyRuns:
    """A study's runs from a table :func:`export_runs` wrote; ReportError (one line) if it is not one."""
    from pathlib import Path

    path = Path(path)
    if path.suffix not in TABLE_SUFFIXES:
        raise ReportError(f"--runs {path}: expected a .csv or .parquet runs table")
    if not path.is_file():
        raise ReportError(f"--runs {path}: no such file")
    meta_path, curves_path = _sidecars(path)
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, float_precision="round_trip",
                                                                           dtype={c: str for c in TEXT_COLUMNS})
    except Exception as err:  # pandas/pyarrow raise many types for a damaged file
        raise ReportError(f"--runs {path}: not a readable runs table ({type(err).__name__}: "
                          f"{first_line(err)})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing and not frame.empty:
        raise ReportError(f"--runs {path}: not a runs table of aunet-lab report --export (missing columns: "
                          f"{', '.join(missing)})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    except (OSError, ValueError) as err:
        raise ReportError(f"{meta_path}: unreadable study sidecar ({type(err).__name__})") from None
    for col in TEXT_COLUMNS:
        if col in frame.columns:  # text columns: empty, not NaN, as collect() gives them
            frame[col] = frame[col].astype(object).where(frame[col].notna(), "").astype(str)
    curves = None
    if curves_path.is_file():
        curves = pd.read_csv(curves_path)
    languages = meta.get("languages") or sorted({c.split("/", 2)[2] for c in frame.columns
                                                 if c.startswith("test/bpb/")})
    return StudyRuns(meta.get("study") or path.stem, meta.get("tracking_uri", ""), parent=meta.get("parent", {}),
                     runs=frame, languages=languages, spec_text=meta.get("spec_text", ""), source=str(path),
                     curves=curves if curves is not None else pd.DataFrame(columns=["run_id", "key", "bytes_seen",
                                                                                     "value"]))
