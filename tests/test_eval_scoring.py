"""Scoring character tasks with AU-Net and BPE models: the answer's log-likelihood obeys the chain
rule computed independently, ranking and greedy exact match run for both, and the summary's
intervals hold the accuracy."""

import math

import pytest
import torch

from aunet_lab.data.samples import udhr_articles
from aunet_lab.eval.chars import generate, held_out_words
from aunet_lab.eval.scoring import Scorer, score_items, summarise
from aunet_lab.models import AUNet, AUNetConfig, TokenTransformer, TransformerConfig


@pytest.fixture(scope="module")
def scorers(tmp_path_factory):
    from aunet_lab.data.bpe import train_bpe

    torch.manual_seed(0)
    aunet = AUNet(AUNetConfig.tiny(stages=2)).eval()
    tok = train_bpe(udhr_articles("en") + udhr_articles("fr"), 320, tmp_path_factory.mktemp("tok"))
    bpe = TokenTransformer(TransformerConfig.tiny(vocab_size=tok.vocab_size)).eval()
    return {"aunet": Scorer(aunet), "bpe": Scorer(bpe, tok)}


@pytest.mark.parametrize("arch", ["aunet", "bpe"])
def test_answer_logprob_is_the_chain_rule(scorers, arch):
    s = scorers[arch]
    prompt, answer = "Write \"cat\" backwards.\nResult:", " tac"
    head = [s.bos] + s.encode(prompt)
    whole = float(s.sequence_logprob(head + s.encode(answer)).sum())
    prefix = float(s.sequence_logprob(head).sum())
    # log p(answer | prompt) = log p(prompt, answer) - log p(prompt); the answer's ids never change
    # the prompt's probabilities (causal), so the difference is exact up to rounding.
    assert s.logprob(prompt, answer) == pytest.approx(whole - prefix, abs=1e-3)
    assert s.logprob(prompt, answer) < 0


def test_ranking_and_greedy_for_both_arms(scorers):
    items = generate(held_out_words(udhr_articles("en")[-3:]), "en", ("reverse", "contains_char"), per_task=6)
    for arch, s in scorers.items():
        rows = score_items(s, items)
        assert len(rows) == 12 and all(math.isfinite(r["answer_logprob"]) for r in rows)
        frame = summarise(rows)
        assert set(frame["task"]) == {"reverse", "contains_char"}
        for r in frame.itertuples():  # 6 items a task: fewer than 10, so no interval and no claim
            assert r.items == 6 and 0 <= r.accuracy <= 1
            assert math.isnan(r.ci_low) and math.isnan(r.ci_high) and not r.above_chance
            assert r.chance == pytest.approx(0.5 if r.task == "contains_char" else 0.25)
            assert 0 <= r.exact_match <= 1


@pytest.mark.parametrize("arch", ["bpe"])  # the BPE path (the checkpoint's own tokenizer); AU-Net's is simpler
def test_eval_command_reproduces_the_runs_test_bpb(tmp_path, arch):
    import json
    import os
    import subprocess
    import sys

    from corpora import make_corpus
    from test_training import write_config

    from aunet_lab.config import load_config
    from aunet_lab.training.run import train

    make_corpus(tmp_path, ["en", "fr"], 40, (4, 10), (2, 5), {"val": 0.15, "test": 0.15, "seed": 0}, "corpus")
    path = write_config(tmp_path, f"eval-{arch}", arch=arch, data__mixture={"en": 0.5, "fr": 0.5},
                        trainer__max_steps=10, trainer__val_every=10, trainer__checkpoint_every=10, trainer__samples=0,
                        data__eval_bytes={"test": "300B"})
    result = train(load_config(path))
    out = tmp_path / "eval-out"
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    run = subprocess.run([sys.executable, "-m", "aunet_lab.cli", "eval", str(result.run_dir / "final.ckpt"),
                          "--per-task", "3", "--out", str(out), "--tracking-uri", uri, "--eval-bytes", "300B"],
                         capture_output=True, text=True,
                         timeout=600, env={**os.environ, "PYTHONHASHSEED": "0"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"logged to MLflow run {result.run_id}" in run.stdout
    from mlflow.tracking import MlflowClient

    logged = MlflowClient(uri).get_run(result.run_id)
    assert logged.data.metrics["eval/test/bpb/en"] == pytest.approx(result.test["test/bpb/en"], rel=1e-6)
    assert any(k.startswith("eval/chars/fr/") for k in logged.data.metrics)
    bpb = json.loads((out / "bpb.json").read_text())
    for key in ("test/bpb", "test/bpb/en", "test/bpb/fr", "test/bytes/en", "test/bytes/fr"):
        assert bpb[key] == pytest.approx(result.test[key], rel=1e-6), key  # the same model, the same bytes
    assert bpb["test/bytes/en"] >= 300  # whole documents up to the cap (the whole split is checked below)
    import pandas as pd

    chars = pd.read_csv(out / "chars.csv")
    assert set(chars["language"]) == {"en", "fr"} and len(chars) == 2 * 10
    assert ((chars["accuracy"] >= 0) & (chars["accuracy"] <= 1)).all()
    bad = subprocess.run([sys.executable, "-m", "aunet_lab.cli", "eval", str(result.run_dir / "final.ckpt"),
                          "--suite", "bpb,vibes"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "unknown suite 'vibes'" in bad.stderr

    # Another corpus (--manifest): the same documents under another name score exactly the same and
    # are logged under eval/<corpus>/; different documents score differently.
    import yaml

    from aunet_lab.data.corpus import prepare
    from aunet_lab.data.manifest import load_manifest

    def other_corpus(name, manifest):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**yaml.safe_load(manifest.read_text()), "name": name}))
        prepare(load_manifest(path), tmp_path / "cache")
        return path

    different, _ = make_corpus(tmp_path / "other", ["en", "fr"], 40, (4, 10), (2, 5),
                               {"val": 0.15, "test": 0.15, "seed": 0}, "other-src", seed=7)
    from aunet_lab.cli import main  # in this process: the CLI's start-up was paid above

    scores = {}
    for name, manifest in (("copy", tmp_path / "corpus.yaml"), ("different", different)):
        assert main(["eval", str(result.run_dir / "final.ckpt"), "--suite", "bpb", "--manifest",
                     str(other_corpus(name, manifest)), "--tracking-uri", uri, "--eval-bytes", "300B"]) == 0
        scores[name] = json.loads((result.run_dir / f"eval-{name}" / "bpb.json").read_text())
    for key in ("test/bpb/en", "test/bpb/fr"):
        assert scores["copy"][key] == pytest.approx(result.test[key], rel=1e-6), key
        assert scores["different"][key] != pytest.approx(result.test[key], rel=1e-3), key
    # Without --eval-bytes, the whole test split.
    assert main(["eval", str(result.run_dir / "final.ckpt"), "--suite", "bpb", "--manifest",
                 str(tmp_path / "copy.yaml"), "--out", str(tmp_path / "whole")]) == 0
    whole = json.loads((tmp_path / "whole" / "bpb.json").read_text())
    from aunet_lab.data.corpus import documents

    texts = [d["text"] for d in documents(load_manifest(tmp_path / "copy.yaml"), "en", "test", tmp_path / "cache")]
    assert whole["test/bytes/en"] == sum(len(t.encode()) for t in texts) > scores["copy"]["test/bytes/en"]
    logged = MlflowClient(uri).get_run(result.run_id).data.metrics
    assert logged["eval/different/test/bpb/en"] == pytest.approx(scores["different"]["test/bpb/en"])
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["eval", str(result.run_dir / "final.ckpt"), "--manifest", str(tmp_path / "copy.yaml"),
                     "--languages", "en,ru"])
    assert code == 2 and "'ru' is not a language of" in err.getvalue()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["eval", str(result.run_dir / "final.ckpt"), "--per-task", "0"])
    assert code == 2 and err.getvalue().strip() == "error: --per-task: expected at least 1 item per task, got 0"


def test_diagnostics_account_for_every_byte():
    from aunet_lab.data.splitting import byte_levels
    from aunet_lab.eval.diagnostics import MAX_OFFSET, diagnose

    torch.manual_seed(0)
    model = AUNet(AUNetConfig.tiny(stages=3)).eval()
    texts = {lang: [udhr_articles(lang)[0]] for lang in ("en", "hi", "zh")}
    tables = diagnose(model, texts, window=128)
    for lang, docs in texts.items():
        n_bytes = len(docs[0].encode())
        levels = byte_levels(docs[0], "word")
        by_offset = tables["offset"][tables["offset"]["language"] == lang]
        by_level = tables["level"][tables["level"]["language"] == lang]
        assert by_offset["bytes"].sum() == by_level["bytes"].sum() == n_bytes
        # Offset 0 is where a word starts: as many bytes as the text has units of stage 2 or above.
        assert int(by_offset[by_offset["offset"] == 0]["bytes"].iloc[0]) == int((levels >= 1).sum())
        assert by_offset["offset"].max() <= MAX_OFFSET
        assert all(math.isfinite(v) and v > 0 for v in by_offset["bits_per_byte"])
    scripts = tables["script"]
    assert {"Latin", "Devanagari", "Han"} <= set(scripts["script"])
    assert set(scripts[scripts["language"] == "hi"]["script"]) >= {"Devanagari", "space"}


def test_accuracy_intervals_are_wilson_and_absent_below_ten_items():
    from aunet_lab.intervals import above_chance, accuracy_interval

    # 8 of 10: the Wilson interval from its formula, (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
    z, p, n = 1.959964, 0.8, 10
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    accuracy, low, high = accuracy_interval(8, 10)
    assert accuracy == 0.8 and low == pytest.approx(centre - half, abs=1e-6) and high == pytest.approx(centre + half, abs=1e-6)
    assert low == pytest.approx(0.4902, abs=1e-4)  # the textbook value
    # 5 of 5 correct: a bootstrap over items gave [1.000, 1.000], "above chance"; now no interval and no claim
    accuracy, low, high = accuracy_interval(5, 5)
    assert accuracy == 1.0 and math.isnan(low) and math.isnan(high) and not above_chance(low, 0.25)
    assert above_chance(accuracy_interval(10, 10)[1], 0.25) and not above_chance(accuracy_interval(4, 10)[1], 0.25)
    rows = [{"language": "en", "task": "t", "correct": int(i < 9), "chance": 0.25} for i in range(12)]
    r = summarise(rows).iloc[0]
    assert r["items"] == 12 and r["ci_low"] < 0.75 < r["ci_high"] and r["above_chance"]
