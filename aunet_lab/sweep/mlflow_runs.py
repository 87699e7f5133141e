"""The study's records in MLflow: its parent run (created once, found again through the study folder),
a dead trial's run ended FAILED, and the summary table logged to the parent run at the end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from aunet_lab.sweep.spec import StudySpec


def parent_run(spec: StudySpec, uri: str, storage_url: str, cells: int) -> str:
    """The id of the study's parent run; the caller holds the study folder's lock, so that concurrent
    processes find the run the first one created."""
    from aunet_lab.mlflow_client import client_for, source_tags
    from aunet_lab.training.run import git_commit
    from aunet_lab.training.tracking import experiment_id

    client = client_for(uri)
    marker = spec.folder / "parent_run_id"
    if marker.is_file():
        run_id = marker.read_text().strip()
        run = client.get_run(run_id)
        if run.info.status == "KILLED":  # a stopped sweep, continued
            client.set_terminated(run_id, "RUNNING")
            if "aunet.status" in run.data.tags:
                client.delete_tag(run_id, "aunet.status")
        return run_id
    exp = experiment_id(client, spec.name, uri)
    run = client.create_run(exp, run_name=spec.name, tags={
        "aunet.study": spec.name, "aunet.kind": "study", "git.commit": git_commit(),
        **source_tags(git_commit(), "aunet-lab sweep"),
        "optuna.storage": storage_url, "aunet.cells": str(cells),
        "aunet.trials_per_cell": str(spec.tune.trials),
        **({"aunet.set": json.dumps(spec.overrides)} if spec.overrides else {})})
    from mlflow.entities import Param

    params = [Param(f"axes.{k}", json.dumps(v, default=str)[:6000]) for k, v in spec.axes.items()]
    params += [Param("tune", json.dumps(dataclasses.asdict(spec.tune))),
               Param("objective", json.dumps(dataclasses.asdict(spec.objective))),
               Param("sampler", json.dumps(dataclasses.asdict(spec.sampler))),
               Param("pruner", json.dumps(dataclasses.asdict(spec.pruner)))]
    client.log_batch(run.info.run_id, params=params)
    client.log_artifact(run.info.run_id, str(spec.path), "spec")
    marker.write_text(run.info.run_id + "\n")
    return run.info.run_id


def fail_trial_run(uri: str, attrs: dict, reason: str, say) -> None:
    """A trial that died leaves its MLflow run RUNNING: end it FAILED, with the reason. The run is
    found through the trial's attributes (set by the trial process) or the run folder's marker."""
    run_id = attrs.get("mlflow_run_id")
    if not run_id and attrs.get("trial_dir"):
        job = Path(attrs["trial_dir"]) / "trial.json"
        if job.is_file():
            config = json.loads(job.read_text())["config"]
            marker = Path(config["output_dir"]) / config["tracking"]["run_name"] / "mlflow_run_id"
            run_id = marker.read_text().strip() if marker.is_file() else None
    if not run_id:
        return
    try:
        from aunet_lab.mlflow_client import client_for

        client = client_for(uri)
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_tag(run_id, "aunet.failure", reason[:5000])
            client.set_terminated(run_id, "FAILED")
    except Exception as err:  # the tracking server itself may be what failed
        say(f"could not mark MLflow run {run_id} FAILED: {err}")


def finish_parent_run(uri: str, run_id: str, folder: Path, frame, refused: dict[str, str], blocked: list[str]):
    """Writes the summary table (with the refused cells' rows) beside the study and to its parent run,
    logs the trial counts, and ends the run FINISHED once every cell has all its trials; returns the
    table of the cells that ran."""
    from aunet_lab.mlflow_client import client_for

    client = client_for(uri)
    frame.to_csv(folder / "summary.csv", index=False)
    (folder / "summary.md").write_text(frame.to_markdown(index=False) + "\n")
    client.log_artifact(run_id, str(folder / "summary.csv"))
    client.log_artifact(run_id, str(folder / "summary.md"))
    if refused:
        client.set_tag(run_id, "aunet.refused", json.dumps(refused)[:5000])
        frame = frame[frame["refused"].isna()].drop(columns="refused")
    if blocked:
        frame["blocked"] = frame["cell"].isin(blocked)
    complete = all(frame["finished"] >= frame["wanted"])
    counts = {"trials_complete": int(frame["complete"].sum()), "trials_pruned": int(frame["pruned"].sum()),
              "trials_failed": int(frame["failed"].sum())}
    for key, value in counts.items():
        client.log_metric(run_id, f"study/{key}", value)
    if complete:
        client.set_terminated(run_id, "FINISHED")
    return frame
