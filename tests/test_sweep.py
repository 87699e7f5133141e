"""Studies: spec validation, --plan and its refusals, a smoke study end to end, two workers on one
journal. Real text: the embedded UDHR written as a local corpus."""

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from aunet_lab.config import ConfigError
from aunet_lab.sweep.spec import load_spec

TINY_MODELS = {
    "bpe": {"dim": 32, "layers": 1, "heads": 2, "ffn_multiple_of": 16},
    "aunet2": {"ffn_multiple_of": 16, "stages": [{"dim": 32, "layers": 1, "heads": 2, "window": 32},
                                                  {"dim": 64, "layers": 1, "heads": 4}]},
}


@pytest.fixture(scope="module")
def udhr(tmp_path_factory):
    from aunet_lab.data.corpus import prepare
    from aunet_lab.data.manifest import load_manifest
    from aunet_lab.demo import write_embedded_corpus

    root = tmp_path_factory.mktemp("sweep")
    manifest = write_embedded_corpus(root / "corpus")
    prepare(load_manifest(manifest), root / "cache", ["en", "fr", "de"])
    return root, manifest


def write_spec(root: Path, manifest: Path, name: str, **changes) -> Path:
    spec = {
        "name": name,
        "base": {"data": {"manifest": str(manifest), "cache": str(root / "cache"), "window_bytes": 64,
                          "batch_size": 4, "vocab_size": 300, "max_epochs": 3,
                          "eval_bytes": {"val": "512B", "test": "1KB"}},
                 "optim": {"warmup_steps": 3},
                 "trainer": {"val_every": 8, "checkpoint_every": 8, "samples": 0}},
        "models": copy.deepcopy(TINY_MODELS),
        "axes": {"arch": ["bpe", "aunet2"], "data_budget": ["6KB", "12KB"],
                 "mixture": {"en": {"en": 1.0}, "en-fr": {"en": 0.5, "fr": 0.5}}},
        "tune": {"trials": 2, "lr_factor": 3},
        "sampler": {"name": "tpe", "seed": 0, "n_startup_trials": 1},
        "pruner": {"name": "none"},
        "output_dir": str(root / "studies"),
        "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
    }
    for dotted, value in changes.items():
        node = spec
        keys = dotted.split("__")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        if value is None:
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = value
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True))
    return path


def cli(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "aunet_lab.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONHASHSEED": "0", "COLUMNS": "250"})


@pytest.mark.parametrize("change, expected", [
    ({"axes__stage_depth": [1, 2]}, "axes.stage_depth: unknown key"),
    ({"axes__arch": []}, "axes.arch: empty grid"),
    ({"axes__data_budget": "6KB"}, "axes.data_budget: expected a list of values, got '6KB'"),
    ({"axes__arch": ["bpe", "aunet7"]}, "axes.arch[1]: unknown architecture 'aunet7'"),
    ({"axes__seed": [0, "one"]}, "axes.seed[1]: expected an integer, got 'one'"),
    ({"axes__mixture__en__en": -1}, "axes.mixture.en.en: expected a positive weight"),
    ({"tune__trials": "two"}, "tune.trials: expected an integer"),
    ({"tune__lr_factr": 3}, "tune.lr_factr: unknown key (did you mean 'lr_factor'?)"),
    ({"pruner__name": "asha"}, "pruner.name: expected one of none, median, hyperband"),
    ({"axes__compute_budget": [1e12]}, "axes: give exactly one of data_budget"),
    ({"models__aunet2__stages": [{"dim": 32, "layers": 1, "heads": 2}]}, "models.aunet2.stages: aunet2 needs 2 stages"),
    ({"base__optim__lr": "fast"}, "optim.lr: expected a number"),
    ({"base__trainer__limit_val_batches": 4}, "trainer.limit_val_batches: no longer supported; evaluation is capped "
                                               "in UTF-8 bytes over whole documents, the same for every arm: use "
                                               "data.eval_bytes"),
    ({"base__data__eval_split": "test"}, "data.eval_split: test would select on test text"),
    ({"base__data__eval_bytes": {"tst": "4KB"}}, "data.eval_bytes.tst: unknown split (expected val or test)"),
    ({"base__data__eval_bytes": "lots"}, "data.eval_bytes: expected a size such as 250KB"),
])
def test_malformed_spec_fails_before_training_naming_the_key(udhr, change, expected):
    root, manifest = udhr
    path = write_spec(root, manifest, "bad", **change)
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    assert expected in str(err.value)
    assert str(path) in str(err.value)


def test_malformed_spec_on_the_command_line_is_one_line_and_exit_2(udhr):
    root, manifest = udhr
    path = write_spec(root, manifest, "bad-cli", axes__arch=[])
    result = cli("sweep", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "axes.arch: empty grid" in lines[0]
    assert not (root / "studies" / "bad-cli").exists()  # nothing was started


def test_cells_are_the_product_of_the_axes(udhr):
    root, manifest = udhr
    spec = load_spec(write_spec(root, manifest, "cells", axes__seed=[0, 1]))
    cells = spec.cells()
    assert len(cells) == 2 * 2 * 2 * 2
    assert len({c.id for c in cells}) == len(cells)
    assert {(c.arch, c.budget, c.mixture_name, c.seed) for c in cells} == {
        (a, b, m, s) for a in ("bpe", "aunet2") for b in (6000, 12000) for m in ("en", "en-fr") for s in (0, 1)}


def test_plan_prints_every_cell_and_refuses_infeasible_ones(udhr):
    root, manifest = udhr
    ok = write_spec(root, manifest, "plan-ok")
    result = cli("sweep", str(ok), "--plan")
    assert result.returncode == 0, result.stderr[-2000:]
    for cell in ("bpe-6KB-en", "bpe-12KB-enfr", "aunet2-6KB-enfr", "aunet2-12KB-en"):
        assert cell in result.stdout
    assert "estimated time with one worker" in result.stdout
    assert not list((root / "studies").glob("plan-ok/optuna.journal"))  # --plan trains nothing

    from aunet_lab.sweep.plan import plan_study

    plans = {p.cell.id: p for p in plan_study(load_spec(ok), time_steps=False)}
    p = plans["aunet2-12KB-en"]
    assert p.bytes == 12000 and p.steps == -(-12000 // (4 * 64))
    assert p.lr_range[0] < p.lr_law < p.lr_range[1]

    # A budget past the repetition limit, one below a batch, and a compute budget too small to size
    # AU-Net-2 at this granularity: all refused before anything trains.
    # (--strict makes a refusal an error; without it the sweep skips the cell, see the smoke test).
    bad = write_spec(root, manifest, "plan-bad", axes__data_budget=["100B", "90KB"])
    result = cli("sweep", str(bad), "--plan", "--strict")
    assert result.returncode == 2
    assert "error: " in result.stderr and "cell bpe-100B-en: budget below one batch" in result.stderr
    assert "cell aunet2-90KB-en: repetition past the maximum" in result.stderr
    result = cli("sweep", str(bad), "--plan")
    assert result.returncode == 0 and "skipped: " in result.stderr and "cell bpe-100B-en: budget below" in result.stderr
    small = write_spec(root, manifest, "plan-small", axes__data_budget=None, axes__compute_budget=[1e6],
                       axes__arch=["aunet2"], sizing={"width_multiple": 64, "head_dim": 32})
    result = cli("sweep", str(small), "--plan", "--strict")
    assert result.returncode == 2 and "model too small for its stages" in result.stderr
    result = cli("sweep", str(bad), "--strict")
    assert result.returncode == 2 and "budget below one batch" in result.stderr
    assert not (root / "studies" / "plan-bad" / "optuna.journal").exists()


def _mlflow(root: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{root / 'mlflow.db'}")


@pytest.fixture(scope="module")
def smoke_study(udhr):
    """bpe and aunet2, two budgets, two learning rates per cell (one mixture, to keep the suite short)."""
    root, manifest = udhr
    path = write_spec(root, manifest, "smoke-test", pruner={"name": "median", "n_startup_trials": 1,
                                                           "warmup_fraction": 0.3},
                      axes__mixture={"en-fr": {"en": 0.5, "fr": 0.5}}, axes__data_budget=["6KB", "12KB", "100B"])
    return path, cli("sweep", str(path), "--workers", "2")


def test_smoke_study_end_to_end(udhr, smoke_study):
    import optuna
    from optuna.trial import TrialState

    from aunet_lab.sweep.storage import open_storage

    root, manifest = udhr
    path, result = smoke_study
    assert result.returncode == 0, result.stderr[-3000:]
    # The 100-byte cells are below one batch: skipped with their reason, the others run.
    assert "skipped cell bpe-100B-enfr: budget below one batch" in result.stderr
    folder = root / "studies" / "smoke-test"
    storage = open_storage(str(folder / "optuna.journal"))
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False))
    assert len(names) == 4 and all(n.startswith("smoke-test/") for n in names)
    summary = {row["cell"]: row for row in _read_csv(folder / "summary.csv")}
    refused = {cell: row["refused"] for cell, row in summary.items() if row.get("refused")}
    assert set(refused) == {"bpe-100B-enfr", "aunet2-100B-enfr"}
    assert all("budget below one batch" in reason for reason in refused.values())
    summary = {cell: row for cell, row in summary.items() if cell not in refused}
    assert len(summary) == 4
    # Every trial process's pid, written by the sweep (trials fork from its fork server by default).
    assert all(int(p.read_text()) > 0 for p in (folder / "trials").glob("*/*/pid"))
    assert len(list((folder / "trials").glob("*/*/pid"))) == len(list((folder / "trials").glob("*/*/trial.json")))
    logs = [p.read_text() for p in (folder / "trials").glob("*/*/log.txt")]  # a line per validation
    assert logs and all("training " in log for log in logs) and any("val bpb " in log for log in logs)
    # progress.json, which the live display reads: the trial's last step and bytes seen
    progress = [json.loads(p.read_text()) for p in (folder / "trials").glob("*/*/progress.json")]
    assert len(progress) == len(logs) and all(p["bytes"] > 0 and p["step"] > 0 for p in progress)
    assert any(p["state"] == "finished" and p["val_bpb"] is not None for p in progress)
    for name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        assert study.metric_names == ["val/bpb"]  # optuna-dashboard shows the objective by name
        trials = study.get_trials()
        assert len(trials) == 2
        assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        assert complete, name  # every cell has a finished best trial
        best = min(complete, key=lambda t: t.value)
        row = summary[name.split("/", 1)[1]]
        assert float(row["val_objective"]) == pytest.approx(best.value)
        assert 0.5 < float(row["test_bpb"]) < 9
        lo, hi = sorted(t.params["lr"] for t in trials)
        assert lo != hi  # the learning rate was searched

    client = _mlflow(root)
    exp = client.get_experiment_by_name("smoke-test")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI's training view
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("aunet.kind") == "study"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert set(json.loads(parents[0].data.tags["aunet.refused"])) == set(refused)
    assert len(children) == 8
    for r in children:
        tags = r.data.tags
        assert tags["mlflow.parentRunId"] == parents[0].info.run_id
        for key in ("aunet.arch", "aunet.stages", "aunet.split", "aunet.languages", "aunet.study", "aunet.trial",
                    "aunet.cell", "aunet.seed", "git.commit", "data.hash"):
            assert tags.get(key), (key, tags)
        assert r.info.status in ("FINISHED", "KILLED")
        # The training data as the run's dataset input, also when a cell's trials start together.
        assert len(client.get_run(r.info.run_id).inputs.dataset_inputs) == 1 and "aunet.dataset" not in tags
        assert (r.info.status == "KILLED") == (tags.get("aunet.status") == "pruned")
        # One source of compute, on a two-language mixture too: the run logs the plan's FLOPs per byte.
        assert r.data.metrics["compute/flops_per_byte"] == pytest.approx(float(r.data.params["plan.flops_per_byte"]),
                                                                         rel=1e-9)
        # Where the trial's time went: phases that add up to at most its process time, one figure
        # in timings.json and in MLflow (finished runs; a pruned one stops before writing them).
        timings = folder / "runs" / r.info.run_name / "timings.json"
        if r.info.status == "FINISHED":
            data = json.loads(timings.read_text())
            phases = data["seconds"]
            assert {"imports", "data", "training steps", "validation", "test", "export"} <= set(phases)
            assert all(v >= 0 for v in phases.values()) and sum(phases.values()) <= data["total"] + 0.05
            assert r.data.metrics["time/total_s"] == pytest.approx(data["total"])
            assert r.data.metrics["time/training_steps_s"] == pytest.approx(phases["training steps"])
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"spec", "summary.csv", "summary.md"} <= artifacts
    # The study's MLflow artifacts (runs and logged models) are a few times its models' weights at most.
    from urllib.parse import urlparse

    def size(uri):
        return sum(f.stat().st_size for f in Path(urlparse(uri).path).rglob("*") if f.is_file())

    models = client.search_logged_models(experiment_ids=[exp.experiment_id])
    weights = sum(p.stat().st_size for p in (folder / "runs").glob("*/model/model.safetensors"))
    stored = sum(size(r.info.artifact_uri) for r in runs) + sum(size(m.artifact_location) for m in models)
    assert len(models) == len(list((folder / "runs").glob("*/model/model.safetensors"))) > 0
    assert weights < stored <= 3 * weights, (stored, weights)

    # Running it again without --resume is refused; with --resume there is nothing left to do.
    again = cli("sweep", str(path))
    assert again.returncode == 2 and "--resume" in again.stderr
    again = cli("sweep", str(path), "--resume")
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(client.search_runs([exp.experiment_id], max_results=1000)) == 9


@pytest.mark.slow
def test_the_smoke_study_in_mlflows_ui_in_headless_chromium(udhr, smoke_study):
    """`aunet-lab ui` on the smoke study's store, loaded in Debian's Chromium (.ci/run installs it): the
    runs page shows the study's parent run and, expanded, its trial runs by name; the charts URL opens
    the "Training curves" view, train loss and validation BPB first. AUNET_LAB_SCREENSHOTS=DIR keeps
    the two screenshots (docs/img holds them)."""
    import socket
    import urllib.request

    from browser import Browser, chromium

    root, _ = udhr
    path, result = smoke_study
    assert result.returncode == 0, result.stderr[-3000:]
    client = _mlflow(root)
    exp = client.get_experiment_by_name("smoke-test")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    trial_names = sorted(r.info.run_name for r in runs if r.data.tags.get("mlflow.parentRunId"))
    assert len(trial_names) == 8
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    shots = Path(os.environ["AUNET_LAB_SCREENSHOTS"]) if os.environ.get("AUNET_LAB_SCREENSHOTS") else None
    uri = f"sqlite:///{root / 'mlflow.db'}"
    server = subprocess.Popen([sys.executable, "-m", "aunet_lab.cli", "ui", "--tracking-uri", uri, "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    browser = None
    try:
        printed = [server.stdout.readline() for _ in range(3)]  # the banner, then runs and charts URLs
        import threading

        threading.Thread(target=server.stdout.read, daemon=True).start()  # the server's own output
        runs_url = printed[1].split("runs ", 1)[1].strip()
        charts_url = printed[2].split("charts ", 1)[1].strip()
        assert f"http://127.0.0.1:{port}" in printed[0] and uri in printed[0], printed
        assert f"/#/experiments/{exp.experiment_id}/runs?" in runs_url, printed
        status = None
        for _ in range(240):  # the server on localhost answers
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status
                break
            except OSError:
                assert server.poll() is None, "aunet-lab ui exited"
                time.sleep(0.5)
        assert status == 200
        binary = chromium()
        if binary is None:
            pytest.skip("no chromium on this machine (.ci/run installs Debian's)")
        browser = Browser(binary, *((1600, 1000) if shots else (1280, 720)))  # fewer charts drawn in a test
        page = browser.open(runs_url)
        expander = "button[data-component-id*=runnamecellrenderer]"  # the + beside a parent run
        assert browser.wait_for(page, f"document.querySelectorAll('{expander}').length", 90), browser.text(page)
        text = browser.text(page)
        assert "Model training" in text and "smoke-test" in text and "matching runs" in text
        browser.js(page, f"document.querySelectorAll('{expander}').forEach(b => b.click())")
        shown = json.dumps(trial_names)
        assert browser.wait_for(page, f"{shown}.every(n => document.body.innerText.includes(n))", 30), \
            browser.text(page)
        if shots:
            browser.screenshot(page, shots / "mlflow-training-view.png")
        charts = browser.open(charts_url)  # charts plot the runs the list shows: expand the study again
        assert browser.wait_for(charts, f"document.querySelectorAll('{expander}').length", 60), browser.text(charts)
        browser.js(charts, f"document.querySelectorAll('{expander}').forEach(b => b.click())")
        assert browser.wait_for(charts, "document.body.innerText.includes('train/loss')", 60), browser.text(charts)
        text = browser.text(charts)
        assert text.index("Training curves") < text.index("train/loss") < text.index("val/bpb") < text.index("compute")
        if shots:
            time.sleep(2)  # the curves drawn
            browser.screenshot(charts, shots / "mlflow-training-curves.png")
    finally:
        if browser is not None:
            browser.close()
        os.killpg(server.pid, 15)
        server.wait(30)


def test_two_workers_on_one_journal_run_each_trial_once(udhr):
    import optuna

    from aunet_lab.sweep.storage import open_storage

    root, manifest = udhr
    path = write_spec(root, manifest, "shared", axes__arch=["aunet2"], axes__data_budget=["6KB"],
                      axes__mixture={"en": {"en": 1.0}}, tune__trials=4)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    procs = [subprocess.Popen([sys.executable, "-m", "aunet_lab.cli", "sweep", str(path), "--resume"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outputs = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    storage = open_storage(str(root / "studies" / "shared" / "optuna.journal"))
    ran = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
        assert len(trials) == 4, summary.study_name
        assert all(t.state.name == "COMPLETE" for t in trials)
        ran += [(summary.study_name, t.number) for t in trials]
    # Both processes worked, and each trial ran in exactly one of them.
    lines = [line for _, err in outputs for line in err.splitlines() if " trial " in line and "COMPLETE" in line]
    assert len(lines) == len(ran) == 4
    assert all(any(" trial " in line for line in err.splitlines()) for _, err in outputs)
    client = _mlflow(root)
    exp = client.get_experiment_by_name("shared")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert sum(1 for r in runs if r.data.tags.get("aunet.kind") == "study") == 1
    names = [r.info.run_name for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(names) == len(set(names)) == 4


def _read_csv(path: Path) -> list[dict]:
    import csv

    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_compute_budget_cells_are_sized_by_compute_matching(udhr):
    from aunet_lab.sweep.plan import plan_study

    root, manifest = udhr
    path = write_spec(root, manifest, "compute", models=None, axes__data_budget=None,
                      axes__compute_budget=[3e11, 3e12], axes__arch=["bpe", "aunet1", "aunet2"],
                      axes__mixture={"en": {"en": 1.0}}, base__data__max_epochs=100000,
                      sizing={"ratio": 10, "head_dim": 16, "width_multiple": 16, "byte_layers": 1, "byte_window": 32,
                              "ffn_multiple_of": 16})
    plans = plan_study(load_spec(path), time_steps=False)
    assert len(plans) == 6 and all(p.feasible for p in plans), [p.refusals for p in plans]
    for p in plans:
        # The whole budget is spent: bytes x FLOPs per byte = the cell's compute budget.
        assert p.compute == pytest.approx(p.cell.budget, rel=1e-3)
    for budget in (3e11, 3e12):
        fpb = {p.cell.arch: p.flops_per_byte for p in plans if p.cell.budget == budget}
        # Every arm at about the same FLOPs per byte (the matching rule's granularity allows 1.5x).
        assert max(fpb.values()) / min(fpb.values()) < 1.5, fpb
    small, large = (next(p for p in plans if p.cell.arch == "aunet2" and p.cell.budget == b) for b in (3e11, 3e12))
    assert large.params > small.params and large.bytes > small.bytes  # both grow with compute


def test_a_trial_launched_through_torchrun_as_two_processes(udhr):
    import socket

    import optuna

    from aunet_lab.sweep.storage import open_storage

    root, manifest = udhr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launcher = (f"{{python}} -m torch.distributed.run --nproc-per-node 2 --master-addr 127.0.0.1 --master-port {port} "
                "-m aunet_lab.sweep.trial {trial_dir}")
    path = write_spec(root, manifest, "torchrun", axes__arch=["aunet2"], axes__data_budget=["6KB"],
                      axes__mixture={"en": {"en": 1.0}}, tune__trials=1, launcher=launcher,
                      base__trainer__devices=2, base__trainer__strategy="ddp", base__trainer__accelerator="cpu")
    result = cli("sweep", str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    storage = open_storage(str(root / "studies" / "torchrun" / "optuna.journal"))
    (trial,) = optuna.load_study(study_name="torchrun/aunet2-6KB-en", storage=storage).get_trials()
    assert trial.state.name == "COMPLETE"
    log = (root / "studies" / "torchrun" / "trials" / "aunet2-6KB-en" / "0000" / "log.txt").read_text()
    assert "MEMBER: 2/2" in log  # two processes trained it
    exp = _mlflow(root).get_experiment_by_name("torchrun")
    children = [r for r in _mlflow(root).search_runs([exp.experiment_id]) if r.data.tags.get("mlflow.parentRunId")]
    assert len(children) == 1 and children[0].info.status == "FINISHED"  # only the first process tracked


def test_every_shipped_study_spec_validates():
    shipped = sorted(Path(__file__).resolve().parent.parent.glob("studies/*.yaml"))
    assert {p.stem for p in shipped} >= {"smoke", "scaling", "crosslingual", "paper-1b-ladder"}
    for path in shipped:
        spec = load_spec(path)
        assert spec.cells(), path
        assert spec.description, path  # each documents itself


def test_vocabulary_and_split_axes_only_multiply_the_arm_they_concern(udhr):
    root, manifest = udhr
    spec = load_spec(write_spec(root, manifest, "axes", axes__vocab_size=[300, 500],
                                axes__split=["word", "script"], axes__data_budget=["6KB"],
                                axes__mixture={"en": {"en": 1.0}}))
    ids = sorted(c.id for c in spec.cells())
    assert ids == ["aunet2-6KB-en-script", "aunet2-6KB-en-word", "bpe-6KB-en-v300", "bpe-6KB-en-v500"]


def test_logged_flops_per_byte_is_the_plans_for_every_arm_chinese_text_and_a_repeat_seed(udhr):
    """One source of compute: the planner measures each trial's own training stream with the
    function training uses; every run logs exactly the plan's FLOPs per byte (the repeat seed
    selects other documents and is measured for its own stream), and the summary's compute is the
    logged value times the bytes."""
    from aunet_lab.sweep.plan import base_config, ensure_prepared, plan_study

    root, manifest = udhr
    path = write_spec(root, manifest, "flops", axes__data_budget=["4KB"], base__data__window_bytes=256, axes__mixture={"zh": {"zh-CN": 1.0}},
                      tune__trials=1, tune__repeat_seeds=[7], pruner={"name": "none"})
    spec = load_spec(path)
    ensure_prepared(spec, base_config(spec))
    plans = {p.cell.id: p for p in plan_study(spec, time_steps=False)}
    planned = json.loads(cli("sweep", str(path), "--plan", "--json").stdout)
    assert {c["cell"]: c["flops_per_byte"] for c in planned["cells"]} == {k: p.flops_per_byte for k, p in plans.items()}
    assert all(c["refused"] is None for c in planned["cells"]) and planned["estimated_hours"] > 0
    result = cli("sweep", str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    client = _mlflow(root)
    exp = client.get_experiment_by_name("flops")
    children = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("mlflow.parentRunId")]
    assert sorted((r.data.tags["aunet.arch"], r.data.tags["aunet.role"]) for r in children) == [
        ("aunet", "repeat"), ("aunet", "tuning"), ("bpe", "repeat"), ("bpe", "tuning")]
    for r in children:
        logged = r.data.metrics["compute/flops_per_byte"]
        planned_here = float(r.data.params["plan.flops_per_byte"])
        assert logged == pytest.approx(planned_here, rel=1e-9)
        if r.data.tags["aunet.role"] == "tuning":
            assert planned_here == plans[r.data.tags["aunet.cell"]].flops_per_byte
        else:  # another seed, other documents: its own measurement, not the tuning trial's
            assert planned_here != plans[r.data.tags["aunet.cell"]].flops_per_byte
    summary = {row["cell"]: row for row in _read_csv(root / "studies" / "flops" / "summary.csv")}
    for cell, p in plans.items():
        assert float(summary[cell]["compute"]) == pytest.approx(p.bytes * p.flops_per_byte, rel=1e-9)
