"""Learned chunking (H-Net-style dynamic chunking as an AU-Net option, models/chunking.py): the
UTF-8 rule, causality, cached generation equal to the full pass, the ratio loss pulling the
compression toward its target in training, and the config's refusals."""

import pytest
import torch

from aunet_lab.data.samples import udhr_articles
from aunet_lab.models import AUNet, AUNetConfig
from aunet_lab.models.chunking import char_end_mask

MIXED = ("Article 1. All human beings are born free — 人人生而自由，在尊严和权利上一律平等。 Все люди "
         "рождаются свободными. नमस्ते दुनिया e\u0301 ok").encode()


def _model(stages=3, seed=0, **kw):
    torch.manual_seed(seed)
    return AUNet(AUNetConfig.tiny(stages=stages, chunking="learned", **kw))


def test_char_end_mask_marks_exactly_the_last_byte_of_each_complete_character():
    text = MIXED.decode()
    ends, at = set(), 0
    for ch in text:
        at += len(ch.encode())
        ends.add(at - 1)
    mask = char_end_mask(torch.tensor([list(MIXED)]))[0].tolist()
    assert [i for i, e in enumerate(mask) if e] == sorted(ends)
    # broken UTF-8: a lone continuation byte, a truncated lead, then BOS (special: an end)
    broken = torch.tensor([[0xE4, 0xB8, 0x41, 0x80, 0xC3, 256, 0xC3, 0xA9]])
    assert char_end_mask(broken)[0].tolist() == [False, False, True, False, False, True, False, True]


def test_boundaries_are_causal_and_never_inside_a_character():
    model = _model().eval()
    ids = torch.tensor([[256] + list(MIXED)])
    with torch.no_grad():
        full, trace = model.run(ids)
        changed = ids.clone()
        changed[0, 60:] = torch.tensor(list(b"x" * (ids.shape[1] - 60)))
        other, _ = model.run(changed)
    assert torch.allclose(full[:, :60], other[:, :60], atol=1e-5)
    stage2 = trace.maps[0].idx[0, : int(trace.maps[0].kept[0])].tolist()
    ends = char_end_mask(ids)[0]
    assert stage2 and all(bool(ends[i]) for i in stage2) and stage2[0] == 0  # BOS is a boundary


def test_cached_generation_matches_the_full_pass():
    from aunet_lab.models.generate import Generator

    model = _model().eval()
    ids = torch.tensor([[256] + list(MIXED[:120])])
    with torch.no_grad():
        full, trace = model.run(ids)
    gen = Generator(model)
    stepped = [gen.prefill(ids[:, :9])] + [gen.step(ids[:, t]) for t in range(9, ids.shape[1])]
    stepped = torch.stack(stepped, 1)
    assert (stepped - full[:, 8:]).abs().max() < 1e-4
    kept = [int(m.kept[0]) for m in trace.maps]
    assert kept[1] > 1  # the deepest stage ran more than once: its smoothing was exercised
    assert gen.stage_calls == [ids.shape[1]] + kept


def test_the_ratio_loss_pulls_the_compression_to_its_target():
    """A tiny AU-Net-2 trained on UDHR text with an 8-byte target (the ratio loss at weight 1): 5.4
    bytes a unit at the start (the identity routing), within 25% of the target after 40 steps."""
    text = " ".join(udhr_articles("en")[:12]).encode()
    model = _model(stages=2, seed=1, target_bytes=[8.0], ratio_loss=1.0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    windows = torch.tensor([[256] + list(text[i : i + 63]) for i in range(0, 64 * 16, 64)])

    def bytes_per_unit():
        with torch.no_grad():
            _, trace = model.eval().run(windows)
        return windows.numel() / float(trace.maps[0].kept.sum())

    before = bytes_per_unit()
    for _ in range(40):
        model.train()
        logits = model(windows[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))
        (loss + model.aux_loss).backward()
        opt.step()
        opt.zero_grad()
    after = bytes_per_unit()
    assert abs(after - 8.0) < 2.0 < abs(before - 8.0)


def test_training_adds_the_ratio_loss_and_counts_the_routing_flops():
    from aunet_lab.models.sizing import flops_per_byte, model_flops

    model = _model(stages=2)
    config = model.config
    report = model_flops(config, 64, {"bytes_per_unit": [1.0, 50.0]})  # a split's units do not apply
    assert report.bytes_per_unit == [1.0, 5.0]
    assert report.boundary == pytest.approx(6 * 2 * config.stages[0].dim ** 2)
    assert report.total == pytest.approx(sum(report.per_stage) + report.boundary)
    assert flops_per_byte(AUNetConfig.tiny(stages=2), 64, [1.0, 5.0]).boundary == 0.0


@pytest.mark.parametrize("change, expected", [
    ({"chunking": "hnet"}, "chunking: expected split or learned"),
    ({"chunking": "learned", "target_bytes": [8.0, 4.0]}, "target_bytes: expected 2 increasing"),
    ({"chunking": "learned", "target_bytes": [5.0]}, "target_bytes: expected 2 increasing"),
    ({"chunking": "learned", "ratio_loss": -1}, "ratio_loss: expected a weight >= 0"),
    ({"chunking": "learned", "target_bytes": 5.0}, "target_bytes: expected a list"),
])
def test_bad_chunking_settings_are_named(change, expected):
    from aunet_lab.models.aunet import ConfigError

    with pytest.raises(ConfigError, match=expected):
        AUNetConfig.tiny(stages=3, **change)
