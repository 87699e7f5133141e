"""The boundaries study in miniature, end to end: a boundary model trained with the CLI on the
embedded UDHR, then a sweep crossing split functions (word, script, entropy) with English and Thai
at one data budget, 2 seeds a cell (AU-Net-2 alone: BPE beside it is the report's business, tested
elsewhere); then the report's boundaries page and findings, checked against the text and what
MLflow holds."""

import hashlib
import json
from pathlib import Path

import pytest
import regex

from tests.test_split_entropy import run_cli
from tests.test_sweep import cli, write_spec

LANGS = ["en", "th"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from aunet_lab.data.corpus import prepare
    from aunet_lab.data.manifest import load_manifest
    from aunet_lab.demo import write_embedded_corpus

    root = tmp_path_factory.mktemp("boundaries")
    manifest = write_embedded_corpus(root / "corpus")
    prepare(load_manifest(manifest), root / "cache", LANGS)
    model = root / "boundaries.pt"
    code, _, err = run_cli("split", "train-entropy", manifest, "--languages", ",".join(LANGS), "--out", model,
                           "--cache", root / "cache", "--steps", 30, "--batch-size", 8, "--dim", 32, "--layers", 1,
                           "--heads", 2, "--block", 16, "--targets", "4,12")
    assert code == 0, err
    split = f"entropy:{model}"
    path = write_spec(root, manifest, "boundaries-test",
                      axes={"arch": ["aunet2"], "data_budget": ["6KB"], "split": ["word", "script", split],
                            "mixture": LANGS},
                      tune={"trials": 1, "lr_factor": 3, "repeat_seeds": [1]},
                      base__data__eval_bytes={"val": "512B", "test": "2KB"})
    result = cli("sweep", str(path), "--workers", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    result = cli("report", "boundaries-test", "--tracking-uri", f"sqlite:///{root / 'mlflow.db'}",
                 "--out", str(root / "report.pdf"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root, manifest, model, split


def _runs(root):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("boundaries-test")
    return [r for r in client.search_runs([exp.experiment_id], max_results=1000)
            if r.data.tags.get("aunet.kind") != "study"]


def _grapheme_cuts(text: str, levels: list[int]) -> tuple[int, int]:
    """(boundaries, boundaries not at the end of a \\X cluster), counted here from the levels."""
    ends, at = set(), 0
    for cluster in regex.findall(r"\X", text):
        at += len(cluster.encode())
        ends.add(at - 1)
    cuts = [i for i, level in enumerate(levels) if level >= 1]
    return len(cuts), sum(1 for i in cuts if i not in ends)


def test_every_cell_ran_twice_and_entropy_runs_record_their_boundary_model(study):
    root, _, model, split = study
    runs = _runs(root)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    # languages x three splits x seeds, less the word rule on Thai: the plan refuses it (Thai has no
    # spaces: a 64-byte window holds under 4 words)
    assert len(finished) == len(runs) == (2 * 3 - 1) * 2
    assert not any(r.data.tags.get("aunet.split") == "word" and r.data.tags["aunet.mixture"] == "th" for r in runs)
    sha = hashlib.sha256(Path(model).read_bytes()).hexdigest()
    entropy = [r for r in finished if r.data.tags.get("aunet.split") == split]
    assert len(entropy) == 4 and all(r.data.params["data.split_sha256"] == sha for r in entropy)
    word = [r for r in finished if r.data.tags.get("aunet.split") == "word" and r.data.tags["aunet.arch"] == "aunet"]
    assert len(word) == 2 and not any("data.split_sha256" in r.data.params for r in word)


def test_logged_grapheme_cuts_match_a_count_from_the_test_text(study, tmp_path):
    """The runs' test/grapheme_cuts metrics against boundaries counted here from the split's levels
    and the test documents each run names (its eval_documents.json artifact)."""
    from mlflow.tracking import MlflowClient

    from aunet_lab.data.corpus import documents
    from aunet_lab.data.manifest import load_manifest
    from aunet_lab.data.splitting import byte_levels

    root, manifest, _, _ = study
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    checked = 0
    for r in _runs(root):
        tags, metrics = r.data.tags, r.data.metrics
        lang = tags["aunet.mixture"]
        named = json.loads(Path(client.download_artifacts(r.info.run_id, "eval_documents.json",
                                                          str(tmp_path))).read_text())["test"][lang]
        by_id = {d["id"]: d["text"] for d in documents(load_manifest(manifest), lang, "test", root / "cache")}
        counted = [_grapheme_cuts(by_id[i], byte_levels(by_id[i], tags["aunet.split"]).tolist()) for i in named]
        total, inside = sum(c[0] for c in counted), sum(c[1] for c in counted)
        assert metrics[f"test/grapheme_cuts/{lang}/stage2"] == pytest.approx(inside / total)
        assert metrics[f"test/units_per_byte/{lang}/stage2"] == pytest.approx(
            total / sum(len(by_id[i].encode()) for i in named))
        checked += 1
    assert checked == (2 * 3 - 1) * 2


def test_the_script_rule_cuts_thai_grapheme_clusters_and_never_english_ones(study):
    root, *_ = study
    cuts = {(r.data.tags["aunet.split"], r.data.tags["aunet.mixture"]): r.data.metrics["test/grapheme_cuts/" + r.data.tags["aunet.mixture"] + "/stage2"]
            for r in _runs(root) if r.data.tags["aunet.arch"] == "aunet"}
    assert cuts[("word", "en")] == 0.0 and cuts[("script", "en")] == 0.0
    assert cuts[("script", "th")] > 0.05  # about every 2 characters, blind to combining vowels and tones
    assert not any(k.startswith("aunet.units_example.th.stage3") for r in _runs(root) for k in r.data.tags)  # 2 stages
    examples = {r.data.tags["aunet.mixture"]: r.data.tags["aunet.units_example.th.stage2"]
                for r in _runs(root) if r.data.tags.get("aunet.split") == "script" and r.data.tags["aunet.mixture"] == "th"}
    assert examples["th"].count("|") >= 5


def test_the_report_has_a_boundaries_page_and_paired_findings(study):
    import pypdf

    root, _, _, split = study
    pdf = root / "report.pdf"
    figures = root / "report-figures"
    assert (figures / "boundaries.png").is_file() and (figures / "boundary_examples.png").is_file()
    assert not (figures / "splits.png").exists()  # the boundaries page carries its bars
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(pdf).pages)
    assert "Boundaries: the units of a test passage" in text
    assert "aunet2-6KB-th-word (window of 64 bytes holds under 4 units" in " ".join(text.split())
    for lang in LANGS:
        assert f"Boundaries, AU-Net-2 on {lang}" in text.replace("\n", " ")
    flat = " ".join(text.split())
    assert "against word (95% CI" in flat and "paired by seed" in flat


def test_the_split_axis_takes_learned_chunking(study):
    """``learned`` on the split axis: an AU-Net cell with learned chunking, sized on its target rates."""
    root, manifest, _, _ = study
    path = write_spec(root, manifest, "learned-plan",
                      axes={"arch": ["aunet2"], "data_budget": ["6KB"], "split": ["word", "learned"], "mixture": ["en"]},
                      tune={"trials": 1, "lr_factor": 3})
    result = cli("sweep", str(path), "--plan")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "aunet2-6KB-en-" in line}
    assert set(rows) == {"aunet2-6KB-en-word", "aunet2-6KB-en-learned"}
    assert rows["aunet2-6KB-en-learned"].rstrip(" │").endswith("ok")
