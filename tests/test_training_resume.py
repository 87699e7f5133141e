"""Crash safety of training: a run killed with SIGKILL (from outside, once in each pass over the
data) and resumed matches an uninterrupted run bit for bit, with every step logged once; a run
checkpointed at its last step still validates on resume. Split from test_training.py so the suite's
workers share the long tests evenly."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aunet_lab.config import load_config
from test_training import client, corpus, losses, write_config  # noqa: F401 (corpus: a fixture)


def _train_and_kill(root: Path, config: Path, run_dir: Path, kill_after: int, steps: int) -> str:
    proc = subprocess.Popen([sys.executable, "-m", "aunet_lab.cli", "train", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONHASHSEED": "0"})
    deadline = time.time() + 300
    run_id = None
    while time.time() < deadline and proc.poll() is None:
        if (run_dir / "mlflow_run_id").is_file():
            run_id = (run_dir / "mlflow_run_id").read_text().strip()
            done = losses(root, run_id)
            if done and done[-1][0] >= kill_after:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)  # from outside the training process
    proc.wait()
    partial = losses(root, run_id)
    assert partial and partial[-1][0] < steps
    return run_id


def test_killed_and_resumed_runs_match_an_uninterrupted_one_bit_for_bit(corpus):
    from aunet_lab.training.run import train

    root, _ = corpus
    steps = 70  # about 50 steps per pass over the budget: the runs cross into a second epoch
    # The reference and the resumes train in this process (no interpreter start and imports to pay);
    # only the runs to kill get processes of their own.
    reference = train(load_config(write_config(root, "resume-reference", trainer__max_steps=steps)))
    reference_losses = losses(root, reference.run_id)
    rng = random.Random()
    # One kill early in the first pass over the data, one in the second pass.
    for name, kill_after in (("resume-early", rng.randint(8, 20)), ("resume-late", rng.randint(52, 58))):
        config = write_config(root, name, trainer__max_steps=steps)
        run_id = _train_and_kill(root, config, root / "runs" / name, kill_after, steps)
        resumed = train(load_config(config), resume=True)
        assert resumed.run_id == run_id
        final = losses(root, run_id)
        assert [s for s, _ in final] == list(range(1, steps + 1)), name  # every step once
        assert final == reference_losses, (name, kill_after)  # bit-identical
        run = client(root).get_run(run_id)
        assert run.info.status == "FINISHED"
        val_steps = sorted(m.step for m in client(root).get_metric_history(run_id, "val/bpb"))
        assert val_steps == [20, 40, 60], name


def test_resuming_a_run_checkpointed_at_its_last_step_still_validates(corpus):
    # A run killed after its last checkpoint (while testing or writing artifacts) resumes with
    # nothing left to train; its final validation must still be there.
    from aunet_lab.training.run import train

    root, _ = corpus
    config = load_config(write_config(root, "resume-at-end", trainer__max_steps=10, trainer__val_every=10,
                                      trainer__checkpoint_every=10, trainer__samples=0))
    first = train(config)
    assert (first.run_dir / "last.ckpt").is_file() and "val/bpb" in first.val
    again = train(load_config(root / "resume-at-end.yaml"), resume=True)
    assert again.run_id == first.run_id and again.steps == 10
    assert again.val["val/bpb"] == pytest.approx(first.val["val/bpb"], rel=1e-6)
    assert [s for s, _ in losses(root, first.run_id)] == list(range(1, 11))
