"""The kill matrix (issue 17): one run is stopped at every deterministic fault point in turn and
resumed each time (SIGKILL before its first checkpoint, SIGINT and SIGTERM mid-run, SIGKILL between
checkpoints, after its last step, during test and during the final save). After each stop its MLflow
run is RUNNING (SIGKILL: nothing could mark it) or KILLED with an ``aunet.status`` tag (a signal);
at the end it is FINISHED, with per-step losses and test metrics bit-identical to an uninterrupted
run that trains meanwhile, every step logged once, and no run of the experiment left RUNNING."""

import itertools
import multiprocessing
import os
import sys

import pytest
import torch

from aunet_lab.training.tracking import experiment_id
from test_training import client, corpus, losses, write_config  # noqa: F401 (corpus: a fixture)

STEPS = 20  # checkpoints every 5 steps, validation every 10: the last checkpoint is at the last step
CHAIN = [  # (fault point, signal, exit status, checkpoint step left behind)
    ("step:3", "SIGKILL", -9, None),  # before the first checkpoint: the resume restarts at step 0
    ("step:7", "SIGINT", 130, 7),  # a signal: a checkpoint at the step it arrived after
    ("step:12", "SIGTERM", 143, 12),
    ("step:17", "SIGKILL", -9, 15),  # between checkpoints: back to the last one
    ("fit_end", "SIGKILL", -9, 20),  # after the last step reached MLflow
    ("test", "SIGKILL", -9, 20),
    ("final_save", "SIGKILL", -9, 20),
]


class _Run:
    """One ``aunet-lab train`` process, forked from a server that has already imported the CLI's
    libraries (torch, Lightning, MLflow: about 5 s a start). Each run is still its own process,
    signalled and SIGKILLed for real, with its own environment and its stderr kept in a file."""

    def __init__(self, config, resume, fault, signal_name):
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        if fault:
            env.update(AUNET_LAB_FAULT=fault, AUNET_LAB_FAULT_SIGNAL=signal_name)
        self.log = config.parent / f"{config.stem}-{next(_SERIAL)}.stderr"
        argv = ["train", str(config), *(["--resume"] if resume else [])]
        self.process = _CONTEXT.Process(target=_child, args=(argv, env, str(self.log)))
        self.process.start()

    def wait(self, timeout):
        self.process.join(timeout)
        return self.process.exitcode

    def stderr(self):
        return self.log.read_text()


def _child(argv, env, log):
    os.environ.pop("AUNET_LAB_FAULT", None)
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    from aunet_lab.cli import main

    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


_SERIAL = itertools.count()
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["aunet_lab.cli", "aunet_lab.training.run", "lightning.pytorch", "mlflow",
                                 "mlflow.store.tracking.sqlalchemy_store"])


def _train(config, resume=False, fault=None, signal_name="SIGKILL"):
    return _Run(config, resume, fault, signal_name)


def _steps(root, run_id, key):
    return sorted(m.step for m in client(root).get_metric_history(run_id, key))


@pytest.mark.slow
def test_a_run_stopped_at_every_fault_point_and_resumed_matches_an_uninterrupted_one(corpus):
    root, _ = corpus
    common = dict(trainer__max_steps=STEPS, trainer__val_every=10, trainer__checkpoint_every=5,
                  trainer__samples=0, tracking__experiment="kill-matrix")
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    experiment_id(client(root), "kill-matrix", uri)  # the store first: two processes start at once
    reference = _train(write_config(root, "kill-reference", **common))
    config = write_config(root, "kill-chain", **common)
    run_dir = root / "runs" / "kill-chain"
    run_id = None
    for i, (point, sig, code, checkpoint) in enumerate(CHAIN):
        proc = _train(config, resume=i > 0, fault=point, signal_name=sig)
        assert proc.wait(timeout=600) == code, (point, proc.stderr()[-2000:])
        err = proc.stderr()
        run_id = run_id or (run_dir / "mlflow_run_id").read_text().strip()
        assert (run_dir / "mlflow_run_id").read_text().strip() == run_id  # one MLflow run throughout
        run = client(root).get_run(run_id)
        if sig == "SIGKILL":
            assert run.info.status == "RUNNING", point
        else:
            assert run.info.status == "KILLED", point
            assert run.data.tags["aunet.status"].startswith(f"killed: stopped by {sig} at step {checkpoint}")
            last_line = err.strip().splitlines()[-1]
            assert "Traceback" not in err and "--resume" in last_line, err[-2000:]
            assert f"MLflow run {run_id} is KILLED" in last_line
        if checkpoint is None:
            assert not (run_dir / "last.ckpt").exists()
        else:
            saved = torch.load(run_dir / "last.ckpt", weights_only=False, map_location="cpu")
            assert saved["global_step"] == checkpoint, point
    final = _train(config, resume=True)
    assert final.wait(timeout=600) == 0, final.stderr()[-2000:]
    assert reference.wait(timeout=600) == 0, reference.stderr()[-2000:]

    ref_id = (root / "runs" / "kill-reference" / "mlflow_run_id").read_text().strip()
    reference_losses = losses(root, ref_id)
    assert [s for s, _ in reference_losses] == list(range(1, STEPS + 1))
    assert losses(root, run_id) == reference_losses  # every step once, bit-identical
    tests = [{k: v for k, v in client(root).get_run(r).data.metrics.items() if k.startswith("test/")}
             for r in (ref_id, run_id)]
    assert "test/bpb" in tests[0] and tests[1] == tests[0]
    assert _steps(root, run_id, "test/bpb") == [STEPS]  # logged once
    assert _steps(root, run_id, "val/bpb") == [10, 20]
    assert _steps(root, run_id, "compute/flops_per_byte") == [0]
    run = client(root).get_run(run_id)
    assert run.info.status == "FINISHED" and "aunet.status" not in run.data.tags
    assert (run_dir / "final.ckpt").is_file() and not (run_dir / ".final.ckpt.tmp").exists()
    exp = client(root).get_experiment_by_name("kill-matrix")
    assert not client(root).search_runs([exp.experiment_id], "attributes.status = 'RUNNING'")


def test_a_run_stopped_by_a_signal_is_never_counted_as_pruned():
    from aunet_lab.reports.collect import _status

    assert _status("KILLED", {"aunet.status": "killed: stopped by SIGTERM at step 12; checkpoint saved there"}) == "killed"
    assert _status("KILLED", {"aunet.status": "pruned"}) == "pruned"
    assert _status("KILLED", {}) == "pruned"
    assert _status("FINISHED", {}) == "finished"
