"""The multilingual study suite on a tiny study run end to end: pretrain on English, warm-start on
German at two budgets, character tasks and diagnostics after each trial; then the transfer matrix
(German and the pretraining mixture, evaluated on three languages), the low-resource curve and the
report's pages, checked against what MLflow and the run folders hold. Real text: the embedded UDHR
(parallel across languages)."""

from pathlib import Path

import pytest

from aunet_lab.config import ConfigError
from aunet_lab.sweep.spec import load_spec
from tests.test_sweep import cli, write_spec

LANGS = ["de", "en", "fr"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from aunet_lab.data.corpus import prepare
    from aunet_lab.data.manifest import load_manifest
    from aunet_lab.demo import write_embedded_corpus

    root = tmp_path_factory.mktemp("multilingual")
    manifest = write_embedded_corpus(root / "corpus")
    prepare(load_manifest(manifest), root / "cache", LANGS)
    return root, manifest


def _spec(root, manifest, name="lowres-test", **changes):
    base = {
        "base__data__eval_languages": LANGS,
        "axes__data_budget": ["3KB", "6KB"],
        "axes__mixture": ["de"],
        "tune__trials": 1,
        "pretrain": {"mixture": {"en": 1.0}, "data_budget": "9KB"},
        "evaluate": {"suite": ["chars", "diagnostics"], "languages": ["de"], "per_task": 2},
        "objective": {"on_mixture": True},
    }
    return write_spec(root, manifest, name, **{**base, **changes})


@pytest.mark.parametrize("change, expected", [
    ({"axes__data_budget": None, "axes__compute_budget": [1e9]}, "pretrain: warm start needs a data_budget study"),
    ({"pretrain": {"data_budget": "9KB"}}, "pretrain.mixture: missing"),
    ({"pretrain": {"mixture": {"en": 1}, "data_budget": "lots"}}, "pretrain.data_budget:"),
    ({"pretrain": {"mixture": {"en": 1}, "epochs": 2}}, "pretrain.epochs: unknown key"),
    ({"evaluate": {"suite": ["bpb"]}}, "evaluate.suite[0]: expected chars or diagnostics"),
])
def test_bad_warm_start_and_evaluate_keys_are_named(corpus, change, expected):
    root, manifest = corpus
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        load_spec(_spec(root, manifest, "bad", **change))


def test_every_cell_points_at_its_arms_pretraining(corpus):
    root, manifest = corpus
    spec = load_spec(_spec(root, manifest, "cells"))
    cells = spec.cells()
    pre = [c for c in cells if c.phase == "pretrain"]
    assert [c.id for c in pre] == ["pretrain-bpe", "pretrain-aunet2"]
    assert all(c.mixture == {"en": 1.0} and c.budget == 9000 for c in pre)
    targets = [c for c in cells if c.phase == "target"]
    assert len(targets) == 2 * 2
    assert all(c.pretrain == f"pretrain-{c.arch}" for c in targets)
    assert spec.trials_wanted(pre[0]) == (1, 0)


@pytest.fixture(scope="module")
def study(corpus):
    root, manifest = corpus
    path = _spec(root, manifest)
    result = cli("sweep", str(path), "--workers", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("lowres-test")
    runs = [r for r in client.search_runs([exp.experiment_id], max_results=1000)
            if r.data.tags.get("aunet.kind") != "study"]
    by_cell = {r.data.tags["aunet.cell"]: r for r in runs}
    return root, client, by_cell


def test_warm_start_runs_after_pretraining_from_its_checkpoint_and_tokenizer(study):
    root, client, runs = study
    assert len(runs) == 2 + 4 and all(r.info.status == "FINISHED" for r in runs.values())
    for arch in ("bpe", "aunet2"):
        pre = runs[f"pretrain-{arch}"]
        assert pre.data.tags["aunet.role"] == "pretrain" and pre.data.tags["aunet.languages"] == "en"
        pre_dir = Path(root / "studies" / "lowres-test" / "runs" / pre.info.run_name)
        for cell, run in runs.items():
            if not cell.startswith(arch + "-"):
                continue
            assert run.data.tags["aunet.pretrain_cell"] == f"pretrain-{arch}"
            assert Path(run.data.tags["aunet.init_from"]) == (pre_dir / "final.ckpt").resolve()
            assert run.info.start_time >= pre.info.end_time  # the warm start waited for its source
            if arch == "bpe":  # the pretraining tokenizer, trained on English only
                run_dir = pre_dir.parent / run.info.run_name
                assert (run_dir / "tokenizer.json").read_bytes() == (pre_dir / "tokenizer.json").read_bytes()


def _best(root):
    from aunet_lab.reports.collect import collect

    runs = collect("lowres-test", f"sqlite:///{root / 'mlflow.db'}")
    return runs, runs.best_per_cell()


def test_transfer_matrix_shape_and_values(study):
    from aunet_lab.reports.multilingual import transfer_matrix

    root, client, runs = study
    collected, best = _best(root)
    assert collected.languages == LANGS
    for arch in ("bpe", "aunet2"):
        matrix = transfer_matrix(best, LANGS, arch)
        assert matrix.shape == (2, 3)
        assert list(matrix.index) == ["de", "pretrain"] and list(matrix.columns) == LANGS
        # German at its largest budget, and the English pretraining the German cells started from.
        for mixture, run in (("de", runs[f"{arch}-6KB-de"]), ("pretrain", runs[f"pretrain-{arch}"])):
            for lang in LANGS:
                assert matrix.loc[mixture, lang] == pytest.approx(run.data.metrics[f"test/bpb/{lang}"], rel=1e-12)


def test_low_resource_curve_starts_at_the_pretrained_model(study):
    from aunet_lab.reports.multilingual import lowresource_curves

    root, client, runs = study
    _, best = _best(root)
    curves = lowresource_curves(best)
    assert len(curves) == 2 * 3
    for arch in ("bpe", "aunet2"):
        for target in ("de",):
            rows = curves[(curves["arch"] == arch) & (curves["target"] == target)].sort_values("bytes")
            assert list(rows["bytes"]) == [0, 3000, 6000]
            expected = [runs[f"pretrain-{arch}"].data.metrics[f"test/bpb/{target}"],
                        runs[f"{arch}-3KB-{target}"].data.metrics[f"test/bpb/{target}"],
                        runs[f"{arch}-6KB-{target}"].data.metrics[f"test/bpb/{target}"]]
            assert list(rows["test_bpb"]) == pytest.approx(expected, rel=1e-12)
    # Training on the target language beats not having seen it at all.
    zero = curves[curves["bytes"] == 0].set_index(["arch", "target"])["test_bpb"]
    most = curves[curves["bytes"] == 6000].set_index(["arch", "target"])["test_bpb"]
    assert (most < zero).all()


def test_character_tasks_and_diagnostics_reach_the_report(study):
    import pandas as pd

    from aunet_lab.reports.build import build_report
    from aunet_lab.reports.multilingual import chars_table, diagnostics_table

    root, client, runs = study
    _, best = _best(root)
    chars = chars_table(best)
    assert set(chars["language"]) == {"de"} and set(chars["arch"]) == {"bpe", "aunet2"}
    assert len(chars) == 2 * 10
    assert (chars["items"] == 2).all()  # per_task items of the one German cell at the largest budget
    from aunet_lab.reports.multilingual import pooled_interval

    acc, lo, hi = pooled_interval(chars[chars["arch"] == "bpe"])
    assert 0 <= lo <= acc <= hi <= 1 and hi - lo > 0.1  # 20 items: a wide interval
    # Each run's table (written by the trial's evaluation) is what MLflow holds.
    run = runs["aunet2-6KB-de"]
    table = pd.read_csv(root / "studies" / "lowres-test" / "runs" / run.info.run_name / "eval" / "chars.csv")
    for r in table.itertuples():
        assert run.data.metrics[f"eval/chars/{r.language}/{r.task}"] == pytest.approx(r.accuracy)
        assert 0 < r.chance < 1
    offsets = diagnostics_table(best, "offset")
    assert set(offsets["language"]) == {"de"} and (offsets["bits_per_byte"] > 0).all()
    levels = diagnostics_table(best, "level")
    assert set(levels["level"]) >= {0, 1}
    report = build_report("lowres-test", f"sqlite:///{root / 'mlflow.db'}", root / "reports" / "lowres.pdf")
    names = {p.stem for p in report.figures}
    assert {"transfer", "lowresource", "char_tasks", "diagnostics"} <= names
    import pypdf

    assert len(pypdf.PdfReader(report.pdf).pages) == report.pages
    assert any(line.startswith("Warm start on de") for line in report.findings)
