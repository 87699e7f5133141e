"""BPE byte accounting and the DataModule, on a small prepared fixture corpus in four scripts."""

import pytest
import torch

from aunet_lab.data.bpe import train_bpe
from aunet_lab.data.datamodule import AUNetDataModule, DataConfig, DataConfigError, parse_bytes
from corpora import WORDS, make_corpus

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("dm"), list(WORDS), 80, name="dm-fixture")


def module(corpus, **overrides) -> AUNetDataModule:
    path, cache = corpus
    cfg = dict(manifest=str(path), mixture={"en": 0.5, "fr": 0.25, "zh-CN": 0.25}, budget="6KB", window_bytes=64,
               batch_size=3, vocab_size=300, cache=str(cache))
    cfg.update(overrides)
    dm = AUNetDataModule(DataConfig(**cfg))
    dm.setup()
    return dm


def stream_bytes(dm: AUNetDataModule, loader=None) -> bytes:
    """The bytes the batches train on, rebuilt from the targets (each byte is a target once)."""
    out = bytearray()
    for batch in loader if loader is not None else dm.train_dataloader():
        keep = batch["target_bytes"] > 0
        for row in range(batch["targets"].shape[0]):
            ids = batch["targets"][row][keep[row]].tolist()
            out += bytes(ids) if dm.config.arch == "aunet" else dm.tokenizer.decode_bytes(ids)
    return bytes(out)


def test_mixture_arithmetic_within_one_document(corpus):
    dm = module(corpus, budget="8KB")
    sel = dm.selection
    longest = {lang: max(len(t.encode()) for l, _, t in sel.docs if l == lang) for lang in sel.bytes_per_language}
    for lang, weight in dm.config.mixture.items():
        target = weight * 8000
        assert target <= sel.bytes_per_language[lang] < target + longest[lang], lang
    assert sum(sel.bytes_per_language.values()) == sum(len(t.encode()) for _, _, t in sel.docs)


def test_determinism_and_seeds(corpus):
    a, b, c = module(corpus), module(corpus), module(corpus, seed=1)
    assert stream_bytes(a) == stream_bytes(b)
    assert stream_bytes(a) != stream_bytes(c)


def test_both_arms_see_identical_byte_streams(corpus):
    aunet, bpe = module(corpus, arch="aunet"), module(corpus, arch="bpe")
    expected = b"".join(t.encode() for _, _, t in aunet.selection.docs)
    assert stream_bytes(aunet) == expected
    assert stream_bytes(bpe) == expected
    assert aunet.selection.docs == bpe.selection.docs


def test_bpe_byte_accounting_every_language_and_replaced_text(corpus):
    texts = [" ".join(w) for w in WORDS.values()]
    tok = train_bpe(texts * 5, vocab_size=300)
    for text in texts + ["bad \ufffd\ufffd replaced, 人人生而自由。", "tabs\tand\nnewlines  "]:
        ids = tok.encode(text)
        assert int(tok.token_bytes[ids].sum()) == len(text.encode()), text
        assert tok.decode_bytes(ids) == text.encode()
    assert int(tok.token_bytes[tok.bos_id]) == 0 and int(tok.token_bytes[tok.eos_id]) == 0


def test_tokenizer_is_trained_on_training_text_only_and_cached(corpus, monkeypatch):
    import aunet_lab.data.bpe as bpe

    seen = []
    original = bpe.train_bpe

    def spy(texts, *args, **kwargs):
        seen.extend(texts)
        return original(texts, *args, **kwargs)

    monkeypatch.setattr(bpe, "train_bpe", spy)
    dm = module(corpus, arch="bpe", seed=7)
    from aunet_lab.data.corpus import documents

    held_out = {d["text"] for lang in dm.config.mixture for split in ("val", "test")
                for d in documents(dm.manifest, lang, split, dm.cache)}
    assert seen and held_out and not (set(seen) & held_out)
    assert set(seen) == {t for _, _, t in dm.selection.docs}
    assert dm.tokenizer.path is not None and dm.tokenizer.path.is_file()
    assert module(corpus, arch="bpe", seed=7).tokenizer.path == dm.tokenizer.path


def test_resume_mid_epoch_continues_at_the_next_window(corpus):
    full = list(module(corpus).train_dataloader())
    first = module(corpus)
    before = []
    for i, batch in enumerate(first.train_dataloader()):
        before.append(batch)
        first.advance(batch)
        if i == 4:
            break
    state = first.state_dict()
    resumed = module(corpus)
    resumed.load_state_dict(state)
    after = list(resumed.train_dataloader())
    joined = before + after
    assert len(joined) == len(full)
    for x, y in zip(joined, full):
        assert torch.equal(x["input_ids"], y["input_ids"]) and torch.equal(x["levels"], y["levels"])
    with pytest.raises(DataConfigError, match="different document stream"):
        module(corpus, seed=5).load_state_dict(state)


def test_epochs_recorded_when_the_budget_exceeds_the_data(corpus):
    dm = module(corpus, mixture={"fr": 1.0}, budget="60KB")
    have = dm.selection.available_per_language["fr"]
    assert dm.stats()["data/epochs"] == pytest.approx(dm.selection.bytes_per_language["fr"] / have)
    assert dm.stats()["data/epochs"] > 2
    with pytest.raises(DataConfigError, match=r"data.mixture.fr: .* over data.max_epochs=2"):
        module(corpus, mixture={"fr": 1.0}, budget="60KB", max_epochs=2)


@pytest.mark.parametrize("overrides, fragment", [
    ({"mixture": {"en": 0.5, "xx": 0.5}}, "data.mixture.xx"),
    ({"mixture": {"en": 0.5, "fr": 0.4}}, "data.mixture: weights sum to 0.9"),
    ({"mixture": {}}, "data.mixture: expected a non-empty"),
    ({"mixture": {"en": 1.5, "fr": -0.5}}, "data.mixture.fr: expected a positive weight"),
    ({"budget": "lots"}, "data.budget"),
    ({"arch": "rnn"}, "data.arch"),
])
def test_bad_data_configs_name_the_key(corpus, overrides, fragment):
    with pytest.raises(DataConfigError) as info:
        module(corpus, **overrides)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_budget_units():
    assert parse_bytes("250KB") == 250_000 and parse_bytes("4MB") == 4_000_000
    assert parse_bytes("1MiB") == 2**20 and parse_bytes(1234) == 1234 and parse_bytes("1.5GB") == 1_500_000_000


@pytest.mark.parametrize("arch", ["aunet", "bpe"])
def test_eval_loaders_per_language_count_each_byte_once(corpus, arch):
    dm = module(corpus, arch=arch)
    languages = dm.eval_language_order("val")
    assert languages == sorted(dm.config.mixture)
    for lang, loader in zip(languages, dm.val_dataloader()):
        docs = dm.eval_documents(lang, "val")
        assert dm.eval_sets["val"][lang].doc_ids == [d["id"] for d in docs]
        counted = sum(int(b["target_bytes"].sum()) for b in loader)
        assert counted == sum(len(d["text"].encode()) for d in docs)
        # Every byte of the scored documents is a target exactly once, in document order.
        assert stream_bytes(dm, loader) == b"".join(d["text"].encode() for d in docs)


def test_levels_are_per_document_and_windows_carry_them(corpus):
    from aunet_lab.data.splitting import level_mask

    dm = module(corpus)
    first_text = dm.selection.docs[0][2]
    item = dm.train_set[0]
    expected = level_mask(first_text.encode(), "word")[: dm.window]
    assert torch.equal(item["levels"][: expected.numel()], expected)


def test_workers_give_the_same_batches(corpus):
    plain = list(module(corpus).train_dataloader())
    dm = module(corpus, num_workers=2)
    with_workers = list(dm.train_dataloader())
    assert len(plain) == len(with_workers)
    for x, y in zip(plain, with_workers):
        assert torch.equal(x["input_ids"], y["input_ids"]) and torch.equal(x["levels"], y["levels"])
    for lang, loader in zip(dm.eval_language_order("val"), dm.val_dataloader()):
        assert all(set(b["lang"]) == {lang} for b in loader)


def test_measured_units_feed_compute_matching(corpus):
    from aunet_lab.data.bpe import measure_units
    from aunet_lab.models.sizing import match_compute

    dm = module(corpus, arch="bpe")
    texts = {}
    for lang, _, text in dm.selection.docs:
        texts.setdefault(lang, []).append(text)
    measured = measure_units(texts, "word", 3, dm.tokenizer)
    assert set(measured) == set(texts) | {"all"}
    assert measured["zh-CN"]["bytes_per_unit"][1] > measured["en"]["bytes_per_unit"][1]  # no spaces in Chinese
    matched = match_compute(1e12, 10.0, stages=(2,), vocab_size=300, seq_len_bytes=256, head_dim=16,
                            width_multiple=16, byte_layers=1, byte_window=64, ffn_multiple_of=16, measured=measured)
    assert matched.bytes_per_token == measured["all"]["bytes_per_token"]


@pytest.mark.parametrize("n, batch, world, start", [(37, 8, 2, 0), (40, 8, 4, 16), (40, 6, 2, 0), (41, 4, 1, 8)])
def test_processes_split_the_stream_without_overlap(n, batch, world, start):
    from aunet_lab.data.datamodule import FromIndexSampler, StridedSampler

    single = list(FromIndexSampler(n, start, 0, 1, batch))
    shares = [list(FromIndexSampler(n, start, r, world, batch)) for r in range(world)]
    flat = [i for share in shares for i in share]
    assert len(flat) == len(set(flat))  # no window read twice
    full = (n // batch) * batch if world > 1 else n
    assert sorted(flat) == [i for i in single if i < full]
    share = batch // world
    for r, indices in enumerate(shares):  # rank r holds the r-th slice of every global batch
        assert all((i % batch) // share == r for i in indices)
        assert len({len(s) for s in shares}) == 1
    per_rank = [list(StridedSampler(n, r, world)) for r in range(world)]
    assert len({len(p) for p in per_rank}) == 1  # the same number of windows (a sharded forward is collective)
    evaluated = sorted(i for p in per_rank for i in p if i != n)  # n: a blank row that scores nothing
    assert evaluated == list(range(n))
    with pytest.raises(DataConfigError, match="data.batch_size"):
        FromIndexSampler(n, 0, 0, 3, 8)
