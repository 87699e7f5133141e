"""User-specified split functions, bad specs, and the `aunet-lab split` commands."""

import re
import subprocess
import sys

import pytest
import torch

from aunet_lab.data.splitting import (
    SplitSpecError,
    byte_levels,
    check_stability,
    get_split_function,
)


def one_level_per_space(text):
    return [1 if ch == " " else 0 for ch in text]


def wrong_shape(text):
    return [0, 1]


def returns_floats(text):
    return [0.5] * len(text)


def too_deep(text):
    return [9] * len(text)


def test_regex_and_callable_specs():
    assert byte_levels("ab cd ", "regex:\\S+\\s").tolist() == [0, 0, 1, 0, 0, 1]
    split = get_split_function(f"{__name__}:one_level_per_space")
    assert byte_levels("ab cd ", split).tolist() == [0, 0, 1, 0, 0, 1]
    assert byte_levels("ab cd ", one_level_per_space).tolist() == [0, 0, 1, 0, 0, 1]


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("nosuchsplitter", "unknown name"),
        ("regex:(unclosed", "does not compile"),
        ("stride:4,2", "strictly increasing"),
        ("stride:x", "integers"),
        ("nosuchmodule_xyz.sub:fn", "cannot import"),
        (f"{__name__}:missing_attr", "no attribute"),
        (f"{__name__}:wrong_shape", "one level per character"),
        (f"{__name__}:returns_floats", "expected integers"),
        (f"{__name__}:too_deep", "outside 0..3"),
    ],
)
def test_bad_specs_give_one_line_naming_the_spec(spec, fragment):
    with pytest.raises(SplitSpecError) as info:
        get_split_function(spec)
    message = str(info.value)
    assert "\n" not in message
    assert repr(spec) in message and fragment in message


def test_checker_finds_the_reference_rule_unstable_and_ours_stable():
    assert check_stability("word").stable
    report = check_stability("aunet_lab.data.splitting:paper_reference_word")
    assert not report.stable
    assert report.level_as_prefix != report.level_in_full
    assert "NOT stable" in report.summary()
    # A look-ahead regex is the textbook unstable split: a boundary that depends on the next byte.
    assert not check_stability("regex:\\w(?=\\s)").stable


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "aunet_lab.cli", *args], capture_output=True, text=True, timeout=300)


def test_cli_bad_specs_exit_2_with_one_line():
    for spec in ("nosuchsplitter", "regex:(unclosed", "tests_helper_missing.mod:fn"):
        result = _cli("split", "show", spec, "some text")
        assert result.returncode == 2, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and spec in lines[0], result.stderr
    result = _cli("split", "frobnicate")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_cli_show_and_check():
    result = _cli("split", "show", "word", "The cat sat on the mat.")
    assert result.returncode == 0, result.stderr
    assert "stage 2: 6 units" in result.stdout and "The\u2423|cat\u2423|sat\u2423" in result.stdout
    result = _cli("split", "check", "script", "--generated", "10", "--max-bytes", "80")
    assert result.returncode == 0 and "is stable" in result.stdout, result
    result = _cli("split", "check", "aunet_lab.data.splitting:paper_reference_word", "--max-bytes", "80")
    assert result.returncode == 1 and "NOT stable" in result.stdout, result
    result = _cli("split", "list")
    assert result.returncode == 0 and "stride" in result.stdout


def test_demo_prints_script_bound_table_and_runs_the_smoke_study(tmp_path):
    import csv
    import os

    env = {**os.environ, "COLUMNS": "160", "AUNET_LAB_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-m", "aunet_lab.cli", "demo", "--offline", "--trials", "1", "--quick"],
                            capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for lang in ("zh", "ja", "th"):
        assert f"\n{lang}" in out or f" {lang} " in out
    assert "NO" not in out.split("Script-aware")[1].split("Stage-2")[0]
    with (tmp_path / "runs" / "demo" / "smoke" / "summary.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["arch"] for r in rows} == {"bpe", "aunet2"} and len(rows) == 2
    for row in rows:
        assert 0 < float(row["test_bpb"]) < 12, row
        assert row["cell"] in out  # the results table is printed
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()
    assert "aunet-lab ui --tracking-uri" in out
    assert (tmp_path / "reports" / "smoke.pdf").stat().st_size > 10_000 and "reports/smoke.pdf" in out
