"""Reports from a runs table (issue 18): `aunet-lab report STUDY --export runs.csv` writes the runs
MLflow holds (with the study's sidecar and training curves), and `aunet-lab report --runs runs.csv`
builds the same report from the files alone; a bad table is one line, exit 2."""

import json

import pandas as pd
import pytest

from aunet_lab.cli import main
from aunet_lab.reports.collect import ReportError
from test_report import make_store, pdf_text


def test_a_report_rebuilt_from_its_runs_table_says_the_same(tmp_path, monkeypatch, capsys):
    from aunet_lab.reports.build import build_report

    uri = make_store(tmp_path)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    direct = build_report("synth", uri, tmp_path / "direct" / "synth.pdf")
    table = tmp_path / "shared" / "runs.csv"
    assert main(["report", "synth", "--tracking-uri", uri, "--export", str(table)]) == 0
    assert "aunet-lab report --runs" in capsys.readouterr().out
    assert {p.name for p in table.parent.iterdir()} == {"runs.csv", "runs.study.json", "runs.curves.csv"}
    (tmp_path / "mlflow.db").unlink()  # the store is gone: only the files remain
    out = tmp_path / "rebuilt" / "synth.pdf"
    assert main(["report", "--runs", str(table), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert all(f"  - {line}" in printed for line in direct.findings)  # every finding, word for word
    before, after = pdf_text(direct.pdf), pdf_text(out)
    assert f"runs table: {table}" in after[0] and "MLflow: " in before[0]
    assert after[1:] == before[1:]  # findings, methods, figures' titles, tables: the same
    pd.testing.assert_frame_equal(pd.read_csv(direct.csv), pd.read_csv(out.with_suffix(".csv")), check_dtype=False)


def test_a_parquet_table_holds_the_same_runs(tmp_path):
    from aunet_lab.reports.collect import collect, export_runs, load_runs_table

    runs = collect("synth", make_store(tmp_path))
    export_runs(runs, tmp_path / "runs.parquet")
    again = load_runs_table(tmp_path / "runs.parquet")
    assert again.name == "synth" and again.languages == runs.languages and again.parent == runs.parent
    pd.testing.assert_frame_equal(again.runs, runs.runs, check_dtype=False)
    assert again.learning_curve(runs.runs["run_id"][0]) == runs.learning_curve(runs.runs["run_id"][0])


@pytest.mark.parametrize("args, words", [
    (["--runs", "{tmp}/nothing.csv"], "no such file"),
    (["--runs", "{tmp}/runs.study.json"], "expected a .csv or .parquet"),
    (["synth", "--runs", "{tmp}/t.csv", "--export", "{tmp}/x.csv"], "not both"),
    (["synth", "--export", "{tmp}/x.txt"], "expected a .csv or .parquet"),
    ([], "name a study"),
    (["--runs", "{tmp}/bad.csv"], "missing columns: run_id"),
])
def test_a_bad_runs_table_is_one_line(tmp_path, capsys, args, words):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    argv = ["report", *[a.format(tmp=tmp_path) for a in args], "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], lines


def test_a_study_run_in_parts_merges_into_one_table(tmp_path, capsys):
    """A ladder run in parts (sweep --cells, on other stores) adds its runs with --export --merge: a
    cell and seed that ran again replaces the earlier run, so no seed counts twice; another study or
    another spec is refused in one line."""
    import dataclasses

    from aunet_lab.reports.collect import collect, export_runs, load_runs_table

    (tmp_path / "a").mkdir()
    runs = collect("synth", make_store(tmp_path / "a"))
    table = tmp_path / "runs.csv"
    budget = pd.to_numeric(runs.runs["budget"], errors="coerce")
    first = runs.runs[budget < budget.max()]
    export_runs(dataclasses.replace(runs, runs=first), table)  # part 1: every budget but the largest
    top = budget == budget.max()
    again = runs.runs[top | (runs.runs["cell"] == first["cell"].iloc[0])].copy()
    again["run_id"] = again["run_id"] + "-part2"  # part 2 ran the largest budget, and one cell again
    export_runs(dataclasses.replace(runs, runs=again), table, merge=True)
    merged = load_runs_table(table)
    assert len(merged.runs) == len(first) + int(top.sum())  # the cell run twice is counted once
    assert not merged.runs.duplicated(["cell", "seed"]).any()
    rerun = merged.runs[merged.runs["cell"] == first["cell"].iloc[0]]
    assert rerun["run_id"].str.endswith("-part2").all()
    finished = merged.runs.loc[merged.runs["status"] == "finished", "run_id"]
    # every curve kept belongs to a run in the table (the replaced runs' curves went with them);
    # part 2's ids are made up here, so MLflow has no curve for them
    assert set(merged.curves["run_id"]) == set(finished[~finished.str.endswith("-part2")])
    parts = json.loads((tmp_path / "runs.study.json").read_text())["parts"]
    assert [p["runs"] for p in parts] == [len(first), len(again)]
    with pytest.raises(ReportError, match="not 'other'"):
        export_runs(dataclasses.replace(runs, name="other"), table, merge=True)
    with pytest.raises(ReportError, match="another spec"):
        export_runs(dataclasses.replace(runs, spec_text=runs.spec_text + "# changed\n"), table, merge=True)
    assert len(load_runs_table(table).runs) == len(merged.runs)  # a refused merge leaves the table as it was
