"""The CPU ladder's plan (issue 18): learning rates below the paper's laws' fitted range from a
pilot's anchor moved along the law's slope (or the law extrapolated), bounded; the batch kept to a
minimum number of steps; and both shipped ladder specs load."""

import math
from pathlib import Path

import pytest
import yaml

from aunet_lab.models.sizing import HPARAM_LAWS, hyperparameters
from aunet_lab.sweep.plan import batch_windows, learning_rate
from aunet_lab.sweep.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]


def _spec(tmp_path, **tune):
    raw = yaml.safe_load((ROOT / "studies" / "scaling-cpu.yaml").read_text())
    raw["tune"] = {**raw["tune"], **tune}
    path = tmp_path / "ladder.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path)


def test_a_pilot_anchor_moves_along_the_law_and_is_bounded(tmp_path):
    spec = _spec(tmp_path, lr_anchor={"bpe": 0.01, "aunet2": 0.004}, anchor_compute=1e12, lr_bounds=[1e-4, 0.009])
    cells = {c.id: c for c in spec.cells()}
    law = hyperparameters(1e13, "aunet")
    lr, source = learning_rate(spec, cells["aunet2-1e13-six"], 1e13, law)
    assert lr == pytest.approx(0.004 * 10 ** HPARAM_LAWS["aunet"]["lr"][1]) and source == "pilot"
    lr, source = learning_rate(spec, cells["bpe-1e12-six"], 1e12, law)  # 0.01 is above the bound
    assert lr == 0.009 and source == "pilot, bounded"
    # No anchor for aunet3: the law extrapolated below its range (about 0.05 at 1e12), bounded.
    lr, source = learning_rate(spec, cells["aunet3-1e12-six"], 1e12, law)
    assert hyperparameters(1e12, "aunet", extrapolate=True).lr > 0.009
    assert lr == 0.009 and source == "law, extrapolated, bounded"
    # Inside the fitted range the law itself.
    big = hyperparameters(1e18, "aunet")
    assert learning_rate(spec, cells["aunet2-1e13-six"], 1e18, big) == (big.lr, "law")


def test_the_batch_keeps_a_minimum_of_steps(tmp_path):
    spec = _spec(tmp_path, min_steps=200)
    cell = next(c for c in spec.cells() if c.arch == "aunet2")
    pooled = {"bytes_per_token": 3.0}
    assert batch_windows(spec, cell, 1e13, 50_000_000, 512, pooled, 32) == 32  # the cell config's
    few = batch_windows(spec, cell, 1e12, 1_000_000, 512, pooled, 32)
    assert math.ceil(1_000_000 / (few * 512)) >= 200 and few == 1_000_000 // (512 * 200)
    law = _spec(tmp_path, batch="law", min_steps=1)
    bpe = next(c for c in law.cells() if c.arch == "bpe")
    tokens = hyperparameters(1e13, "bpe", extrapolate=True).batch_size
    assert batch_windows(law, bpe, 1e13, 10**9, 512, pooled, 32) == round(tokens * 3.0 / 512)


@pytest.mark.parametrize("name", ["scaling-cpu", "scaling-cpu-pilot", "scaling"])
def test_the_shipped_ladders_load(name):
    spec = load_spec(ROOT / "studies" / f"{name}.yaml")
    assert {c.arch for c in spec.cells()} >= {"bpe", "aunet2", "aunet3"}


def test_a_bad_anchor_is_refused_by_name(tmp_path):
    from aunet_lab.config import ConfigError

    with pytest.raises(ConfigError, match="tune.lr_anchor.aunet9"):
        _spec(tmp_path, lr_anchor={"aunet9": 0.01})
    with pytest.raises(ConfigError, match="tune.anchor_compute"):
        _spec(tmp_path, anchor_compute=None)
    with pytest.raises(ConfigError, match="tune.lr_bounds"):
        _spec(tmp_path, lr_bounds=[0.1, 0.01])


def test_a_ladder_runs_in_parts_by_cell(capsys):
    """sweep --cells: the cells whose ids match the globs (with the pretraining cells they start
    from), or one line naming the cells there are."""
    from aunet_lab.cli import main
    from aunet_lab.config import ConfigError
    from aunet_lab.sweep.plan import select_cells

    spec = load_spec(ROOT / "studies" / "scaling-cpu.yaml")
    assert select_cells(spec, None) is None
    assert select_cells(spec, ["bpe-1e13-six", "aunet2-*"]) == {"bpe-1e13-six", "aunet2-1e12-six", "aunet2-2e12-six",
                                                              "aunet2-5e12-six", "aunet2-1e13-six"}
    warm = load_spec(ROOT / "studies" / "lowresource-smoke.yaml")
    chosen = select_cells(warm, [next(c.id for c in warm.cells() if c.pretrain)])
    assert len(chosen) == 2 and any(c.startswith("pretrain") for c in chosen)
    with pytest.raises(ConfigError, match="no cell of .* matches"):
        select_cells(spec, ["bpe-1e14-*"])
    assert main(["sweep", str(ROOT / "studies" / "scaling-cpu.yaml"), "--plan", "--cells", "nothing"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--cells 'nothing'" in err[0] and "bpe-1e12-six" in err[0]
