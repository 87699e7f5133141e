"""Two-process training on CPU (gloo): DDP and FSDP2 against one process, launched as subprocesses;
unknown strategies are config errors. Split from test_training.py so the suite's workers share the
long tests evenly."""

import os
import subprocess
import sys

import torch

from test_training import cli, client, corpus, losses, write_config  # noqa: F401 (corpus: a fixture)


def test_two_process_ddp_matches_one_process_with_the_same_global_batch(corpus):
    root, _ = corpus
    common = dict(trainer__max_steps=12, trainer__val_every=6, trainer__checkpoint_every=6, trainer__accelerator="cpu",
                  trainer__samples=0)
    single = write_config(root, "ddp-single", **common)
    double = write_config(root, "ddp-double", trainer__devices=2, trainer__strategy="ddp", **common)
    for path in (single, double):
        # Launched as a subprocess; Lightning starts the second process by re-running this command.
        result = cli("train", str(path), timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
    assert "MEMBER: 2/2" in result.stderr and "Starting with 2 processes" in result.stderr
    ids = {name: (root / "runs" / name / "mlflow_run_id").read_text().strip() for name in ("ddp-single", "ddp-double")}
    # Checkpoints fall on validation steps here (every 6, validation every 6): they must still be written.
    assert (root / "runs" / "ddp-single" / "last.ckpt").is_file()
    one, two = losses(root, ids["ddp-single"]), losses(root, ids["ddp-double"])
    assert [s for s, _ in one] == [s for s, _ in two] == list(range(1, 13))
    for (_, a), (_, b) in zip(one, two):
        assert abs(a - b) <= 1e-4 * abs(a), (a, b)
    # Validation counts every held-out byte once over both processes: the same BPB as one process.
    for key in ("val/bpb", "val/bpb/fr", "test/bpb/zh-CN"):
        a = client(root).get_metric_history(ids["ddp-single"], key)[-1].value
        b = client(root).get_metric_history(ids["ddp-double"], key)[-1].value
        assert abs(a - b) <= 1e-4 * a, (key, a, b)
    bytes_a = client(root).get_metric_history(ids["ddp-single"], "data/bytes_seen")
    bytes_b = client(root).get_metric_history(ids["ddp-double"], "data/bytes_seen")
    assert sorted(m.value for m in bytes_a) == sorted(m.value for m in bytes_b)
    # Only the first process tracked: one MLflow run of that name.
    runs = client(root).search_runs([client(root).get_experiment_by_name("aunet-lab").experiment_id],
                                    "attributes.run_name = 'ddp-double'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"

    # The same two processes started by torchrun (the multi-node launch path, on one node).
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    elastic = write_config(root, "ddp-torchrun", trainer__devices=2, trainer__strategy="ddp", **common)
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                             "--master-addr", "127.0.0.1", "--master-port", str(port), "-m", "aunet_lab.cli", "train",
                             str(elastic)], capture_output=True, text=True, timeout=900,
                            env={**os.environ, "PYTHONHASHSEED": "0"})
    assert result.returncode == 0, result.stderr[-3000:]
    run_id = (root / "runs" / "ddp-torchrun" / "mlflow_run_id").read_text().strip()
    for (_, a), (_, b) in zip(one, losses(root, run_id)):
        assert abs(a - b) <= 1e-4 * abs(a), (a, b)
    runs = client(root).search_runs([client(root).get_experiment_by_name("aunet-lab").experiment_id],
                                    "attributes.run_name = 'ddp-torchrun'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"


def test_two_process_fsdp2_matches_one_process_and_resumes(corpus):
    root, _ = corpus
    common = dict(trainer__max_steps=12, trainer__val_every=6, trainer__checkpoint_every=6, trainer__accelerator="cpu",
                  trainer__samples=0)
    # Against the one-process run of the DDP test (the same config): it runs first in this module.
    single_name = "ddp-single"
    if not (root / "runs" / single_name / "final.ckpt").is_file():
        result = cli("train", str(write_config(root, single_name, **common)), timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
    sharded = write_config(root, "fsdp2-double", trainer__devices=2, trainer__strategy="fsdp2", **common)
    result = cli("train", str(sharded), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Starting with 2 processes" in result.stderr
    ids = {n: (root / "runs" / n / "mlflow_run_id").read_text().strip() for n in (single_name, "fsdp2-double")}
    one, two = losses(root, ids[single_name]), losses(root, ids["fsdp2-double"])
    assert [s for s, _ in two] == list(range(1, 13))
    for (_, a), (_, b) in zip(one, two):
        assert abs(a - b) <= 1e-4 * abs(a), (a, b)
    for key in ("train/grad_norm", "val/bpb"):
        a = client(root).get_metric_history(ids[single_name], key)[-1].value
        b = client(root).get_metric_history(ids["fsdp2-double"], key)[-1].value
        assert abs(a - b) <= 1e-4 * a, (key, a, b)
    # The sharded run's checkpoint is one consolidated file that a single process loads.
    from aunet_lab.training.checkpoint import load_checkpoint

    state = load_checkpoint(root / "runs" / "fsdp2-double" / "final.ckpt")["state_dict"]
    plain = load_checkpoint(root / "runs" / single_name / "final.ckpt")["state_dict"]
    assert state.keys() == plain.keys()
    assert all(torch.allclose(state[k], plain[k], atol=1e-4) for k in plain)
    result = cli("train", str(sharded), "--resume", "--set", "trainer.max_steps=14", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [s for s, _ in losses(root, ids["fsdp2-double"])] == list(range(1, 15))


def test_unknown_strategy_is_a_config_error(corpus, tmp_path):
    root, _ = corpus
    path = write_config(root, "bad-strategy", trainer__strategy="fsdp3")
    result = cli("train", str(path))
    assert result.returncode == 2
    assert "trainer.strategy: expected one of auto, ddp, fsdp, fsdp2, got 'fsdp3'" in result.stderr
