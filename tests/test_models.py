"""AU-Net and the baselines: causality, batching, bad configs, overfitting a short text."""

import pytest
import torch
import torch.nn.functional as F

from aunet_lab.data.splitting import list_split_functions
from aunet_lab.models import AUNet, AUNetConfig, ConfigError, StageConfig, TokenTransformer, TransformerConfig

TEXT = "Tous les êtres humains naissent libres. 人人生而自由，在尊严和权利上一律平等。 x=12345; मनुष्यों को\n"
ATOL = 1e-5


def ids_of(text: str, bos: bool = True) -> torch.Tensor:
    data = text.encode()
    return torch.tensor([([256] if bos else []) + list(data)])


def _lead_byte_cuts(data: bytes) -> list[int]:
    """Positions (in ids with BOS) of lead bytes of multi-byte characters."""
    return [i + 1 for i, b in enumerate(data) if b >= 0xC0][:3]


def _config(stages, split, capped):
    cfg = AUNetConfig.tiny(stages=stages, split=split, byte_window=16)
    if capped:
        for k in range(1, stages):
            cfg.stages[k].max_len = max(2, 12 // k)
    return cfg


CASES = [(k, split, capped) for k in (1, 2, 3, 4) for split in list_split_functions() for capped in (False, True)
         if not (k == 1 and capped)]


@pytest.mark.parametrize("stages, split, capped", CASES)
def test_changing_later_bytes_never_changes_earlier_logits(stages, split, capped):
    if split == "stride":
        split = "stride:3,6,12"
    torch.manual_seed(stages)
    model = AUNet(_config(stages, split, capped)).eval()
    ids = ids_of(TEXT)
    data = TEXT.encode()
    cuts = [5, 20, 47, ids.shape[1] - 3] + _lead_byte_cuts(data)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        base = model(ids)
        for t in cuts:
            changed = ids.clone()
            changed[0, t + 1 :] = torch.randint(0, 256, (ids.shape[1] - t - 1,), generator=gen)
            other = model(changed)
            assert torch.allclose(base[0, : t + 1], other[0, : t + 1], atol=ATOL), (stages, split, capped, t)
            # and the future does change what comes after (the test can fail)
            assert not torch.allclose(base[0, t + 1 :], other[0, t + 1 :], atol=ATOL)


@pytest.mark.parametrize("stages", [2, 3, 4])
def test_a_batch_gives_each_row_its_own_logits(stages):
    torch.manual_seed(1)
    model = AUNet(AUNetConfig.tiny(stages=stages)).eval()
    rows = ["The cat sat on the mat. It cost 12345.", "Alle Menschen sind frei und gleich. ", "人人生而自由，在尊严和权利上一律平"]
    width = max(len(r.encode()) for r in rows) + 1
    batch = torch.full((3, width), 32)
    for r, text in enumerate(rows):
        ids = ids_of(text)[0]
        batch[r, : ids.numel()] = ids
    with torch.no_grad():
        together = model(batch)
        for r in range(3):
            alone = model(batch[r : r + 1])
            assert torch.allclose(together[r], alone[0], atol=ATOL), r


def test_dropped_boundaries_are_counted():
    cfg = AUNetConfig.tiny(stages=3)
    cfg.stages[1].max_len, cfg.stages[2].max_len = 4, 2
    model = AUNet(cfg).eval()
    ids = ids_of("one two three four five six seven eight nine ten ")
    levels = model.compute_levels(ids)
    with torch.no_grad():
        model(ids)
    stage2 = int((levels >= 1).sum())
    assert int(model.last_stats["kept"][0]) == 4
    assert int(model.last_stats["dropped"][0]) == stage2 - 4
    assert int(model.last_stats["kept"][1]) == 2


def test_positions_before_the_first_boundary_read_the_no_context_vector():
    torch.manual_seed(0)
    model = AUNet(AUNetConfig.tiny(stages=2)).eval()
    ids = ids_of("abcdefgh ijk", bos=False)  # a window starting inside a document: no boundary before the space
    first_boundary = 8
    with torch.no_grad():
        before, trace = model.run(ids)
        model.upsampling[0].no_context.add_(1.0)
        after = model(ids)
    src = trace.maps[0].src[0]
    assert (src[:first_boundary] == -1).all() and (src[first_boundary:] >= 0).all()
    # The first positions (which attend to nothing later) see the learned vector change.
    assert not torch.allclose(before[0, 0], after[0, 0])


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: AUNetConfig.tiny(stages=3, split="stride:4"), "AUNetConfig.split"),
        (lambda: AUNetConfig.tiny(stages=5), "AUNetConfig.split"),
        (lambda: AUNetConfig([StageConfig(0, 1, 1)]), "AUNetConfig.stages[0].dim"),
        (lambda: AUNetConfig([StageConfig(32, 1, 2), StageConfig(-64, 1, 2)]), "AUNetConfig.stages[1].dim"),
        (lambda: AUNetConfig([StageConfig(32, 1, 2), StageConfig(64, 1, 5)]), "AUNetConfig.stages[1].heads"),
        (lambda: AUNetConfig([StageConfig(32, 0, 2)]), "AUNetConfig.stages[0].layers"),
        (lambda: AUNetConfig.tiny(stages=2, upsampling="bilinear"), "AUNetConfig.upsampling"),
        (lambda: AUNetConfig.tiny(stages=2, split="nosuchsplit"), "AUNetConfig.split"),
        (lambda: TransformerConfig(512, 64, 2, 3), "TransformerConfig.heads"),
        (lambda: TransformerConfig(0, 64, 2, 4), "TransformerConfig.vocab_size"),
    ],
)
def test_bad_configs_fail_at_construction_naming_the_field(build, field):
    with pytest.raises(ConfigError) as info:
        build()
    assert str(info.value).startswith(field), str(info.value)


@pytest.mark.parametrize("split", list_split_functions())
def test_flat_byte_transformer_is_one_stage_aunet_for_every_split(split):
    model = AUNet(AUNetConfig.tiny(stages=1, split=split))
    assert len(model.encoders) == 0 and len(model.decoders) == 0
    assert model(ids_of("abc")).shape == (1, 4, 258)


def _overfit(model, ids, steps=200, lr=3e-3):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    losses = []
    for _ in range(steps):
        logits = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


OVERFIT_TEXT = "All human beings are born free and equal in dignity and rights. They are endowed with reason."


@pytest.mark.parametrize("stages", [1, 2, 3, 4])
def test_tiny_aunet_overfits_a_short_text(stages):
    torch.manual_seed(0)
    model = AUNet(AUNetConfig.tiny(stages=stages))
    losses = _overfit(model, ids_of(OVERFIT_TEXT))
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


def test_tiny_token_baseline_overfits_a_short_text():
    torch.manual_seed(0)
    model = TokenTransformer(TransformerConfig.tiny(vocab_size=300))
    ids = torch.tensor([[(7 * i * i + 3 * i) % 300 for i in range(40)]])
    losses = _overfit(model, ids)
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


@pytest.mark.parametrize("T, window", [(64, 16), (50, 16), (33, 8), (40, 20)])
def test_blocked_local_attention_equals_masked_attention(T, window):
    from aunet_lab.models.blocks import attention_mask, local_attention

    gen = torch.Generator().manual_seed(T)
    q, k, v = (torch.randn(2, 3, T, 8, generator=gen) for _ in range(3))
    mask = attention_mask(torch.arange(T), torch.arange(T), window)
    reference = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(local_attention(q, k, v, window), reference, atol=1e-5)


def test_levels_are_computed_per_document_inside_a_row():
    from aunet_lab.data.splitting import level_mask
    from aunet_lab.models.aunet import levels_from_ids

    first, second = "one two. ".encode(), "drei vier 56".encode()
    ids = torch.tensor([[256, *first, 257, 256, *second]])
    expected = torch.cat([level_mask(first, "word"), torch.tensor([3]), level_mask(second, "word")])
    assert torch.equal(levels_from_ids(ids, "word")[0], expected)
    # A row that starts inside a document is taken as a document from its start.
    assert torch.equal(levels_from_ids(ids[:, 3:6], "word")[0], level_mask(first[2:5], "word", bos=False))


def _expected_std(model) -> list[tuple[str, torch.Tensor, float]]:
    """Every weight with the std of lingua's rule: fan-in^-0.5, per stage (docs/models.md)."""
    cases = []
    for name, p in model.named_parameters():
        if name.endswith("per_offset"):
            cases.append((name, p, p.shape[1] ** -0.5))  # [K, coarse (in), fine (out)]
        elif p.dim() == 2:
            cases.append((name, p, p.shape[1] ** -0.5))  # Linear [out, in]; Embedding [n, dim]
    return cases


def _assert_lingua_init(model):
    cases = _expected_std(model)
    assert cases
    for name, p, std in cases:
        w = p.detach()
        # A normal truncated at 3 std has std 0.9866 std.
        assert abs(w.std().item() / (0.9866 * std) - 1) < 0.1, (name, w.std().item(), std)
        assert w.abs().max().item() <= 3 * std + 1e-6, name
        assert abs(w.mean().item()) < 0.1 * std, name
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            assert torch.equal(p, torch.ones_like(p)), name


def test_aunet_init_is_lingua_fan_in_rule_per_stage():
    torch.manual_seed(0)
    stages = [StageConfig(32, 1, 2), StageConfig(64, 1, 4), StageConfig(96, 2, 6)]
    model = AUNet(AUNetConfig(stages=stages, ffn_multiple_of=16))
    _assert_lingua_init(model)
    # The rule spelled out for the byte stage, the trunk and the FFN output (hidden^-0.5).
    std = {name: p.std().item() / 0.9866 for name, p in model.named_parameters()}
    assert abs(std["encoders.0.layers.0.attention.wq.weight"] - 32 ** -0.5) < 0.1 * 32 ** -0.5
    assert abs(std["trunk.layers.1.attention.wo.weight"] - 96 ** -0.5) < 0.1 * 96 ** -0.5
    hidden = model.trunk.layers[0].feed_forward.w2.in_features
    assert hidden != 96 and abs(std["trunk.layers.0.feed_forward.w2.weight"] - hidden ** -0.5) < 0.1 * hidden ** -0.5
    assert abs(std["pooling.1.proj.weight"] - 64 ** -0.5) < 0.1 * 64 ** -0.5  # fine -> coarse: in = 64
    assert abs(std["upsampling.1.per_offset"] - 96 ** -0.5) < 0.1 * 96 ** -0.5  # coarse -> fine: in = 96
    assert abs(std["tok_embeddings.weight"] - 32 ** -0.5) < 0.1 * 32 ** -0.5
    assert torch.equal(model.upsampling[0].no_context, torch.zeros(32))


def test_token_baseline_init_is_lingua_fan_in_rule():
    torch.manual_seed(0)
    _assert_lingua_init(TokenTransformer(TransformerConfig.tiny(vocab_size=300, dim=64)))


def test_the_former_normal_init_is_still_available():
    torch.manual_seed(0)
    model = AUNet(AUNetConfig.tiny(stages=2, init="normal", init_std=0.02))
    assert abs(model.encoders[0].layers[0].attention.wq.weight.std().item() - 0.02) < 0.004
    with pytest.raises(ConfigError, match="init"):
        AUNetConfig.tiny(stages=2, init="xavier")
    with pytest.raises(ConfigError, match="init"):
        TransformerConfig.tiny(init="xavier")


def test_optimizer_follows_the_papers_recipe():
    from aunet_lab.config import OptimConfig, TrainConfig
    from aunet_lab.training.module import LMModule

    o = OptimConfig()
    assert (o.min_lr_ratio, o.grad_clip, o.weight_decay) == (0.01, 0.2, 0.1)
    assert (o.betas, o.eps) == ([0.9, 0.95], 1e-8)
    module = LMModule(TrainConfig(), max_steps=10)
    optimizer = module.configure_optimizers()["optimizer"]
    # lingua decays every parameter alike, norm gains and embeddings included.
    assert all(group["weight_decay"] == 0.1 for group in optimizer.param_groups)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(module.parameters()))
