"""Models leave the platform: ``aunet-lab export`` writes safetensors + config.json (+ tokenizer,
model card), ``aunet_lab.load`` reads an export or a checkpoint, and both score the same bits per
byte as the run's own test evaluation; MLflow holds the export as the run's logged model."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from corpora import make_corpus

ARMS = {"aunet2": 2, "aunet3": 3, "aunet4": 4, "bpe": 0}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from aunet_lab.config import load_config
    from aunet_lab.training.run import train

    root = tmp_path_factory.mktemp("export")
    manifest, cache = make_corpus(root, ["en", "ru"], 40, (4, 12), (3, 9), {"val": 0.15, "test": 0.2, "seed": 2},
                                  "exp")
    stage = [{"dim": 32, "layers": 1, "heads": 2, "window": 32}, {"dim": 48, "layers": 1, "heads": 3},
             {"dim": 64, "layers": 1, "heads": 4}, {"dim": 64, "layers": 1, "heads": 4}]
    out = {}
    for name, stages in ARMS.items():
        cfg = {
            "model": {"arch": "bpe" if not stages else "aunet",
                      "aunet": {"ffn_multiple_of": 16, "stages": stage[:stages] or stage[:2]},
                      "bpe": {"dim": 48, "layers": 2, "heads": 3, "ffn_multiple_of": 16}},
            "data": {"manifest": str(manifest), "cache": str(cache), "mixture": {"en": 0.5, "ru": 0.5},
                     "budget": "5KB", "window_bytes": 64, "batch_size": 4, "vocab_size": 300,
                     "eval_bytes": {"val": "600B", "test": "1KB"}},
            "optim": {"warmup_steps": 2},
            "trainer": {"max_steps": 4, "val_every": 4, "checkpoint_every": 4, "progress": False, "samples": 1,
                        "sample_bytes": 8},
            "tracking": {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "run_name": name},
            "output_dir": str(root / "runs"),
        }
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
        out[name] = train(load_config(path))
    return root, cache, out


def _test_texts(cache: Path, run_dir: Path, lang: str) -> list[str]:
    ids = json.loads((run_dir / "eval_documents.json").read_text())["test"][lang]
    path = cache / "corpora" / "exp" / lang / "test.jsonl"
    by_id = {d["id"]: d["text"] for d in map(json.loads, path.read_text(encoding="utf-8").splitlines())}
    return [by_id[i] for i in ids]


@pytest.mark.parametrize("name", list(ARMS))
def test_export_round_trip_scores_what_the_run_logged(trained, name, tmp_path):
    import aunet_lab

    root, cache, runs = trained
    run_dir = Path(runs[name].run_dir)
    out = tmp_path / "export"
    from aunet_lab.cli import main

    assert main(["export", str(run_dir / "final.ckpt"), str(out)]) == 0  # the command, in-process
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(["model.safetensors", "config.json", "README.md"] + (["tokenizer.json"] if name == "bpe" else []))
    info = json.loads((out / "config.json").read_text())
    assert info["arch"] == ("bpe" if name == "bpe" else "aunet")
    assert info["training"]["mixture"] == {"en": 0.5, "ru": 0.5} and info["training"]["commit"]
    card = (out / "README.md").read_text()
    assert "| test | en |" in card and "aunet_lab.load" in card

    from_ckpt, from_export = aunet_lab.load(run_dir / "final.ckpt"), aunet_lab.load(out)
    assert from_export.window == from_ckpt.window and from_export.stages == ARMS[name]
    for lang in ("en", "ru"):
        texts = _test_texts(cache, run_dir, lang)
        a, b = from_ckpt.bits_per_byte(texts), from_export.bits_per_byte(texts)
        assert a == pytest.approx(b, abs=1e-9)
        # The run's own test evaluation (Lightning, DataModule windows) on the same documents.
        assert a == pytest.approx(runs[name].test[f"test/bpb/{lang}"], abs=1e-6)
    assert from_export.generate("the cat ", max_new_bytes=12) == from_ckpt.generate("the cat ", max_new_bytes=12)
    assert 0 < len(from_export.generate("the cat ", max_new_bytes=12)) <= 12  # a character per byte at most


def test_final_checkpoint_is_weights_and_mlflow_holds_the_export(trained):
    import torch
    from mlflow.tracking import MlflowClient

    root, _, runs = trained
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    for name, result in runs.items():
        run_dir = Path(result.run_dir)
        final = torch.load(run_dir / "final.ckpt", map_location="cpu", weights_only=True)
        assert "optimizer_states" not in final and "aunet_lab" in final
        assert (run_dir / "final.ckpt").stat().st_size < (run_dir / "last.ckpt").stat().st_size
        run = client.get_run(result.run_id)
        [data] = run.inputs.dataset_inputs  # the UI's Dataset column: corpus, mixture, selection digest
        assert data.dataset.digest == run.data.tags["data.hash"][:8] and "en:0.5,ru:0.5" in data.dataset.name
        assert [(t.key, t.value) for t in data.tags] == [("mlflow.data.context", "training")]
        assert json.loads(data.dataset.profile)["bytes_per_language"].keys() == {"en", "ru"}
        tags = run.data.tags  # the UI's Source and User columns
        assert tags["mlflow.source.name"] == "aunet-lab train" and tags["mlflow.user"]
        assert tags["mlflow.source.git.commit"] == tags["git.commit"] != "unknown"
        model_id = run.data.tags["aunet.model_id"]
        logged = client.get_logged_model(model_id)
        assert logged.source_run_id == result.run_id and str(logged.status).endswith("READY")
        assert {f.path for f in client.list_logged_model_artifacts(model_id)} >= {"model.safetensors", "config.json"}
        assert [o.model_id for o in run.outputs.model_outputs] == [model_id]
        # No Lightning checkpoint among the run's artifacts; the store is a few times the weights.
        assert "checkpoints" not in {f.path for f in client.list_artifacts(result.run_id)}
    weights = sum((Path(r.run_dir) / "model" / "model.safetensors").stat().st_size for r in runs.values())
    stored = sum(p.stat().st_size for p in (root / "artifacts").rglob("*") if p.is_file())  # the store's artifacts
    assert weights < stored <= 4 * weights, (stored, weights)


def test_bad_exports_are_one_line_and_write_nothing(trained, tmp_path, capsys):
    from aunet_lab.cli import main

    root, _, runs = trained
    ckpt = Path(runs["aunet2"].run_dir) / "final.ckpt"
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    cases = [([str(tmp_path / "nope.ckpt"), str(tmp_path / "a")], "no such file"),
             ([str(ckpt), str(busy)], "not empty"),
             ([str(tmp_path), str(tmp_path / "b")], "final.ckpt")]
    for argv, words in cases:
        code, err = main(["export", *argv]), capsys.readouterr().err  # in-process: what the shell gets
        assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err
    assert sorted(p.name for p in busy.iterdir()) == ["keep.txt"] and (busy / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_split_function_without_an_import_path_is_refused():
    from aunet_lab.export import ExportError, check_split_exportable

    check_split_exportable("word")
    check_split_exportable("stride:4")
    check_split_exportable("regex:\\s")
    with pytest.raises(ExportError, match="import path"):
        check_split_exportable(lambda text: [0] * len(text))
    with pytest.raises(ExportError, match="import path"):
        check_split_exportable("__main__:my_split")


def test_a_split_function_registered_at_run_time_is_refused():
    from aunet_lab.data.splitting import _REGISTRY, get_split_function, register_split_function
    from aunet_lab.export import ExportError, check_split_exportable

    register_split_function("test-export-words", "words, registered by a test")(lambda args: get_split_function("word"))
    try:
        with pytest.raises(ExportError, match="registered at run time"):
            check_split_exportable("test-export-words")
    finally:
        _REGISTRY.pop("test-export-words", None)


def test_version_and_the_training_experiment_kind(trained):
    from mlflow.tracking import MlflowClient

    import aunet_lab

    run = subprocess.run([sys.executable, "-m", "aunet_lab.cli", "--version"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == f"aunet-lab {aunet_lab.__version__}"
    root = trained[0]
    exp = MlflowClient(f"sqlite:///{root / 'mlflow.db'}").get_experiment_by_name("aunet-lab")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    from aunet_lab.cli import training_view_urls  # what `aunet-lab ui` prints: the Model training view
    from aunet_lab.training.mlflow_view import VIEW_TAG, read_view

    (name, urls), = training_view_urls(f"sqlite:///{root / 'mlflow.db'}", "http://h:1")
    page = f"http://h:1/#/experiments/{exp.experiment_id}/runs?"
    assert name == "aunet-lab" and urls["runs"] == page + "workflowType=machine_learning"
    assert urls["charts"].startswith(page) and "viewStateShareKey=aunetTraining" in urls["charts"]
    # The experiment's "Training curves" view: train loss and validation BPB, in the first section,
    # and both are metrics the run logged.
    state = read_view(exp.tags[VIEW_TAG])
    first = state["compareRunSections"][0]["uuid"]
    assert [c["metricKey"] for c in state["compareRunCharts"] if c["metricSectionId"] == first] == [
        "train/loss", "val/bpb"]
    run = MlflowClient(f"sqlite:///{root / 'mlflow.db'}").search_runs([exp.experiment_id], max_results=1)[0]
    assert {"train/loss", "val/bpb"} <= set(run.data.metrics)


def test_ui_and_tracking_errors_are_one_whole_line(tmp_path):
    from aunet_lab.messages import cut
    from aunet_lab.mlflow_client import TrackingError, client_for

    for uri in ("http://127.0.0.1:5000", f"file://{tmp_path}"):
        run = subprocess.run([sys.executable, "-m", "aunet_lab.cli", "ui", "--tracking-uri", uri],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1 and uri in run.stderr, run.stderr
    with pytest.raises(TrackingError, match=r"no MLflow server answers there \(start one"):
        client_for("http://127.0.0.1:9")  # the discard port: nothing listens
    words = "alpha beta gamma delta epsilon " * 20
    short = cut(words, 60)
    assert len(short) <= 60 and short.endswith("...") and words.startswith(short[:-3])
    assert short[:-3].split()[-1] in {"alpha", "beta", "gamma", "delta", "epsilon"}  # no word cut in two


def test_sweep_set_overrides_spec_keys_or_names_the_bad_one(capsys):
    from aunet_lab.cli import _spec_overrides, main
    from aunet_lab.sweep.spec import load_spec

    spec_path = Path(__file__).resolve().parent.parent / "studies" / "smoke.yaml"
    spec = load_spec(spec_path, _spec_overrides(["tune.trials=1", "base.trainer.val_every=7"], {}))
    assert spec.tune.trials == 1 and spec.base["trainer"]["val_every"] == 7
    for bad, words in ((["nokey"], "expected KEY.PATH=VALUE"), (["tune.bogus=1"], "tune.bogus: unknown key")):
        code = main(["sweep", str(spec_path), "--plan", *[a for item in bad for a in ("--set", item)]])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err


MC_TASK = """task: aunet_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
metadata:
  version: 1.0
"""
PPL_TASK = """task: aunet_ppl
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: bits_per_byte
  - metric: byte_perplexity
metadata:
  version: 1.0
"""


@pytest.mark.parametrize("name", ["aunet2", "bpe"])
def test_lm_eval_harness_offline_on_local_tasks(trained, name, tmp_path):
    """The harness's rolling bits per byte on the run's English test documents is the run's own test
    BPB; a multiple-choice task scores; nothing is fetched (offline, a fresh HF_HOME)."""
    import os

    from mlflow.tracking import MlflowClient

    root, cache, runs = trained
    run_dir = Path(runs[name].run_dir)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    docs = tasks / "ppl.jsonl"
    docs.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n"
                            for t in _test_texts(cache, run_dir, "en")), encoding="utf-8")
    mc = tasks / "mc.jsonl"
    mc.write_text("".join(json.dumps(q) + "\n" for q in (
        {"question": "the cat sat on", "choices": [" a mat", " zq xj"], "answer": 0},
        {"question": "it rained over 12", "choices": [" green hills", " qqq"], "answer": 0},
        {"question": "then it", "choices": [" rained", " 12 12 12"], "answer": 0})))
    (tasks / "aunet_ppl.yaml").write_text(PPL_TASK.format(data=docs))
    (tasks / "aunet_mc.yaml").write_text(MC_TASK.format(data=mc))
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "aunet_lab.cli", "eval", str(run_dir / "final.ckpt"),
                          "--lm-eval", "aunet_ppl,aunet_mc", "--include-path", str(tasks), "--out", str(out)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((out / "lm_eval_results.json").read_text())["results"]
    assert results["aunet_ppl"]["bits_per_byte,none"] == pytest.approx(runs[name].test["test/bpb/en"], abs=1e-6)
    assert 0.0 <= results["aunet_mc"]["acc,none"] <= 1.0
    metrics = MlflowClient(f"sqlite:///{root / 'mlflow.db'}").get_run(runs[name].run_id).data.metrics
    assert metrics["lm_eval/aunet_ppl/bits_per_byte_none"] == pytest.approx(results["aunet_ppl"]["bits_per_byte,none"])


@pytest.mark.parametrize("name", ["aunet3", "bpe"])
def test_harness_continuations_cover_their_bytes(trained, name):
    """loglikelihood("", text) is the rolling log-likelihood of text; split anywhere, the
    continuation's log-likelihood is part of the same document's sum (the units covering its bytes)."""
    from types import SimpleNamespace

    import aunet_lab
    from aunet_lab.eval.harness import HarnessLM

    root, cache, runs = trained
    lm = HarnessLM(aunet_lab.load(Path(runs[name].run_dir)))
    text = _test_texts(cache, Path(runs[name].run_dir), "ru")[0]
    [rolling] = lm.loglikelihood_rolling([SimpleNamespace(args=(text,))])
    [(whole, _)] = lm.loglikelihood([SimpleNamespace(args=("", text))])
    assert whole == pytest.approx(rolling, rel=1e-5)
    cut = len(text) // 2
    [(tail, greedy)] = lm.loglikelihood([SimpleNamespace(args=(text[:cut], text[cut:]))])
    assert whole < tail < 0 and isinstance(greedy, bool) and not greedy  # a tiny model misses some bytes


def test_lm_eval_bad_requests_are_one_line_and_write_nothing(trained, tmp_path, monkeypatch, capsys):
    from aunet_lab.cli import main

    for key, value in (("HF_HOME", str(tmp_path / "hf")), ("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1")):
        monkeypatch.setenv(key, value)
    root, _, runs = trained
    model = str(runs["aunet2"].run_dir)
    for extra, words in ((["--lm-eval", "nosuchtask", "--out", str(tmp_path / "a")], "nosuchtask"),
                         (["--lm-eval", "x"], "needs --out"),
                         (["--lm-eval", "x", "--out", str(tmp_path / "b"), "--include-path", str(tmp_path / "no")],
                          "--include-path")):
        code = main(["eval", model, *extra])  # in-process: the status and stderr main gives the shell
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_every_cli_option_has_help_text():
    import argparse

    from aunet_lab.cli import build_parser

    missing = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif not action.help and action.dest != "help":
                missing.append(" ".join([*path, *(action.option_strings or [action.dest])]))

    walk(build_parser(), ["aunet-lab"])
    assert not missing, missing
