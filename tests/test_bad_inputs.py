"""Bad inputs from issue 17 that used to end in a traceback, hang, or pass silently: each is now one
line of at most 300 characters on stderr with exit status 2, before anything is created. In process
(``cli.main``), on one small prepared corpus, so the whole file costs a few seconds."""

import contextlib
import io
import json
import os
import time

import pytest
import yaml

from corpora import make_corpus

BOMB = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] +
                 [f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")]) + "\n"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    manifest, cache = make_corpus(root, ["en", "fr"], 30, split={"val": 0.2, "test": 0.2, "seed": 0}, name="bad")
    config = {"model": {"arch": "aunet", "aunet": {"ffn_multiple_of": 16, "stages": [
        {"dim": 32, "layers": 1, "heads": 2}, {"dim": 32, "layers": 1, "heads": 2}]}},
              "data": {"manifest": str(manifest), "mixture": {"en": 0.5, "fr": 0.5}, "budget": "4KB",
                       "window_bytes": 64, "batch_size": 2, "cache": str(cache)},
              "trainer": {"max_steps": 3, "progress": False},
              "tracking": {"tracking_uri": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}", "run_name": "bad"},
              "output_dir": str(root / "runs")}
    (root / "good.yaml").write_text(yaml.safe_dump(config))
    base = {k: v for k, v in config.items() if k in ("data", "trainer")}
    base["data"] = {k: v for k, v in base["data"].items() if k not in ("mixture", "budget")}
    spec = {"name": "bad-study", "base": base, "models": {"aunet2": config["model"]["aunet"]},
            "axes": {"arch": ["aunet2"], "data_budget": ["4KB"], "mixture": {"en": {"en": 1.0}}},
            "tune": {"trials": 1, "lr": [1e-3, 3e-3]}, "output_dir": str(root / "studies"),
            "tracking_uri": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"}
    (root / "study.yaml").write_text(yaml.safe_dump(spec))
    return root, manifest, cache


def run(*argv):
    from aunet_lab.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def refused(*argv, expect: str):
    code, _, err = run(*argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, (code, err[-2000:])
    assert expect in lines[0] and len(lines[0]) <= 300, lines[0]
    return lines[0]


def test_the_good_inputs_pass_their_checks(lab):
    root, manifest, cache = lab
    code, out, err = run("train", root / "good.yaml", "--check")
    assert code == 0 and out.startswith("check passed: would train aunet"), err
    code, out, err = run("sweep", root / "study.yaml", "--check")
    assert code == 0 and "check passed: study bad-study: 1 cells" in out, err
    code, out, err = run("data", "prepare", manifest, "--cache", cache, "--check")
    assert code == 0 and "en: prepared, matches the lock" in out, err
    assert not (root / "runs").exists() and not (root / "mlruns").exists() and not (root / "studies").exists()


@pytest.mark.parametrize("command", ["train", "sweep", "prepare"])
def test_binary_and_non_utf8_yaml_is_one_line(lab, command, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: x\n\xff\xfe\x00\x01binary\n")
    argv = ["data", "prepare", bad] if command == "prepare" else [command, bad]
    refused(*argv, expect="not UTF-8 text (byte 8)")
    folder = tmp_path / "a-folder.yaml"
    folder.mkdir()
    argv[-1] = folder
    refused(*argv, expect="not a file")


@pytest.mark.parametrize("command", ["train", "sweep", "prepare"])
def test_an_alias_bomb_is_refused_at_once(lab, command, tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    assert len(BOMB) < 1000
    argv = ["data", "prepare", bomb] if command == "prepare" else [command, bomb]
    start = time.monotonic()
    refused(*argv, expect="aliases expand to more than 100,000 values")
    assert time.monotonic() - start < 5


def test_an_alias_bomb_under_a_key_and_in_set(lab, tmp_path):
    root, _, _ = lab
    config = yaml.safe_load((root / "good.yaml").read_text())
    text = yaml.safe_dump(config).replace("max_steps: 3", "max_steps: *i")
    bomb = tmp_path / "bomb-key.yaml"
    bomb.write_text(BOMB.replace("a: &a", "x: &a", 1) + text)
    refused("train", bomb, expect="aliases expand")
    refused("train", root / "good.yaml", "--set", "trainer.max_steps=" + BOMB.replace("\n", ", ").join("{}"),
            expect="aliases expand")
    # A few aliases in a list value: refused by type, and the message stays short.
    small = tmp_path / "small.yaml"
    small.write_text(yaml.safe_dump(config).replace("max_steps: 3", "max_steps: [&x [1, 2, 3], *x, *x, *x, *x]"))
    refused("train", small, expect="trainer.max_steps: expected an integer")


def test_storages_tracking_uris_and_folders(lab, tmp_path):
    root, manifest, cache = lab
    study, a_file = root / "study.yaml", root / "good.yaml"
    refused("sweep", study, "--storage", "sqlite:////nonexistent-aunet/dir/x.db", expect="does not exist")
    refused("sweep", study, "--storage", "bogus://x", expect="unknown storage")
    refused("sweep", study, "--storage", f"{a_file}/optuna.journal", expect="is a file, not a folder")
    refused("sweep", study, "--storage", "postgresql://nobody@127.0.0.1:1/x", expect="cannot connect")
    refused("sweep", study, "--tracking-uri", "bogus://x", expect="unknown scheme")
    refused("sweep", study, "--tracking-uri", f"sqlite:///{a_file}/mlflow.db", expect="is a file, not a folder")
    refused("sweep", study, "--output-dir", a_file, expect="output_dir")
    refused("sweep", study, "--workers", "0", expect="--workers: expected at least 1")
    refused("train", a_file, "--output-dir", a_file, "--check", expect="output_dir")
    refused("train", a_file, "--tracking-uri", "bogus://x", expect="unknown scheme")
    refused("data", "prepare", manifest, "--cache", a_file, expect="--cache")
    refused("eval", root / "missing.ckpt", "--out", a_file, expect="--out")
    for check in ([], ["--check"]):  # the run itself and --check refuse alike, creating nothing
        refused("sweep", study, "--storage", "bogus://x", *check, expect="unknown storage")
    assert not (root / "studies").exists() and not (root / "runs").exists()


def test_a_truncated_prepared_corpus_is_refused_with_how_to_reprepare(lab, tmp_path):
    import shutil

    root, manifest, cache = lab
    damaged = tmp_path / "cache"
    shutil.copytree(cache, damaged)
    train_file = damaged / "corpora" / "bad" / "fr" / "train.jsonl"
    data = train_file.read_bytes()
    train_file.write_bytes(data[: len(data) // 2])
    line = refused("train", root / "good.yaml", "--set", f"data.cache={damaged}", "--check",
                   expect="does not match the lock")
    assert line.endswith(f"aunet-lab data prepare {manifest} --languages fr --cache {damaged}")
    # the training itself refuses it too, before any run exists
    refused("train", root / "good.yaml", "--set", f"data.cache={damaged}", "--set", "tracking.run_name=damaged",
            expect="does not match the lock")
    assert not (root / "runs" / "damaged" / "mlflow_run_id").exists()
    # data prepare tells a damaged cache from a changed source: it rebuilds the text, which matches
    code, out, err = run("data", "prepare", manifest, "--cache", damaged)
    assert code == 0 and "does not match the lock (damaged cache); rebuilding" in out, err
    assert train_file.read_bytes() == data


def test_a_changed_source_is_told_apart_from_a_damaged_cache(lab, tmp_path):
    import shutil

    root, manifest, cache = lab
    copy = tmp_path / "m"
    shutil.copytree(root / "src", copy / "src")
    spec = yaml.safe_load(manifest.read_text())
    spec["sources"][0]["paths"] = str(copy / "src/{tag}/*.jsonl")
    moved = copy / "bad.yaml"
    moved.write_text(yaml.safe_dump(spec))
    shutil.copy(manifest.with_name("bad.lock.yaml"), copy / "bad.lock.yaml")
    docs = copy / "src" / "en" / "docs.jsonl"
    docs.write_text(docs.read_text().replace("a", "b"))
    line = refused("data", "prepare", moved, "--cache", tmp_path / "fresh", expect="the source changed")
    assert "delete the en entry under text_sha256" in line


def test_a_checkpoint_of_another_program_is_refused_for_warm_start(lab, tmp_path):
    import torch

    root, _, _ = lab
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 3}, foreign)
    refused("train", root / "good.yaml", "--init-from", foreign, "--check", expect="not a checkpoint written by aunet-lab")
    refused("train", root / "good.yaml", "--init-from", foreign, "--set", "tracking.run_name=foreign",
            expect="not a checkpoint written by aunet-lab")
    assert not (root / "runs" / "foreign" / "mlflow_run_id").exists()


def test_a_truncated_spill_line_is_dropped_with_a_warning(tmp_path):
    from aunet_lab.training.tracking import MetricBuffer

    class Store:
        logged: list = []

        def log_batch(self, run_id, metrics=()):
            self.logged.extend(metrics)

    spill = tmp_path / "unlogged_metrics.jsonl"
    spill.write_text(json.dumps(["train/loss", 1.5, 1, 4]) + "\n" + '["train/loss", 1.4, 2, 5' )  # killed mid-write
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        buffer = MetricBuffer(Store(), "run", spill=spill)
        assert buffer.skip_through == 4
        buffer.log({"train/loss": 1.3}, 6)
        buffer.flush()
    assert [(m.step, m.value) for m in Store.logged] == [(4, 1.5), (6, 1.3)]
    assert "line 2 is damaged" in err.getvalue() and not spill.exists()


def test_the_error_line_is_cut_to_300_characters():
    from aunet_lab.cli import one_line

    assert len(one_line("error: " + "x" * 10_000)) == 300
    assert one_line("a\nb\n  c") == "a b c"


def test_what_the_mutation_test_found(lab, tmp_path):
    """Inputs the --check fuzzing (test_check_fuzz.py) turned up: a hang, two tracebacks, an OSError."""
    root, _, _ = lab
    start = time.monotonic()
    refused("train", root / "good.yaml", "--set", "model.aunet.stages=[{dim: 32, layers: 1000000000000, heads: 2}, "
            "{dim: 32, layers: 1, heads: 2}]", "--check", expect="layers: expected an integer in [1, 1024]")
    assert time.monotonic() - start < 5  # built a trillion blocks before
    refused("train", root / "good.yaml", "--set", "model.arch=bpe", "--set", "model.bpe.heads=5", "--check",
            expect="model.bpe.heads: expected a divisor of dim 64")
    spec = yaml.safe_load((root / "study.yaml").read_text())
    listed = tmp_path / "list.yaml"
    listed.write_text(yaml.safe_dump([spec]))
    refused("sweep", listed, "--check", expect="(top level): expected a mapping")
    spec["base"]["data"] = None
    nulled = tmp_path / "null-data.yaml"
    nulled.write_text(yaml.safe_dump(spec))
    code, out, err = run("sweep", nulled, "--check")
    assert code in (0, 2) and "Traceback" not in err
    refused("train", root / "good.yaml", "--set", "data.cache=" + "x" * 400, "--check", expect="File name too long")


def test_a_mistyped_trial_start_mode_is_refused_before_anything_runs(lab, monkeypatch):
    root, _, _ = lab
    monkeypatch.setenv("AUNET_LAB_TRIAL_START", "spwan")
    # Other tests in this module share ``root`` and may have written runs there already (in any order).
    before = sorted(root.rglob("*"))
    refused("sweep", root / "study.yaml", expect="AUNET_LAB_TRIAL_START: expected fork or spawn, got 'spwan'")
    assert sorted(root.rglob("*")) == before and not (root / "studies").exists()


def test_an_unreadable_file_is_one_line(lab, monkeypatch):
    # The suite runs as root, for whom chmod 000 changes nothing: the read itself is made to fail.
    from pathlib import Path

    root, _, _ = lab

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    refused("train", root / "good.yaml", expect="cannot read the config file (Permission denied)")
    refused("sweep", root / "study.yaml", expect="cannot read the study spec (Permission denied)")


def test_a_failure_after_the_run_exists_ends_it_failed_with_the_reason(lab):
    import lightning.pytorch as pl
    from mlflow.tracking import MlflowClient

    from aunet_lab.config import load_config
    from aunet_lab.training.run import train

    root, _, _ = lab

    class Boom(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if trainer.global_step == 2:
                raise RuntimeError("disk on fire")

    config = load_config(root / "good.yaml", overrides=["tracking.run_name=boom"])
    with pytest.raises(RuntimeError, match="disk on fire"):
        train(config, callbacks=[Boom()])
    run_id = (root / "runs" / "boom" / "mlflow_run_id").read_text().strip()
    run = MlflowClient(f"sqlite:///{root / 'mlruns' / 'mlflow.db'}").get_run(run_id)
    assert run.info.status == "FAILED" and run.data.tags["aunet.failure"] == "RuntimeError: disk on fire"


@pytest.mark.parametrize("argv, expect", [
    (["peak", "--max-size", "-1"], "--max-size: expected a matrix side of at least 64"),  # saved a peak of 0 before
    (["peak", "--repeats", "0"], "--repeats: expected at least 1"),
    (["split", "check", "word", "--max-bytes", "-5"], "--max-bytes: expected at least 1 byte"),
    (["split", "check", "word", "--generated", "-3"], "--generated: expected 0 or more"),
    (["ui", "--port", "0"], "--port: expected 1-65535"),
    (["ui", "--workers", "0"], "--workers: expected at least 1"),
    (["demo", "--workers", "0"], "--workers: expected at least 1"),  # ran the demo before
    (["demo", "--trials", "-1"], "--trials: expected at least 1"),  # a traceback before
])
def test_other_commands_check_their_numbers(argv, expect):
    refused(*argv, expect=expect)


def test_an_unusable_peak_in_the_cache_is_ignored_with_a_warning(tmp_path):
    from aunet_lab.training.callbacks import load_peak

    (tmp_path / "peak_flops.json").write_text('{"cpu:float32": {"flops": 0.0}, "cpu:bfloat16": {"flops": 5e9}}')
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert load_peak(tmp_path, "float32", "cpu") is None
        assert load_peak(tmp_path, "bfloat16", "cpu") == 5e9
        assert load_peak(tmp_path, "float16", "cuda") is None
    assert err.getvalue().count("not usable") == 1
    (tmp_path / "peak_flops.json").write_text('{"cpu:float32": ')
    with contextlib.redirect_stderr(err):
        assert load_peak(tmp_path, "float32", "cpu") is None
