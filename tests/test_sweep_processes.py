"""Three sweep processes on one study (issue 17): two run side by side while a third is stopped with
SIGTERM mid-trial and started again with --resume. The cell gets exactly its tuning trials, with
distinct learning rates (each process rebuilds the sampler, seeded by the cell's trial count, so
none replays another's proposals); the stopped trial is checkpointed, marked, and continued by the
resume without using up a retry; nothing is lost or left RUNNING. The stop is deterministic: the
stopped sweep's trial freezes itself (SIGSTOP fault point) after its first checkpoint, and is let go
once the sweep has passed the SIGTERM on to it."""

import os
import signal

from test_sweep import udhr, write_spec  # noqa: F401  (the module fixture and the spec writer)
from test_sweep_faults import ENV, assert_steps_logged_once, checkpointed_trial, mlflow_runs, sweep, trials_of, wait_for

TRIALS = 3  # one cell: the three processes ask for its trials at the same time


def _status_field(pid: int, name: str) -> str:
    with open(f"/proc/{pid}/status") as fh:
        return next(line.split(":", 1)[1].strip() for line in fh if line.startswith(name + ":"))


def _state(pid: int) -> str:
    return _status_field(pid, "State")[:1]


def _pending(pid: int) -> int:
    return int(_status_field(pid, "ShdPnd"), 16) | int(_status_field(pid, "SigPnd"), 16)


def test_two_sweeps_and_a_stopped_and_resumed_one_never_share_a_learning_rate(udhr):
    root, manifest = udhr
    path = write_spec(root, manifest, "three", axes__arch=["aunet2"], axes__data_budget=["6KB"],
                      axes__mixture={"en": {"en": 1.0}}, tune={"trials": TRIALS, "lr": [1e-3, 1e-2]},
                      sampler={"name": "random", "seed": 0},
                      base__trainer__checkpoint_every=4, base__trainer__val_every=0, base__data__max_epochs=1,
                      faults={"max_retries": 0, "poll_seconds": 1})
    folder = root / "studies" / "three"
    one_thread = {**ENV, "AUNET_LAB_THREADS": "1"}
    # The stopped sweep's trial freezes itself after step 5 (its checkpoint is at step 4), so the
    # SIGTERM always finds it mid-run, however fast or slow this machine is.
    # The other two start once it holds its trial: forked trials are quick, and two sweeps that
    # started first could otherwise run all three trials before the third asks for one.
    stopped = sweep(path, "--resume", env={**one_thread, "AUNET_LAB_FAULT": "step:5", "AUNET_LAB_FAULT_SIGNAL": "SIGSTOP"})
    trial_dir, trial_pid, run_dir = wait_for(lambda: checkpointed_trial(folder, worker=stopped.pid), every=0.1)
    first = sweep(path, "--resume", env=one_thread)
    second = sweep(path, "--resume", env=one_thread)
    wait_for(lambda: _state(trial_pid) == "T", every=0.05)
    os.kill(stopped.pid, signal.SIGTERM)
    wait_for(lambda: _pending(trial_pid) & (1 << (signal.SIGTERM - 1)), every=0.05)  # passed on to the trial
    os.kill(trial_pid, signal.SIGCONT)
    _, err = stopped.communicate(timeout=300)
    assert stopped.returncode == 143, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("stopped by SIGTERM: 1 running trial(s) checkpointed")
    again = sweep(path, "--resume", env=one_thread)
    for proc in (first, second, again):
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-3000:]

    studies = trials_of(folder)
    assert len(studies) == 1
    for name, trials in studies.items():
        counted = [t for t in trials if not t.user_attrs.get("retried")]
        assert len(counted) == TRIALS and all(t.state.name == "COMPLETE" for t in counted), name
        rates = [t.params["lr"] for t in counted]
        assert len(set(rates)) == TRIALS, (name, rates)  # no learning rate tried twice
    interrupted = [t for ts in studies.values() for t in ts if t.user_attrs.get("retried")]
    assert len(interrupted) == 1  # with max_retries 0: a stop on request is not a counted retry
    assert interrupted[0].user_attrs["failure"].startswith("interrupted by SIGTERM")
    retry = next(t for ts in studies.values() for t in ts if t.user_attrs.get("retry_of") == interrupted[0].number
                 and t.user_attrs.get("run_name") == interrupted[0].user_attrs["run_name"])
    assert retry.params == interrupted[0].params and retry.user_attrs["retries"] == 0

    client, runs = mlflow_runs(f"sqlite:///{root / 'mlflow.db'}", "three")
    assert not [r for r in runs if r.info.status == "RUNNING"], [(r.info.run_name, r.info.status) for r in runs]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(children) == TRIALS and all(r.info.status == "FINISHED" for r in children)
    resumed = next(r for r in children if r.info.run_name == run_dir.name)
    assert_steps_logged_once(client, resumed, int(resumed.data.params["trainer.max_steps_resolved"]))
    assert "test/bpb" in resumed.data.metrics
