"""Reports from a synthetic MLflow store written in the project's schema: pages and text (pypdf),
figures that are not empty, byte-identical rebuilds, and the partial, empty and unknown cases."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

LANGS = ["en", "fr"]
BUDGETS = np.logspace(12, 14, 7)
LAWS = {"bpe": (1.0, 40.0, 0.12), "aunet2": (0.95, 45.0, 0.125)}  # E, A, alpha


def make_store(root: Path, study: str = "synth", running: int = 0, failed: int = 1) -> str:
    """A finished study of BPE and AU-Net-2 over 7 compute budgets (2 seeds each), a failed trial,
    and ``running`` trials still RUNNING."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment(study, artifact_location=(root / "artifacts").as_uri())
    parent = client.create_run(exp, run_name=study, tags={"aunet.kind": "study", "aunet.study": study,
                                                         "git.commit": "abc123def456"})
    spec = root / f"{study}.yaml"
    spec.write_text(f"name: {study}\naxes:\n  arch: [bpe, aunet2]\n")
    client.log_artifact(parent.info.run_id, str(spec), "spec")
    client.log_batch(parent.info.run_id, params=[Param("objective", json.dumps({"metric": "val/bpb"}))])
    rng = np.random.default_rng(0)
    trial = 0
    for arch, (E, A, alpha) in LAWS.items():
        for budget in BUDGETS:
            for seed in (0, 1):
                loss = (E + A * budget ** -alpha) * float(np.exp(rng.normal(0, 0.003)))
                cell = f"{arch}-{budget:.0e}-mix"
                tags = {"aunet.arch": "bpe" if arch == "bpe" else "aunet", "aunet.stages": "0" if arch == "bpe" else "2",
                        "aunet.split": "word", "aunet.languages": "en,fr", "aunet.mixture": "mix",
                        "aunet.study": study, "aunet.cell": cell, "aunet.trial": str(trial), "aunet.seed": str(seed),
                        "aunet.budget": f"{budget:.0e}", "aunet.budget_kind": "compute",
                        "aunet.role": "repeat" if seed else "tuning", "git.commit": "abc123def456",
                        "data.hash": "feedbeef" * 4, "mlflow.parentRunId": parent.info.run_id}
                run = client.create_run(exp, run_name=f"{cell}-t{trial}", tags=tags)
                fpb = 1e6
                params = [Param("data.budget", str(int(budget / fpb))), Param("model.non_embedding_params", "1000000"),
                          Param("optim.lr", "0.003"), Param("data.window", "200" if arch == "bpe" else "512"),
                          Param("data.window_bytes", "512")]
                metrics = [Metric("val/bpb", loss * 1.01, 0, 100), Metric("test/bpb", loss, 0, 100),
                           Metric("compute/flops_per_byte", fpb, 0, 0)]
                metrics += [Metric(f"test/bpb/{lang}", loss * (1 + 0.05 * k), 0, 100) for k, lang in enumerate(LANGS)]
                metrics += [Metric("data/bytes_seen", s * budget / fpb / 4, 0, s) for s in range(1, 5)]
                metrics += [Metric("train/bpb", loss + 1 / s, 0, s) for s in range(1, 5)]
                metrics += [Metric("throughput/bytes_per_s", 20000.0 if arch == "bpe" else 15000.0, 0, s) for s in range(1, 5)]
                metrics += [Metric("throughput/mfu", 0.3 if arch == "bpe" else 0.22, 0, s) for s in range(1, 5)]
                if arch != "bpe":
                    metrics.append(Metric("aunet/units_per_byte/stage2", 0.19, 0, 100))
                client.log_batch(run.info.run_id, metrics=metrics, params=params)
                client.set_terminated(run.info.run_id, "FINISHED")
                trial += 1
    for k in range(failed + running):
        run = client.create_run(exp, run_name=f"extra-{k}", tags={"aunet.arch": "aunet", "aunet.stages": "2",
                                                                  "aunet.cell": "aunet2-1e+14-mix", "aunet.trial": str(100 + k),
                                                                  "mlflow.parentRunId": parent.info.run_id})
        if k < failed:
            client.set_tag(run.info.run_id, "aunet.failure", "non-finite loss at step 3")
            client.set_terminated(run.info.run_id, "FAILED")
    client.set_terminated(parent.info.run_id, "FINISHED" if not running else "RUNNING")
    return uri


def pdf_text(path: Path) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() for page in PdfReader(str(path)).pages]


def test_report_from_a_synthetic_store(tmp_path, monkeypatch):
    from aunet_lab.reports.build import build_report

    uri = make_store(tmp_path)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    report = build_report("synth", uri, tmp_path / "out" / "synth.pdf")
    pages = pdf_text(report.pdf)
    assert len(pages) == report.pages >= 9
    assert "aunet_lab report: synth" in pages[0] and "abc123def456" in pages[0]
    assert "29 finished" not in pages[0] and "28 finished, 1 failed, 0 pruned, 0 running" in pages[0]
    findings = " ".join(pages[1].split())  # the page's text, its line breaks undone
    assert "Findings" in findings
    # Both fits exist (7 budgets; the 6 smaller ones also fitted alone to predict the largest) and the
    # multiplier is stated with its CI and seed count; so is every other finding, or why it has none.
    assert "BPE: L(C) =" in findings and "AU-Net-2: L(C) =" in findings
    assert "predicts the largest (1e+14 FLOPs)" in findings
    assert "AU-Net-2 reaches BPE's test BPB" in findings and "95% CI" in findings
    assert "n=2 seeds" in findings
    assert_every_finding_has_its_interval(report.findings)
    methods = " ".join(next(p for p in pages if p.startswith("Methods")).split())
    for words in ("seeds are drawn with replacement", "budgets are never resampled", "inside their fitted budgets",
                  "Coverage, simulated at this study's shape", "multiplier 95% intervals cover the truth in",
                  "widened x", "cross-validated"):
        assert words in methods, words
    titles = "\n".join(pages[2:])
    for title in ("Test bits per byte against training compute", "by language and architecture",
                  "AU-Net minus BPE", "Learning curves", "throughput and MFU", "Appendix"):
        assert title in titles, title
    # One split function on one mixture: one bar a stage, too few for a page; its values are a line of the findings.
    assert "AU-Net units per byte" not in titles
    units = next(line for line in report.findings if line.startswith("AU-Net units per byte"))
    assert "mix word: stage2 0." in units and "no page: too few bars" in units
    # The CSV holds every run; the figures were drawn (PNG files with more than one colour).
    import pandas as pd
    from PIL import Image

    frame = pd.read_csv(report.csv)
    assert len(frame) == 29 and set(frame["status"]) == {"finished", "failed"}
    assert "test/bpb/fr" in frame.columns
    for png in report.figures:
        im = np.asarray(Image.open(png).convert("L"))
        assert im.std() > 5, png
    # The multiplier's truth: the compute AU-Net-2's law needs to reach the stated loss over BPE's.
    sentence = next(line for line in report.findings if "reaches BPE's test BPB" in line)
    loss = float(sentence.split("test BPB ")[1].split(" ")[0])
    stated = float(sentence.split("with ")[1].split("x the")[0])
    lo, hi = (float(v) for v in sentence.split("95% CI ")[1].split(",")[0].split(" to "))
    (E, A, a), (Eb, Ab, ab) = LAWS["aunet2"], LAWS["bpe"]
    truth = ((loss - E) / A) ** (-1 / a) / ((loss - Eb) / Ab) ** (-1 / ab)
    assert stated == pytest.approx(truth, rel=0.15) and lo <= truth <= hi


def assert_every_finding_has_its_interval(findings):
    """Each finding states a 95% interval and its seed count, or why it has no interval."""
    import re

    for line in findings:
        with_interval = "95% CI" in line and re.search(r"n=\d+(-\d+)? seeds?", line)
        assert with_interval or "no interval" in line, line


def test_two_builds_with_the_same_source_date_epoch_are_byte_identical(tmp_path, monkeypatch):
    from aunet_lab.reports.build import build_report

    uri = make_store(tmp_path)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    first = build_report("synth", uri, tmp_path / "r0" / "synth.pdf").pdf.read_bytes()
    second = build_report("synth", uri, tmp_path / "r1" / "synth.pdf").pdf.read_bytes()
    assert first == second
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1800000000")
    assert build_report("synth", uri, tmp_path / "r2" / "synth.pdf").pdf.read_bytes() != first


def test_partial_empty_and_unknown_studies(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from aunet_lab.reports.build import build_report

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    uri = make_store(tmp_path, running=2)
    report = build_report("synth", uri, tmp_path / "partial.pdf")
    pages = pdf_text(report.pdf)
    assert "2 running" in pages[0]
    assert "The study is not finished" in pages[1]

    MlflowClient(uri).create_experiment("empty", artifact_location=(tmp_path / "a2").as_uri())
    report = build_report("empty", uri, tmp_path / "empty.pdf")
    pages = pdf_text(report.pdf)
    assert len(pages) == 2 and "has no finished trial yet" in pages[1]

    result = subprocess.run([sys.executable, "-m", "aunet_lab.cli", "report", "nosuch", "--tracking-uri", uri,
                             "--out", str(tmp_path / "x.pdf")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no study 'nosuch'" in lines[0] and "empty, synth" in lines[0]
    assert not (tmp_path / "x.pdf").exists()


def multilingual_runs(seeds: int):
    """The runs frame of a warm-start study (pretrain on English; German at 3 KB and 6 KB, AU-Net-2
    with two split functions) evaluated on three languages with character tasks and diagnostics,
    ``seeds`` seeds per cell (the first the tuning trial, then repeats)."""
    import pandas as pd

    rng = np.random.default_rng(seeds)
    cells = [("bpe", "pretrain", "en", 9000, "word", ""), ("aunet2", "pretrain", "en", 9000, "word", "")]
    cells += [(arch, "de", "de", b, split, f"pretrain-{arch}") for arch, split in
              (("bpe", "word"), ("aunet2", "word"), ("aunet2", "space")) for b in (3000, 6000)]
    rows, trial = [], 0
    for arch, mixture, langs, nbytes, split, source in cells:
        cell = f"pretrain-{arch}" if mixture == "pretrain" else f"{arch}-{split}-{nbytes}-de"
        base = 2.0 - nbytes / 20000 + (0.05 if arch == "bpe" else 0) + (0.02 if split == "space" else 0)
        for s in range(seeds):
            loss = base + rng.normal(0, 0.01)
            row = {"run_id": f"r{trial}", "status": "finished", "cell": cell, "trial": trial,
                   "role": "repeat" if s else ("pretrain" if mixture == "pretrain" else "tuning"), "arch": arch,
                   "split": split, "languages": langs, "mixture": mixture, "seed": s, "budget": str(nbytes),
                   "bytes": float(nbytes), "compute": np.nan, "params": np.nan, "val_objective": loss * 1.01,
                   "test_bpb": loss, "pretrain_cell": source}
            for k, lang in enumerate(LANGS + ["de"]):
                row[f"test/bpb/{lang}"] = loss + (0 if lang in langs else 0.5 + 0.1 * k)
                row[f"test/context_bytes/{lang}"] = 512.0 if arch != "bpe" else (480.0 if lang in langs else 300.0)
            if mixture == "de":
                for task in ("t0", "t1"):
                    row[f"eval/chars/de/{task}"] = 0.5 + rng.normal(0, 0.05)
                    row[f"eval/chars_chance/de/{task}"] = 0.25
                    row[f"eval/chars_items/de/{task}"] = 40.0
                if arch != "bpe":
                    for offset in range(3):
                        bits = (3.0 if offset == 0 else 1.5) + rng.normal(0, 0.05)
                        row[f"eval/diagnostics/de/offset/{offset}"] = bits
            rows.append(row)
            trial += 1
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seeds", [1, 3])
def test_every_multilingual_finding_has_its_interval_and_seed_count(seeds):
    from aunet_lab.reports import multilingual
    from aunet_lab.reports.collect import StudyRuns

    frame = multilingual_runs(seeds)
    best = StudyRuns("ml", "", runs=frame).best_per_cell()
    assert set(best["seeds"]) == {seeds}
    lines = multilingual.findings(best, LANGS + ["de"], frame)
    for start in ("Transfer: AU-Net-2 minus BPE", "Mean history per scored byte", "Best AU-Net-2 split function",
                  "Warm start on de", "Character tasks", "AU-Net diagnostics"):
        assert sum(line.startswith(start) for line in lines) == 1, (start, lines)
    assert_every_finding_has_its_interval(lines)
    by_start = {line.split(":")[0]: line for line in lines}
    for key in ("Transfer", "Warm start on de (test BPB on de)", "AU-Net diagnostics"):
        assert ("95% CI" in by_start[key] and "n=3 seeds" in by_start[key]) if seeds == 3 else \
            "n=1 seed: no interval" in by_start[key], by_start[key]
    if seeds == 3:  # the seeds are replicates: the warm start's gain is the mean of the three seeds' gains
        reps = multilingual.seed_replicates(best, frame)
        assert len(reps) == 3
        gains = [float(r.loc[r["cell"] == "pretrain-bpe", "test/bpb/de"].iloc[0]
                       - r.loc[r["cell"] == "bpe-word-6000-de", "test/bpb/de"].iloc[0]) for r in reps]
        assert f"gain {np.mean(gains):.3f}" in by_start["Warm start on de (test BPB on de)"]
