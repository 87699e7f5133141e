"""Parameter counts, FLOPs per byte, the paper's presets, compute matching, hyperparameter laws."""

import math

import pytest

from aunet_lab.models import AUNet, AUNetConfig, TokenTransformer, TransformerConfig, preset
from aunet_lab.models.sizing import (
    HPARAM_FIT_RANGE,
    count_params,
    flops_per_byte,
    hyperparameters,
    match_compute,
    preset_config,
    stage_params,
)

# Paper Table 2 / section 2.1: non-embedding parameters, and the BPE baseline's 525M embedding.
PAPER_NON_EMBEDDING = {"aunet2-1b": 1.3e9, "aunet3-1b": 2.5e9, "aunet4-1b": 4.2e9}


@pytest.mark.parametrize("name, expected", PAPER_NON_EMBEDDING.items())
def test_aunet_presets_within_3_percent_of_the_paper(name, expected):
    counts = count_params(preset(name))
    assert abs(counts["non_embedding"] / expected - 1) < 0.03, counts


def test_bpe_1b_preset_embedding_within_3_percent():
    counts = count_params(preset("bpe-1b"))
    assert abs(counts["embedding"] / 525e6 - 1) < 0.03
    assert preset("bpe-1b").config.vocab_size == 128256


def test_presets_live_on_the_meta_device():
    model = preset("aunet2-8b")
    assert next(model.parameters()).device.type == "meta"


@pytest.mark.parametrize("cfg", [AUNetConfig.tiny(stages=k, upsampling=u) for k in (1, 2, 3, 4)
                                 for u in ("multilinear", "repeat", "scatter")] + [TransformerConfig.tiny()])
def test_analytic_counts_equal_the_built_models(cfg):
    model = AUNet(cfg) if isinstance(cfg, AUNetConfig) else TokenTransformer(cfg)
    assert count_params(cfg) == count_params(model)
    if isinstance(cfg, AUNetConfig):
        assert sum(stage_params(cfg)) == count_params(model)["non_embedding"]


def test_flops_per_byte_by_hand():
    # A one-stage model: 6 N + 6 d L ctx per byte, by hand.
    cfg = AUNetConfig.tiny(stages=1, dim=32)
    n = count_params(cfg)["non_embedding"]
    report = flops_per_byte(cfg, seq_len=100)
    assert report.total == pytest.approx(6 * n + 6 * 32 * 2 * 100)
    assert report.head == 6 * 32 * 258
    # BPE: per token / bytes per token, head apart.
    bpe = TransformerConfig(1000, 64, 2, 4, ffn_multiple_of=16)
    n = count_params(bpe)["non_embedding"]
    report = flops_per_byte(bpe, seq_len=50, bytes_per_token=4.0)
    assert report.total == pytest.approx((6 * n + 6 * 64 * 2 * 50) / 4.0)
    assert report.head == pytest.approx(6 * 64 * 1000 / 4.0)


def test_deeper_stages_cost_less_per_byte_when_units_are_longer():
    cfg = preset_config("aunet3-1b")
    short = flops_per_byte(cfg, bytes_per_unit=[1.0, 3.0, 6.0])
    long = flops_per_byte(cfg, bytes_per_unit=[1.0, 6.0, 12.0])
    assert long.total < short.total
    assert long.per_stage[0] == short.per_stage[0]
    with pytest.raises(ValueError):
        flops_per_byte(cfg, bytes_per_unit=[1.0, 3.0])


def test_compute_matching_equalises_compute():
    budget, ratio, k = 1e19, 10.0, 4.56
    matched = match_compute(budget, ratio, stages=(2, 3))
    f_token = math.sqrt(budget / ratio)
    assert matched.bpe_flops_per_token == pytest.approx(f_token, rel=0.15)
    for s in (2, 3):
        assert matched.aunet_flops_per_byte[s] == pytest.approx(f_token / k, rel=0.15)
        # Same budget: FLOPs per byte x bytes == FLOPs per token x tokens, within the width grid's step.
        assert matched.aunet_flops_per_byte[s] * matched.bytes == pytest.approx(budget, rel=0.15)
    # The paper's 1e19 BPE model is 1024 wide, 12 deep.
    assert matched.bpe.dim == 1024 and abs(matched.bpe.layers - 12) <= 1


def test_compute_matching_scales_down_to_cpu_sizes():
    m = match_compute(1e12, 10.0, stages=(2,), vocab_size=2048, seq_len_bytes=512, head_dim=16,
                      width_multiple=16, byte_layers=1, byte_window=64, ffn_multiple_of=16)
    assert m.bpe.dim <= 256 and m.aunet[2].stages[0].dim <= 64
    AUNet(m.aunet[2])  # builds


def test_hyperparameter_laws_and_clamp():
    # Paper Tables 10-11 at 5e20: AU-Net 2.9M bytes and lr 1.5e-3; BPE 1.8M tokens and lr 4.2e-3.
    a, b = hyperparameters(5e20, "aunet"), hyperparameters(5e20, "bpe")
    assert a.batch_size == pytest.approx(2.9e6, rel=0.03) and a.lr == pytest.approx(1.5e-3, rel=0.03)
    assert b.batch_size == pytest.approx(1.8e6, rel=0.03) and b.lr == pytest.approx(4.2e-3, rel=0.03)
    tiny = hyperparameters(1e12, "aunet")
    assert tiny.clamped and tiny.compute == HPARAM_FIT_RANGE[0]
    assert tiny.lr == pytest.approx(hyperparameters(HPARAM_FIT_RANGE[0], "aunet").lr)
    assert not a.clamped


CPU = dict(vocab_size=1024, seq_len_bytes=512, head_dim=16, width_multiple=8, byte_layers=2, byte_window=128,
           ffn_multiple_of=16, aspect_ratio=32, count_head=True,
           measured={"bytes_per_token": 3.0, "bytes_per_unit": [1.0, 5.5, 11.0, 22.0]})


@pytest.mark.parametrize("budget", [1e12, 1e13])
def test_the_byte_stage_shrinks_before_a_cpu_budget_is_refused(budget):
    """At CPU budgets the paper's byte stage alone costs more than AU-Net-3 may spend: with
    shrinking, every arm lands within the plan's 1.5x of the target (head counted); without, not."""
    target = math.sqrt(budget / 10) / 3.0
    shrunk = match_compute(budget, 10.0, stages=(2, 3), shrink=True, **CPU)
    bpu = CPU["measured"]["bytes_per_unit"]
    for k, cfg in shrunk.aunet.items():
        f = flops_per_byte(cfg, 512, bpu[:k]).total_with_head
        assert abs(math.log(f / target)) < math.log(1.5), (k, f, target)
    bpe = flops_per_byte(shrunk.bpe, int(512 / 3.0), bytes_per_token=3.0)
    assert abs(math.log(bpe.total_with_head / target)) < math.log(1.5)
    if budget == 1e12:
        fixed = match_compute(budget, 10.0, stages=(3,), shrink=False, **CPU)
        f = flops_per_byte(fixed.aunet[3], 512, bpu[:3]).total_with_head
        assert f / target > 1.5  # the paper's byte stage (2 layers, window 128) does not fit


def test_the_head_counts_in_matching_when_asked():
    plain = match_compute(1e12, 10.0, stages=(2,), **{**CPU, "count_head": False})
    counted = match_compute(1e12, 10.0, stages=(2,), **CPU)
    # The BPE head is a large share at these widths: counting it leaves a narrower body.
    assert counted.bpe.dim < plain.bpe.dim
    report = flops_per_byte(counted.bpe, int(512 / 3.0), bytes_per_token=3.0)
    assert counted.bpe_flops_per_token == pytest.approx(report.total_with_head * 3.0)
