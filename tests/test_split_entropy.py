"""The ``entropy`` split function: a tiny boundary model trained on the embedded UDHR, then the
properties every split function must have (stable byte by byte, nested, never inside a character,
batched equal to per document, generation equal to the full pass) and the CLI around it."""

import contextlib
import io

import pytest
import torch

from aunet_lab.data.samples import udhr_articles
from aunet_lab.data.splitting import byte_levels, byte_levels_batch, check_stability, get_split_function
from aunet_lab.data.splitting.entropy import ByteModelConfig, EntropySplit

MIXED = ("Article 1. All human beings are born free — 人人生而自由，在尊严和权利上一律平等。 Все люди "
         "рождаются свободными. すべての人間は、生まれながらにして自由である。 e\u0301 ok").encode()
BROKEN = MIXED[:37] + b"\xff\xe4\xb8" + MIXED[37:80] + b"\xf0\x9f\x98" + MIXED[80:]


@pytest.fixture(scope="module")
def boundary_model(tmp_path_factory):
    from aunet_lab.training.entropy_boundaries import EntropyTrainConfig, train_entropy_model

    texts = {lang: udhr_articles(lang)[:8] for lang in ("en", "de", "ru", "zh", "ja")}
    config = EntropyTrainConfig(ByteModelConfig(dim=32, layers=1, heads=2, block=16), steps=60, batch_size=16,
                                targets=(4.0, 12.0))
    path = tmp_path_factory.mktemp("entropy") / "boundaries.pt"
    result = train_entropy_model(texts, config, path, {"languages": sorted(texts)})
    return path, result


def run_cli(*argv):
    from aunet_lab.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_trained_budgets_hit_their_targets_on_the_training_text(boundary_model):
    path, result = boundary_model
    split = get_split_function(f"entropy:{path}")
    assert split.max_level == 2 and 0 < result.budgets[0] < result.budgets[1]
    assert split.sha256 == result.sha256 and len(split.sha256) == 64
    texts = [t for lang in ("en", "de", "ru", "zh", "ja") for t in udhr_articles(lang)[:8]]
    levels, _ = byte_levels_batch(texts, split)
    # chosen on exactly this text: the mean bytes per unit is about the target
    assert len(levels) / int((levels >= 1).sum()) == pytest.approx(4.0, rel=0.1)
    assert len(levels) / int((levels >= 2).sum()) == pytest.approx(12.0, rel=0.1)


def test_split_check_passes_from_the_cli(boundary_model):
    path, _ = boundary_model
    code, out, err = run_cli("split", "check", f"entropy:{path}", "--generated", "3", "--max-bytes", "120")
    assert code == 0 and "is stable" in out, (out, err)


def test_stable_at_byte_granularity_across_scripts_and_broken_utf8(boundary_model):
    path, _ = boundary_model
    report = check_stability(f"entropy:{path}", [("mixed", MIXED), ("broken", BROKEN)], max_bytes=len(BROKEN))
    assert report.stable and report.prefixes == len(MIXED) - 1 + len(BROKEN) - 1, report.summary()


def test_levels_nest_by_budget(boundary_model):
    path, result = boundary_model
    low, high = result.budgets
    levels = byte_levels(BROKEN, EntropySplit.load(path))
    # stage 3 closes a unit where its own, larger budget runs out, whatever stage 2 did; each of its
    # boundaries is a stage-2 boundary too (one level per byte), and stage 2 restarts there
    assert torch.equal(levels >= 2, byte_levels(BROKEN, EntropySplit.load(path, [high])) >= 1)
    alone = byte_levels(BROKEN, EntropySplit.load(path, [low])) >= 1
    assert 0 < int((levels >= 2).sum()) < int((levels >= 1).sum())
    assert not torch.equal(levels >= 1, alone) or not (levels >= 2).any()
    with pytest.raises(ValueError, match="increasing"):
        EntropySplit.load(path, [high, low])


def test_never_a_boundary_inside_a_character_or_on_a_bad_byte(boundary_model):
    path, _ = boundary_model
    everywhere = EntropySplit.load(path, [1e-12])  # every candidate is a boundary: the candidates show
    levels = byte_levels(BROKEN, everywhere)
    text = BROKEN.decode("utf-8", "surrogateescape")
    ends, i = set(), 0
    for ch in text:
        size = 1 if 0xDC80 <= ord(ch) <= 0xDCFF else len(ch.encode())
        if not 0xDC80 <= ord(ch) <= 0xDCFF:
            ends.add(i + size - 1)
        i += size
    assert set(torch.nonzero(levels).flatten().tolist()) == ends
    # a document that stops half-way through a character: its last byte is no boundary yet
    cut = MIXED.index("人".encode()) + 2
    assert int(byte_levels(MIXED[:cut], everywhere)[-1]) == 0
    assert int(byte_levels(MIXED[:cut + 1], everywhere)[-1]) == 1


def test_batched_equals_per_document(boundary_model):
    path, _ = boundary_model
    split = get_split_function(f"entropy:{path}")
    docs = [MIXED, BROKEN, b"", "短".encode(), udhr_articles("ru")[0].encode(), udhr_articles("en")[2].encode()]
    batched, offsets = byte_levels_batch(docs, split)
    for doc, a, b in zip(docs, offsets, offsets[1:]):
        assert torch.equal(batched[a:b], byte_levels(doc, split))


def test_the_level_stream_gives_each_new_byte_its_full_pass_level(boundary_model):
    path, _ = boundary_model
    split = get_split_function(f"entropy:{path}")
    full = byte_levels(BROKEN, split)
    stream = split.level_stream()
    stream.feed(BROKEN[:5])
    assert [stream.push(b) for b in BROKEN[5:]] == full[5:].tolist()


def test_cached_generation_matches_the_full_pass_with_an_entropy_split(boundary_model):
    from aunet_lab.models import AUNet, AUNetConfig
    from aunet_lab.models.generate import Generator

    path, _ = boundary_model
    torch.manual_seed(0)
    model = AUNet(AUNetConfig.tiny(stages=3, split=f"entropy:{path}")).eval()
    ids = torch.tensor([[256] + list(MIXED[:90])])
    with torch.no_grad():
        full = model(ids)
    gen = Generator(model)
    stepped = [gen.prefill(ids[:, :7])] + [gen.step(ids[:, t]) for t in range(7, ids.shape[1] - 1)]
    stepped = torch.stack(stepped, 1)
    assert (stepped - full[:, 6:-1]).abs().max() < 1e-4
    levels = model.compute_levels(ids[:, :-1])
    assert gen.stage_calls == [int((levels >= i).sum()) for i in range(3)]


def test_train_entropy_cli_on_a_prepared_corpus_and_its_refusals(tmp_path):
    from corpora import make_corpus

    manifest, cache = make_corpus(tmp_path, ["en", "fr"], 20, split={"val": 0.1, "test": 0.1, "seed": 0}, name="ent")
    out = tmp_path / "b" / "entropy.pt"
    args = ["split", "train-entropy", manifest, "--languages", "en,fr", "--out", out, "--cache", cache,
            "--steps", "25", "--dim", "32", "--layers", "1", "--heads", "2", "--block", "8", "--targets", "3,9"]
    code, printed, err = run_cli(*args)
    assert code == 0 and out.is_file(), err
    assert "budgets" in printed and "en: bytes per unit stage 2" in printed and f"entropy:{out}" in printed
    assert get_split_function(f"entropy:{out}").max_level == 2
    before = out.read_bytes()
    for argv, expect in [
        (args, "exists (--force to replace it)"),
        ([*args[:-2], "--targets", "9,3", "--force"], "targets: expected increasing bytes per unit"),
        ([*args[:3], "--languages", "xx", *args[5:], "--force"], "--languages xx: xx not in"),
        ([*args[:6], tmp_path, *args[7:]], "a folder"),
    ]:
        code, _, err = run_cli(*argv)
        assert code == 2 and len(err.strip().splitlines()) == 1 and expect in err, (argv, err)
    assert out.read_bytes() == before  # nothing was written over
    code, _, err = run_cli("split", "show", f"entropy:{tmp_path / 'missing.pt'}", "hello")
    assert code == 2 and "no such file" in err
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    code, _, err = run_cli("split", "show", f"entropy:{tmp_path / 'junk.pt'}", "hello")
    assert code == 2 and "not an entropy boundary model" in err
