"""Fair comparisons: both arms score the same documents and the same bytes, on a training language
and on a script the BPE tokenizer never saw, for every seed; the logged bits per byte is reproduced
by this file's own scoring loop (it imports no evaluation or windowing code of the platform: only
the trained models, the split function and the raw tokenizer)."""

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from corpora import make_corpus

W_BYTES = 64


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """BPE and AU-Net-2 trained on English, two seeds each, tested on English and Russian."""
    from aunet_lab.config import load_config
    from aunet_lab.training.run import train

    root = tmp_path_factory.mktemp("fair")
    manifest, cache = make_corpus(root, ["en", "ru"], 50, (4, 12), (3, 9), {"val": 0.15, "test": 0.2, "seed": 2},
                                  "fair")
    out = {}
    for seed in (0, 1):
        for arch in ("bpe", "aunet"):
            cfg = {
                "model": {"arch": arch, "aunet": {"ffn_multiple_of": 16, "stages": [
                    {"dim": 32, "layers": 1, "heads": 2, "window": 32}, {"dim": 64, "layers": 1, "heads": 4}]},
                    "bpe": {"dim": 48, "layers": 2, "heads": 3, "ffn_multiple_of": 16}},
                "data": {"manifest": str(manifest), "cache": str(cache), "mixture": {"en": 1.0}, "budget": "6KB",
                         "window_bytes": W_BYTES, "batch_size": 4, "vocab_size": 300, "seed": seed,
                         "eval_languages": ["en", "ru"], "eval_bytes": {"val": "1KB", "test": "1500B"}},
                "optim": {"warmup_steps": 2},
                "trainer": {"max_steps": 6, "val_every": 6, "checkpoint_every": 6, "progress": False, "samples": 0,
                            "seed": seed},
                "tracking": {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "run_name": f"{arch}-s{seed}"},
                "output_dir": str(root / "runs"),
            }
            path = root / f"{arch}-s{seed}.yaml"
            path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
            out[(arch, seed)] = train(load_config(path))
    return root, cache, out


def _metrics(root: Path, run_id: str) -> dict:
    from mlflow.tracking import MlflowClient

    run = MlflowClient(f"sqlite:///{root / 'mlflow.db'}").get_run(run_id)
    return {**run.data.metrics, **{f"param:{k}": v for k, v in run.data.params.items()}}


def _texts(cache: Path, lang: str, split: str) -> dict[str, str]:
    path = cache / "corpora" / "fair" / lang / f"{split}.jsonl"
    return {d["id"]: d["text"] for d in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def _units(run_dir: Path, text: str, arch: str):
    """(ids with BOS first and EOS last, bytes per id, levels or None): this file's own encoding."""
    if arch == "aunet":
        from aunet_lab.data.splitting import byte_levels, get_split_function

        raw = text.encode()
        top = get_split_function("word").max_level
        levels = [top] + byte_levels(raw, "word").tolist() + [top]
        return [256] + list(raw) + [257], [0] + [1] * len(raw) + [0], levels
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(run_dir / "tokenizer.json"))
    tok.encode_special_tokens = True
    bos, eos = tok.token_to_id("<bos>"), tok.token_to_id("<eos>")
    ids = [bos] + tok.encode(text, add_special_tokens=False).ids + [eos]
    nbytes = [0 if i in (bos, eos) else len(tok.id_to_token(i)) for i in ids]  # ByteLevel: one symbol a byte
    return ids, nbytes, None


def _own_bpb(run_dir: Path, texts: list[str], arch: str, window: int) -> tuple[float, int, float]:
    """Bits per byte, bytes scored and mean history in bytes: every target once, a document in one
    piece if it fits the window, else windows half a window apart whose new targets are scored."""
    from aunet_lab.training.checkpoint import load_trained

    _, model, _ = load_trained(run_dir / "final.ckpt")
    nll, scored, history = 0.0, 0, 0.0
    with torch.no_grad():
        for text in texts:
            ids, nbytes, levels = _units(run_dir, text, arch)
            n = len(ids) - 1
            done, start = 0, 0
            while done < n:
                s = 0 if n <= window else min(start, n - window)
                length = min(n, window)
                x = torch.tensor([ids[s:s + length]])
                logits = model(x, torch.tensor([levels[s:s + length]])) if levels else model(x)
                logp = torch.log_softmax(logits[0].double(), -1)
                for j in range(length):
                    t = s + j  # predicts ids[t + 1]
                    if t >= done and nbytes[t + 1]:
                        nll -= float(logp[j, ids[t + 1]])
                        scored += nbytes[t + 1]
                        history += nbytes[t + 1] * sum(nbytes[s:t + 1])
                done, start = s + length, start + window // 2
    return nll / (math.log(2) * scored), scored, history / scored


def test_both_arms_score_the_same_documents_and_bytes_for_every_seed(runs):
    root, cache, results = runs
    docs = {key: json.loads((r.run_dir / "eval_documents.json").read_text()) for key, r in results.items()}
    metrics = {key: _metrics(root, r.run_id) for key, r in results.items()}
    for lang in ("en", "ru"):  # en: the training language; ru: a script the tokenizer never saw
        texts = _texts(cache, lang, "test")
        sets = {key: d["test"][lang] for key, d in docs.items()}
        first = next(iter(sets.values()))
        assert all(ids == first for ids in sets.values()), sets
        assert 0 < len(first) < len(texts)  # the cap took some documents, not all
        expected = sum(len(texts[i].encode()) for i in first)
        assert expected >= 1500 and expected - len(texts[first[-1]].encode()) < 1500  # whole documents to the cap
        for key, m in metrics.items():
            assert m[f"test/bytes/{lang}"] == expected, key
    # BPE reads fewer positions per byte: its history in bytes is its own (a property of BPE, logged).
    assert metrics[("bpe", 0)]["test/context_bytes/ru"] != metrics[("aunet", 0)]["test/context_bytes/ru"]


@pytest.mark.parametrize("arch", ["bpe", "aunet"])
def test_an_independent_loop_reproduces_the_logged_bits_per_byte(runs, arch):
    root, cache, results = runs
    result = results[(arch, 1)]
    m = _metrics(root, result.run_id)
    window = int(m["param:data.window"])
    # AU-Net's context is the window in bytes; BPE's the tokens that cover as many training bytes.
    expected = W_BYTES if arch == "aunet" else max(8, round(W_BYTES / m["data/bytes_per_token"]))
    assert window == expected
    chosen = json.loads((result.run_dir / "eval_documents.json").read_text())["test"]
    for lang in ("en", "ru"):
        texts = _texts(cache, lang, "test")
        bpb, scored, history = _own_bpb(result.run_dir, [texts[i] for i in chosen[lang]], arch, window)
        assert scored == m[f"test/bytes/{lang}"]
        assert abs(bpb - m[f"test/bpb/{lang}"]) < 1e-6, (lang, bpb, m[f"test/bpb/{lang}"])
        assert abs(history - m[f"test/context_bytes/{lang}"]) < 1e-6 * history
