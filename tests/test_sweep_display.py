"""The sweep's live display: a cell's counts by trial state, and its running trials' progress as their
processes write it (ProgressFile)."""

from types import SimpleNamespace

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from aunet_lab.sweep.display import cell_status, status_table
from aunet_lab.training.callbacks import ProgressFile, read_progress


def _trial(study, state, **attrs):
    trial = study.ask({"lr": FloatDistribution(1e-4, 1e-2, log=True)})
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    if state == TrialState.COMPLETE:
        study.tell(trial, 3.0)
    elif state != TrialState.RUNNING:
        study.tell(trial, state=state)
    return trial


def test_a_cells_counts_and_its_running_trials_progress(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    _trial(study, TrialState.COMPLETE)
    _trial(study, TrialState.COMPLETE)
    _trial(study, TrialState.PRUNED)
    _trial(study, TrialState.FAIL)
    _trial(study, TrialState.FAIL, retried=True)  # replaced by its retry: not counted
    running = tmp_path / "t5"
    running.mkdir()
    _trial(study, TrialState.RUNNING, trial_dir=str(running))
    _trial(study, TrialState.RUNNING, trial_dir=str(tmp_path / "not-started"))

    # What the trial process writes: at a validation, then bytes moving on between validations.
    writer = ProgressFile(running / "progress.json")
    trainer = SimpleNamespace(is_global_zero=True, global_step=40, max_steps=100, sanity_checking=False,
                              callback_metrics={"loss": 2.5})
    module = SimpleNamespace(bytes_seen=1_250_000, last_val={"val/bpb": 3.2141})
    writer.on_validation_end(trainer, module)
    module.bytes_seen, trainer.global_step = 1_500_000, 48
    writer._write(trainer, module)
    record = read_progress(running / "progress.json")
    assert (record["step"], record["bytes"], record["val_bpb"]) == (48, 1_500_000, 3.2141)
    assert not list(running.glob(".*tmp"))  # written whole, then renamed

    status = cell_status("aunet2-1MB-en", 6, study.get_trials(deepcopy=False), budget_bytes=4_000_000)
    assert (status.complete, status.pruned, status.failed, status.done, status.wanted) == (2, 1, 1, 4, 6)
    assert status.running == ["t5 1.5 MB of 4.0 MB, val 3.214", "t6 starting"]

    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(status_table([status], "study s"))
    text = console.export_text()
    assert "aunet2-1MB-en" in text and "4/6" in text and "t5 1.5 MB of 4.0 MB, val 3.214" in text
