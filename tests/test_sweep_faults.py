"""Studies under faults: a trial process killed, a worker killed and the sweep resumed, a trial
whose loss goes non-finite, the MLflow server going away, and (slow) two workers on PostgreSQL
with one of them killed. Each asserts trial states in Optuna and run statuses in MLflow."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_sweep import udhr, write_spec  # noqa: F401  (the module fixture and the spec writer)

ENV = {**os.environ, "PYTHONHASHSEED": "0"}


def sweep(path: Path, *args, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "aunet_lab.cli", "sweep", str(path), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or ENV)


def trials_of(folder: Path, storage: str | None = None):
    import optuna

    from aunet_lab.sweep.storage import open_storage

    store = open_storage(storage or str(folder / "optuna.journal"))
    out = {}
    for summary in optuna.get_all_study_summaries(store, include_best_trial=False):
        out[summary.study_name] = optuna.load_study(study_name=summary.study_name, storage=store).get_trials()
    return out


def wait_for(predicate, timeout: float = 300, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except OSError:  # gone meanwhile
        return -1


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def trial_pids(folder: Path) -> dict[Path, int]:
    """Running trial processes of a study folder, by trial folder (the sweep writes each trial's pid)."""
    found = {}
    for marker in folder.glob("trials/*/*/pid"):
        pid = int(marker.read_text() or 0)
        if pid and _running(pid):
            found[marker.parent] = pid
    return found


def checkpointed_trial(folder: Path, worker: int | None = None):
    """(trial folder, trial pid, run folder) of a running trial that has written a checkpoint (and
    was started by ``worker``, if given: its child, or a child of its fork server)."""
    for trial_dir, pid in trial_pids(folder).items():
        config = json.loads((trial_dir / "trial.json").read_text())["config"]
        run_dir = Path(config["output_dir"]) / config["tracking"]["run_name"]
        if (run_dir / "last.ckpt").is_file() and not (trial_dir / "result.json").exists():
            if worker is None or worker in (_parent(pid), _parent(_parent(pid))):
                return trial_dir, pid, run_dir
    return None


def mlflow_runs(uri: str, experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id], max_results=1000)


def assert_steps_logged_once(client, run, steps: int):
    history = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert sorted(history) == list(range(1, steps + 1)), (run.info.run_name, sorted(history))


def long_spec(root, manifest, name, **changes):
    # One cell, two trials of about 60 steps with a checkpoint every 10: long enough to kill mid-run.
    base = dict(axes__arch=["aunet2"], axes__data_budget=["16KB"], axes__mixture={"en-fr": {"en": 0.5, "fr": 0.5}},
                base__trainer__checkpoint_every=10, base__trainer__val_every=30, pruner={"name": "none"},
                faults={"max_retries": 2, "poll_seconds": 1})
    base.update(changes)
    return write_spec(root, manifest, name, **base)


def test_killed_trial_process_is_retried_from_its_checkpoint(udhr):
    root, manifest = udhr
    path = long_spec(root, manifest, "kill-trial")
    folder = root / "studies" / "kill-trial"
    proc = sweep(path)
    trial_dir, pid, run_dir = wait_for(lambda: checkpointed_trial(folder))
    os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    trials = next(iter(trials_of(folder).values()))
    dead = [t for t in trials if t.state.name == "FAIL"]
    assert len(dead) == 1 and dead[0].user_attrs["retried"] is True
    assert "killed by signal 9" in dead[0].user_attrs["failure"]
    counted = [t for t in trials if not t.user_attrs.get("retried")]
    assert len(counted) == 2 and all(t.state.name == "COMPLETE" for t in counted)
    retry = next(t for t in counted if t.user_attrs.get("retry_of") == dead[0].number)
    assert retry.params == dead[0].params and retry.user_attrs["run_name"] == dead[0].user_attrs["run_name"]
    # The retry resumed the dead trial's run: one MLflow run, FINISHED, every step logged once.
    client, runs = mlflow_runs(f"sqlite:///{root / 'mlflow.db'}", "kill-trial")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert all(r.info.status == "FINISHED" for r in runs), [(r.info.run_name, r.info.status) for r in runs]
    assert len(children) == 2
    resumed = next(r for r in children if r.info.run_name == dead[0].user_attrs["run_name"])
    steps = int(resumed.data.params["trainer.max_steps_resolved"])
    assert_steps_logged_once(client, resumed, steps)


def test_killed_sweep_resumes_without_losing_or_repeating_trials(udhr):
    root, manifest = udhr
    path = long_spec(root, manifest, "kill-all", tune__trials=3)
    folder = root / "studies" / "kill-all"
    # Trial 1 freezes itself after step 12 (its checkpoint is at step 10): once another trial has
    # finished, every process is killed with trial 1 surely mid-run, however loaded the machine.
    proc = sweep(path, "--workers", "2", env={**ENV, "AUNET_LAB_FAULT": "step:12", "AUNET_LAB_FAULT_SIGNAL": "SIGSTOP",
                                              "AUNET_LAB_FAULT_RUN": "*-t1"})
    wait_for(lambda: list(folder.glob("trials/*/*/result.json")) and checkpointed_trial(folder))
    running = list(trial_pids(folder).values())
    assert running
    for pid in [proc.pid, *running]:
        os.kill(pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    wait_for(lambda: not trial_pids(folder), 30)
    # Trials that finished training before the kill (told to Optuna or not: the worker may have died
    # between the two) must not be lost or run again.
    completed_before = {int(p.parent.name) for p in folder.glob("trials/*/*/result.json")
                        if json.loads(p.read_text())["status"] == "complete"}
    assert completed_before

    again = sweep(path, "--resume")
    out, err = again.communicate(timeout=900)
    assert again.returncode == 0, err[-3000:]
    trials = next(iter(trials_of(folder).values()))
    counted = [t for t in trials if not t.user_attrs.get("retried")]
    assert len(counted) == 3 and all(t.state.name == "COMPLETE" for t in counted)
    assert completed_before <= {t.number for t in counted}  # no completed trial lost
    dead = [t for t in trials if t.user_attrs.get("retried")]
    assert dead and all("died" in t.user_attrs["failure"] for t in dead)
    # Each trial ran to completion once: one FINISHED run per trial run folder, none left RUNNING.
    client, runs = mlflow_runs(f"sqlite:///{root / 'mlflow.db'}", "kill-all")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert not [r for r in runs if r.info.status == "RUNNING"]
    finished = [r.info.run_name for r in children if r.info.status == "FINISHED"]
    assert sorted(finished) == sorted({t.user_attrs["run_name"] for t in counted})
    for r in children:
        if r.info.status == "FINISHED":
            assert_steps_logged_once(client, r, int(r.data.params["trainer.max_steps_resolved"]))


def test_non_finite_loss_fails_the_trial_with_its_reason_and_the_study_goes_on(udhr):
    root, manifest = udhr
    # Learning rates of 1e3-1e4 overflow within a few steps.
    path = write_spec(root, manifest, "nan", axes__arch=["bpe", "aunet2"], axes__data_budget=["6KB"],
                      axes__mixture={"en": {"en": 1.0}}, tune={"trials": 1, "lr": [1e3, 1e4]})
    result = subprocess.run([sys.executable, "-m", "aunet_lab.cli", "sweep", str(path)], capture_output=True,
                            text=True, env=ENV, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    for name, trials in trials_of(root / "studies" / "nan").items():
        assert len(trials) == 1, name  # not retried: it would fail again
        t = trials[0]
        assert t.state.name == "FAIL" and "non-finite loss" in t.user_attrs["failure"], (name, t.user_attrs)
    client, runs = mlflow_runs(f"sqlite:///{root / 'mlflow.db'}", "nan")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(children) == 2
    for r in children:
        assert r.info.status == "FAILED" and "non-finite" in r.data.tags["aunet.failure"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_server(backend: str, port: int, artifacts: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
                             "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            # no job runner and job consumers (MLflow's GenAI jobs): 8 processes less to start
                            env={**ENV, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                            start_new_session=True)
    import urllib.request

    def up():
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200
        except OSError:
            return False

    wait_for(up, 120)
    return proc


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_mlflow_server_going_away_mid_study(udhr):
    root, manifest = udhr
    port = _free_port()
    backend = f"sqlite:///{root / 'server.db'}"
    server = start_mlflow_server(backend, port, root / "server-artifacts")
    uri = f"http://127.0.0.1:{port}"
    path = long_spec(root, manifest, "server-gone", tune__trials=1, tracking_uri=uri)
    folder = root / "studies" / "server-gone"
    proc = sweep(path)
    try:
        _, _, run_dir = wait_for(lambda: checkpointed_trial(folder))
        stop(server)  # the server goes away mid-trial; training goes on, metrics are kept on disk
        wait_for(lambda: (run_dir / "unlogged_metrics.jsonl").is_file(), 120)
        time.sleep(3)
        server = start_mlflow_server(backend, port, root / "server-artifacts")  # and comes back
        out, err = proc.communicate(timeout=900)
    finally:
        stop(server)
    assert proc.returncode == 0, err[-3000:]
    assert "MLflow unreachable" in (run_dir.parent.parent / "trials").joinpath(
        "aunet2-16KB-enfr", "0000", "log.txt").read_text()
    trials = next(iter(trials_of(folder).values()))
    assert [t.state.name for t in trials] == ["COMPLETE"]
    client, runs = mlflow_runs(backend, "server-gone")  # what the server stored, read from its database
    child = next(r for r in runs if r.data.tags.get("mlflow.parentRunId"))
    assert child.info.status == "FINISHED"
    assert_steps_logged_once(client, child, int(child.data.params["trainer.max_steps_resolved"]))
    assert not (run_dir / "unlogged_metrics.jsonl").exists()


@pytest.mark.slow
def test_two_workers_on_postgresql_one_killed(udhr, tmp_path):
    from postgres import running_postgres

    root, manifest = udhr
    with running_postgres(tmp_path) as pg:
        pg.create_database("optuna")
        pg.create_database("mlflow")
        port = _free_port()
        server = start_mlflow_server(pg.url("mlflow"), port, root / "pg-artifacts")
        try:
            uri = f"http://127.0.0.1:{port}"
            storage = pg.url("optuna")
            path = long_spec(root, manifest, "pg", axes__data_budget=["12KB", "16KB"], tracking_uri=uri,
                             faults={"max_retries": 2, "poll_seconds": 1, "heartbeat_interval": 2, "grace_period": 8})
            folder = root / "studies" / "pg"
            # Two workers that look like two hosts: only Optuna's heartbeats tell one about the other.
            first = sweep(path, "--storage", storage, "--resume", env={**ENV, "AUNET_LAB_HOST": "host-a"})
            second = sweep(path, "--storage", storage, "--resume", env={**ENV, "AUNET_LAB_HOST": "host-b"})
            wait_for(lambda: checkpointed_trial(folder, worker=first.pid))
            os.kill(first.pid, signal.SIGKILL)  # its trial (mid-run, checkpointed) dies with it
            first.communicate(timeout=60)
            out, err = second.communicate(timeout=1200)
            assert second.returncode == 0, err[-3000:]
            all_trials = trials_of(folder, storage)
            assert len(all_trials) == 2
            states = {name: [(t.number, t.state.name, t.user_attrs.get("host"), t.user_attrs.get("failure"))
                             for t in trials] for name, trials in all_trials.items()}
            for name, trials in all_trials.items():
                counted = [t for t in trials if not t.user_attrs.get("retried")]
                assert len(counted) == 2 and all(t.state.name == "COMPLETE" for t in counted), states
            dead = [t for ts in all_trials.values() for t in ts if t.user_attrs.get("retried")]
            assert dead and all("no heartbeat" in t.user_attrs["failure"] for t in dead), states
            client, runs = mlflow_runs(uri, "pg")
            assert not [r for r in runs if r.info.status == "RUNNING"]
            finished = [r for r in runs if r.data.tags.get("mlflow.parentRunId") and r.info.status == "FINISHED"]
            assert len(finished) == 4
        finally:
            stop(server)
