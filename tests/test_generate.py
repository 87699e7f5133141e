"""Cached generation: same distributions as the full forward pass, deep stages only at boundaries."""

import pytest
import torch

from aunet_lab.models import AUNet, AUNetConfig, TokenTransformer, TransformerConfig
from aunet_lab.models.generate import Generator, sample_next

TEXT = "The cat sat on the mat. It cost 12345 dollars,\nok? 人人生而自由 and a few more words here to go."


def _stepwise(model, ids, prompt_len):
    gen = Generator(model)
    out = [gen.prefill(ids[:, :prompt_len])]
    for t in range(prompt_len, ids.shape[1] - 1):
        out.append(gen.step(ids[:, t]))
    return torch.stack(out, 1), gen


CASES = [
    (2, "word", "multilinear", None), (3, "word", "multilinear", None), (4, "word", "multilinear", None),
    (3, "script", "repeat", None), (2, "stride:4", "scatter", None), (4, "word", "multilinear", 8),
]


@pytest.mark.parametrize("stages, split, upsampling, byte_window", CASES)
def test_cached_generation_matches_full_forward(stages, split, upsampling, byte_window):
    torch.manual_seed(stages)
    model = AUNet(AUNetConfig.tiny(stages=stages, split=split, upsampling=upsampling, byte_window=byte_window)).eval()
    ids = torch.tensor([[256] + list(TEXT.encode())])
    with torch.no_grad():
        full = model(ids)
    for prompt_len in (1, 12):
        stepped, gen = _stepwise(model, ids, prompt_len)
        diff = (torch.softmax(stepped, -1) - torch.softmax(full[:, prompt_len - 1 : -1], -1)).abs().max()
        assert diff < 1e-4, float(diff)
        assert (stepped - full[:, prompt_len - 1 : -1]).abs().max() < 1e-4
        # Stage i ran once per byte whose level reaches it (BOS counts at every level).
        levels = model.compute_levels(ids[:, :-1])
        assert gen.stage_calls == [int((levels >= i).sum()) for i in range(stages)]
        assert gen.stage_calls[1] < gen.stage_calls[0] / 2


def test_cached_generation_with_caps_matches_and_counts_drops():
    torch.manual_seed(0)
    cfg = AUNetConfig.tiny(stages=3)
    cfg.stages[1].max_len, cfg.stages[2].max_len = 9, 4
    model = AUNet(cfg).eval()
    ids = torch.tensor([[256] + list(TEXT.encode())])
    with torch.no_grad():
        full = model(ids[:, :-1])
        stepped, gen = _stepwise(model, ids, 5)
    assert (stepped - full[:, 4:]).abs().max() < 1e-4
    assert gen.stage_calls[1:] == [9, 4]


def test_batched_rows_fire_stages_independently():
    torch.manual_seed(0)
    model = AUNet(AUNetConfig.tiny(stages=3)).eval()
    rows = [b"a bb ccc dddd eeeee", b"xxxxxxxxx yyyyyyyyy"]
    ids = torch.tensor([[256] + list(r) for r in rows])
    with torch.no_grad():
        full = model(ids)
        stepped, _ = _stepwise(model, ids, 3)
    assert (stepped - full[:, 2:-1]).abs().max() < 1e-4


def test_token_baseline_cached_generation():
    torch.manual_seed(0)
    model = TokenTransformer(TransformerConfig.tiny(vocab_size=300, window=6)).eval()
    ids = torch.randint(0, 300, (2, 24))
    with torch.no_grad():
        full = model(ids)
        stepped, gen = _stepwise(model, ids, 4)
    assert (stepped - full[:, 3:-1]).abs().max() < 1e-4
    assert gen.stage_calls == [2 * 23]


def test_generate_and_sampling():
    torch.manual_seed(0)
    model = AUNet(AUNetConfig.tiny(stages=2)).eval()
    gen = Generator(model)
    prompt = torch.tensor([[256] + list(b"Hello ")])
    greedy = gen.generate(prompt, 20)
    assert greedy.shape == (1, 20)
    assert torch.equal(greedy, Generator(model).generate(prompt, 20))
    a = gen.generate(prompt, 20, temperature=1.0, top_p=0.9, seed=3)
    b = gen.generate(prompt, 20, temperature=1.0, top_p=0.9, seed=3)
    assert torch.equal(a, b)
    logits = torch.tensor([[0.0, 5.0, 4.9, -3.0]])
    picks = {int(sample_next(logits, 1.0, 0.5, torch.Generator().manual_seed(s))) for s in range(50)}
    assert picks == {1}  # top-p 0.5 keeps only the most likely id
    with pytest.raises(RuntimeError):
        Generator(model).step(torch.tensor([1]))
