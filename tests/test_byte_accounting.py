"""Byte accounting that cannot wrap or drift: tokens longer than 127 bytes, literal special-token
text inside documents, and invalid UTF-8 or lone surrogates normalised once at prepare, so both
arms count exactly the UTF-8 bytes of the documents."""

import json

import pytest
import yaml


def test_a_token_longer_than_127_bytes_counts_its_bytes(tmp_path):
    from aunet_lab.data.bpe import train_bpe
    from aunet_lab.data.datamodule import pack_tokens

    long_word = "Rechtsschutzversicherungsgesellschaften" * 5  # 195 bytes, no pre-tokenizer split
    texts = [f"{long_word} und {long_word}." for _ in range(40)] + ["kurz und gut, sagt er."] * 5
    tok = train_bpe(texts, 600, tmp_path)
    assert int(tok.token_bytes.max()) > 127  # a real trained token over the old int8 limit
    packed = pack_tokens(texts, tok)
    assert int(packed.target_bytes.sum()) == sum(len(t.encode()) for t in texts)
    # The same holds for a tokenizer loaded back from disk (the trial's cached one).
    again = train_bpe(texts, 600, tmp_path)
    assert int(pack_tokens(texts, again).target_bytes.sum()) == sum(len(t.encode()) for t in texts)


@pytest.mark.parametrize("text", ["see the tag <eos> here", "<bos>", "a <bos><eos> b"])
def test_literal_special_token_text_is_text(tmp_path, text):
    from aunet_lab.data.bpe import train_bpe
    from aunet_lab.data.datamodule import pack_tokens

    tok = train_bpe(["plain words here and there"] * 20, 300, tmp_path)
    packed = pack_tokens([text], tok)
    assert int(packed.target_bytes.sum()) == len(text.encode())
    inner = packed.ids[1:-1].tolist()
    assert tok.bos_id not in inner and tok.eos_id not in inner  # only the document's own BOS/EOS
    assert tok.decode_bytes(inner) == text.encode()


def test_invalid_utf8_and_lone_surrogates_are_replaced_and_counted_at_prepare(tmp_path):
    from aunet_lab.config import load_config
    from aunet_lab.data.corpus import documents, prepare, prepared_stats
    from aunet_lab.data.datamodule import AUNetDataModule
    from aunet_lab.data.manifest import load_manifest

    src = tmp_path / "src"
    src.mkdir()
    good = "the cat sat on the mat and it rained over the hills. " * 4
    # Raw text files: an invalid byte, a truncated sequence, an encoded surrogate (ED A0 80).
    for i in range(12):
        (src / f"doc{i:02d}.txt").write_bytes(good.encode() + b"caf\xc3 \xff ok \xed\xa0\x80 end " + str(i).encode())
    # JSONL: a lone surrogate escape (no UTF-8 form) next to a proper pair (an emoji).
    with (src / "extra.jsonl").open("w") as fh:
        for i in range(12):
            fh.write(json.dumps({"id": f"j{i}", "text": good + "lone \ud800 pair \U0001F600 " + str(i)}) + "\n")
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump({
        "name": "bad", "licence": "CC0", "attribution": "tests", "languages": ["en"],
        "split": {"val": 0.2, "test": 0.2, "seed": 0},
        "sources": [{"kind": "local", "name": "txt", "reader": "text", "paths": str(src / "*.txt")},
                    {"kind": "local", "name": "jsonl", "reader": "jsonl", "paths": str(src / "*.jsonl"),
                     "id_field": "id"}]}))
    cache = tmp_path / "cache"
    prepare(load_manifest(manifest), cache)
    stats = prepared_stats(load_manifest(manifest), cache)["en"]
    # txt: 1 (C3 cut short) + 1 (FF) + 3 (ED A0 80) per file; jsonl: one lone surrogate per line
    assert stats.replaced_bytes == 12 * 5 + 12
    texts = [d["text"] for split in ("train", "val", "test") for d in documents(load_manifest(manifest), "en", split, cache)]
    assert len(texts) == 24
    for text in texts:
        text.encode("utf-8")  # strict: every prepared document is valid UTF-8
        assert "\ufffd" in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)
    assert any("\U0001F600" in t for t in texts)  # a proper pair is kept
    # Both arms score exactly the UTF-8 bytes of the same documents.
    counted = {}
    for arch in ("aunet", "bpe"):
        config = load_config(None, overrides=[f"data.manifest={manifest}", f"data.cache={cache}", "data.budget=1KB",
                                              "data.window_bytes=64", "data.vocab_size=300", f"data.arch={arch}"])
        dm = AUNetDataModule(config.data)
        dm.setup()
        docs = dm.eval_documents("en", "test")
        counted[arch] = dm.eval_sets["test"]["en"].scored_bytes
        assert counted[arch] == sum(len(d["text"].encode()) for d in docs)
    assert counted["aunet"] == counted["bpe"]
