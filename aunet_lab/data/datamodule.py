"""The DataModule: the same bytes, in the same order, for AU-Net and the BPE baseline.

Selection (independent of the architecture): for every language of the mixture, its training
documents in a seeded order, taken whole until the language's share of the byte budget is reached
(so each language is within one document of its share); a budget beyond the data repeats it in
epochs (reshuffled each epoch, refused past ``max_epochs``). The selected documents of all
languages are then interleaved in one seeded order: the *stream*.

Packing: AU-Net reads ``BOS + bytes + EOS`` per document with levels computed per document (so a
byte's level never depends on where its window starts); the baseline reads ``<bos> + tokens +
<eos>``. Each stream is cut into consecutive windows of ``window`` inputs (plus one target);
the last window is padded. Targets carry the number of UTF-8 bytes they cover (int32, 0 for special
tokens), which is what bits per byte divides by. Windows are consumed in stream order; the state
is the index of the next window, so a resumed run continues at the exact next sample.

Compute has one source: the packed training stream is measured once (bytes per unit of every
AU-Net stage, bytes per BPE token: :func:`measure_stream`), the BPE context in tokens follows from
it (:func:`window_tokens`), and the planner, training and reports all use those numbers.

Evaluation is by bytes over whole documents (``aunet_lab.data.evalset``): ``eval_bytes`` caps each
language's validation and test text, the same documents for every arm and seed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from aunet_lab.data.corpus import default_cache, documents, prepared_stats
from aunet_lab.data.dataconfig import DataConfig, DataConfigError, parse_bytes  # noqa: F401 (re-exported)
from aunet_lab.data.evalset import EVAL_SPLITS, EvalWindows, eval_order_key, seeded_order, split_documents, take_until
from aunet_lab.data.manifest import load_manifest

IGNORE = -100
@dataclass
class Selection:
    """The training stream: documents (language, id, text) in order, and how often data repeats."""

    docs: list[tuple[str, str, str]]
    bytes_per_language: dict[str, int]
    available_per_language: dict[str, int]
    epochs_per_language: dict[str, float]

    @property
    def epochs(self) -> float:
        return max(self.epochs_per_language.values())

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for lang, ident, text in self.docs:
            h.update(f"{lang}\x00{ident}\x00".encode())
            h.update(hashlib.sha256(text.encode()).digest())
        return h.hexdigest()[:16]


def select_documents(train_docs: dict[str, list[dict]], mixture: dict[str, float], budget: int, seed: int,
                     max_epochs: float) -> Selection:
    """Whole documents per language up to its share of the budget; then one seeded interleaving."""
    stream, taken, available, epochs = [], {}, {}, {}
    for lang in sorted(mixture):
        docs = train_docs.get(lang) or []
        have = sum(len(d["text"].encode()) for d in docs)
        if have == 0:
            raise DataConfigError(f"data.mixture.{lang}: no training text for {lang!r} in the prepared corpus")
        target = round(mixture[lang] * budget)
        if target > max_epochs * have:
            raise DataConfigError(
                f"data.mixture.{lang}: {target:,} bytes would repeat {lang}'s {have:,} training bytes "
                f"{target / have:.1f} times, over data.max_epochs={max_epochs:g}"
            )
        got, epoch = 0, 0
        while got < target:
            order = list(docs)
            random.Random(f"{seed}:{lang}:{epoch}").shuffle(order)
            for d in order:
                if got >= target:
                    break
                stream.append((lang, d["id"], d["text"]))
                got += len(d["text"].encode())
            epoch += 1
        taken[lang], available[lang], epochs[lang] = got, have, got / have
    random.Random(f"{seed}:interleave").shuffle(stream)
    return Selection(stream, taken, available, epochs)


@dataclass
class PackedStream:
    """A flat stream of ids with, per position, the bytes the id covers and (AU-Net) its level."""

    ids: torch.Tensor  # int32
    target_bytes: torch.Tensor  # int32: bytes covered by the id at this position (0 for specials)
    levels: torch.Tensor | None  # int8, AU-Net only
    special: torch.Tensor  # bool: BOS/EOS positions
    bos_id: int


def pack_bytes(texts: list[str], split: str) -> PackedStream:
    """``BOS + bytes + EOS`` per document, with levels computed per document in one batched pass."""
    from aunet_lab.data.splitting import byte_levels_batch, get_split_function
    from aunet_lab.data.byte_ids import BOS_ID, EOS_ID

    split_fn = get_split_function(split)
    raws = [t.encode() for t in texts]
    levels, offsets = byte_levels_batch(raws, split_fn)
    n_docs = len(raws)
    total = offsets[-1] + 2 * n_docs
    # Document d's bytes land after its BOS: shifted by 2d + 1.
    byte_offsets = torch.tensor(offsets[:-1], dtype=torch.long)
    doc_of_byte = torch.repeat_interleave(torch.arange(n_docs), torch.diff(torch.tensor(offsets)))
    byte_pos = torch.arange(offsets[-1]) + 2 * doc_of_byte + 1
    bos_pos = byte_offsets + 2 * torch.arange(n_docs)
    eos_pos = torch.tensor(offsets[1:], dtype=torch.long) + 2 * torch.arange(n_docs) + 1
    ids = torch.empty(total, dtype=torch.int32)
    data = torch.frombuffer(bytearray(b"".join(raws)), dtype=torch.uint8) if offsets[-1] else torch.zeros(0)
    ids[byte_pos] = data.to(torch.int32)
    ids[bos_pos], ids[eos_pos] = BOS_ID, EOS_ID
    out_levels = torch.empty(total, dtype=torch.int8)
    out_levels[byte_pos] = levels.to(torch.int8)
    out_levels[bos_pos] = out_levels[eos_pos] = split_fn.max_level
    nbytes = torch.zeros(total, dtype=torch.int32)
    nbytes[byte_pos] = 1
    special = torch.zeros(total, dtype=torch.bool)
    special[bos_pos] = special[eos_pos] = True
    return PackedStream(ids, nbytes, out_levels, special, BOS_ID)


def pack_tokens(texts: list[str], tokenizer) -> PackedStream:
    """``<bos> + tokens + <eos>`` per document."""
    bos, eos = tokenizer.bos_id, tokenizer.eos_id
    flat = []
    for encoded in tokenizer.encode_batch(texts):
        flat.append(bos)
        flat.extend(encoded)
        flat.append(eos)
    ids = torch.tensor(flat, dtype=torch.int32)
    nbytes = tokenizer.token_bytes[ids.long()].to(torch.int32)
    special = (ids == bos) | (ids == eos)
    return PackedStream(ids, nbytes, None, special, bos)


def measure_stream(stream: PackedStream) -> dict:
    """The compute ratios of a packed training stream: UTF-8 bytes, and bytes per unit of every
    AU-Net stage (1.0 for the byte stage; a unit is a byte at that level or deeper) or bytes per
    BPE token (special tokens left out of both). Planner and training both call this."""
    counted = ~stream.special
    n_bytes = int(stream.target_bytes[counted].sum())
    out = {"bytes": n_bytes}
    if stream.levels is None:
        out["bytes_per_token"] = n_bytes / max(int(counted.sum()), 1)
        return out
    levels = stream.levels[counted]
    top = int(stream.levels.max()) if stream.levels.numel() else 0
    out["bytes_per_unit"] = [1.0] + [n_bytes / max(int((levels >= k).sum()), 1) for k in range(1, top + 1)]
    return out


def window_tokens(window_bytes: int, bytes_per_token: float) -> int:
    """The BPE context matched in bytes: as many tokens as cover ``window_bytes`` of training text."""
    return max(8, round(window_bytes / bytes_per_token))


class WindowDataset(Dataset):
    """Consecutive windows of ``window`` inputs (+1 target) over a packed stream; the last is padded.

    The windows are laid out once as [n, window] views (ids int32, levels and byte counts int8), so
    fetching one is a few slices."""

    def __init__(self, stream: PackedStream, window: int, language: str | None = None):
        self.stream = stream
        self.window = window
        self.language = language
        total_in = stream.ids.numel()
        self.n = max(1, -(-(total_in - 1) // window))
        length = self.n * window + 1
        pad = length - total_in
        ids = torch.nn.functional.pad(stream.ids, (0, pad))
        valid = torch.arange(length) < total_in
        self.inputs = ids[:-1].view(self.n, window)
        targets = ids[1:].clone()
        targets[(ids[1:] == stream.bos_id) | ~valid[1:]] = IGNORE  # the next document's start is not predictable
        self.targets = targets.view(self.n, window)
        counted = stream.target_bytes * ~stream.special
        self.target_bytes = torch.nn.functional.pad(counted, (0, pad))[1:].view(self.n, window)
        self.levels = None
        if stream.levels is not None:
            self.levels = torch.nn.functional.pad(stream.levels, (0, pad))[:-1].view(self.n, window)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        item = {"input_ids": self.inputs[i].long(), "targets": self.targets[i].long(),
                "target_bytes": self.target_bytes[i].long(), "index": torch.tensor(i)}
        if self.language is not None:
            item["lang"] = self.language
        if self.levels is not None:
            item["levels"] = self.levels[i].long()
        return item


class FromIndexSampler(Sampler):
    """The stream order, one process's share of it. Global batch g holds windows
    ``[g * batch, (g + 1) * batch)``; process ``rank`` of ``world`` takes its contiguous slice of
    ``batch // world`` windows, so the processes never overlap and together read exactly what one
    process would. With several processes a last, partial global batch is left out (every process
    needs the same number of batches). The first pass starts at ``start`` (a resumed run's next
    window); later passes (a training longer than the stream) start at 0."""

    def __init__(self, n: int, start: int = 0, rank: int = 0, world: int = 1, batch: int = 1):
        if batch % world:
            raise DataConfigError(f"data.batch_size: {batch} windows do not split evenly over {world} processes")
        self.n, self.rank, self.world, self.batch = n, rank, world, batch
        self.start = start if 0 <= start < n else 0

    def _indices(self, start: int):
        share = self.batch // self.world
        end = self.n if self.world == 1 else (self.n // self.batch) * self.batch
        for first in range(start - start % self.batch, end, self.batch):
            lo = max(first + self.rank * share, start)
            yield from range(lo, min(first + (self.rank + 1) * share, end))

    def __iter__(self):
        start, self.start = self.start, 0
        return iter(self._indices(start))

    def __len__(self) -> int:
        # The whole pass, even when resuming inside it: Lightning restores how many batches of the
        # epoch were done and counts the remaining ones against this length.
        return sum(1 for _ in self._indices(0))


class StridedSampler(Sampler):
    """Evaluation: process ``rank`` takes windows ``rank, rank + world, ...``, every window exactly
    once over all processes. Each process gets the same number of windows (every forward pass of a
    sharded model is a collective): the short ones are topped up with index ``n``, a row that
    scores nothing (:class:`EvalWindows` returns it blank)."""

    def __init__(self, n: int, rank: int = 0, world: int = 1):
        self.n, self.rank, self.world = n, rank, world

    def __iter__(self):
        own = list(range(self.rank, self.n, self.world))
        return iter(own + [self.n] * (len(self) - len(own)))

    def __len__(self) -> int:
        return -(-self.n // self.world)


def _lightning_base():
    try:
        import lightning.pytorch as pl

        return pl.LightningDataModule
    except ImportError:  # the data layer also works without Lightning
        return object


class AUNetDataModule(_lightning_base()):
    """Train stream + per-language validation/test loaders for one architecture (``config.arch``)."""

    def __init__(self, config: DataConfig, cache: Path | None = None):
        super().__init__()
        config.validate()
        self.config = config
        self.cache = Path(cache or config.cache or default_cache())
        self.manifest = load_manifest(config.manifest)
        self.budget = parse_bytes(config.budget, "data.budget")
        languages = set(self.manifest.languages)
        for tag in list(config.mixture) + list(config.eval_languages or []):
            if tag not in languages:
                raise DataConfigError(f"data.mixture.{tag}: {tag!r} is not a language of {self.manifest.path} "
                                      f"(has: {', '.join(self.manifest.languages)})")
        self.eval_languages = list(config.eval_languages or sorted(config.mixture))
        self.selection: Selection | None = None
        self.tokenizer = None
        self.clock = None  # a PhaseClock: the tokenizer's training time is booked apart
        self.train_set: WindowDataset | None = None
        self.eval_sets: dict[str, dict[str, EvalWindows]] = {}
        self.eval_docs: dict[str, dict[str, list[str]]] = {}
        self.measured: dict = {}
        self.eval_splits = EVAL_SPLITS  # evaluation alone builds only what it scores
        self.next_window = 0

    # ---------------------------------------------------------------- building
    def _docs(self, lang: str, split: str) -> list[dict]:
        prepared = prepared_stats(self.manifest, self.cache)
        if lang not in prepared:
            raise DataConfigError(f"data.mixture.{lang}: {lang!r} is not prepared under {self.cache} "
                                  f"(run: aunet-lab data prepare {self.manifest.path} --languages {lang})")
        return list(documents(self.manifest, lang, split, self.cache))

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.build_train()
        self._build_eval_sets()

    def build_train(self) -> dict:
        """The training selection, its tokenizer (BPE) and packed stream, and the compute ratios
        measured on it (``self.measured``); the planner calls this too, so plan and run agree."""
        if self.train_set is not None:
            return self.measured
        cfg = self.config
        train_docs = {lang: self._docs(lang, "train") for lang in cfg.mixture}
        self.selection = select_documents(train_docs, cfg.mixture, self.budget, cfg.seed, cfg.max_epochs)
        texts = [text for _, _, text in self.selection.docs]
        if cfg.arch == "bpe":
            from aunet_lab.data.bpe import train_bpe

            # The tokenizer sees the run's own training text only (each selected document once).
            unique = sorted({(lang, ident): text for lang, ident, text in self.selection.docs}.items())
            corpus = [text for _, text in unique]
            if self.tokenizer is None:  # evaluation and warm starts hand in the checkpoint's own tokenizer
                with self.clock.phase("tokenizer") if self.clock is not None else contextlib.nullcontext():
                    self.tokenizer = train_bpe(corpus, cfg.vocab_size, self.cache / "tokenizers")
            stream = pack_tokens(texts, self.tokenizer)
        else:
            stream = pack_bytes(texts, cfg.split)
        self.measured = measure_stream(stream)
        self.train_set = WindowDataset(stream, self.window)
        return self.measured

    def eval_documents(self, lang: str, split: str) -> list[dict]:
        """The held-out documents scored for ``lang`` and ``split``: a seeded order that depends only
        on the prepared text, the split and the cap; whole documents until the cap."""
        cap = self.config.eval_caps()[split]
        docs = self._docs(lang, split)
        reference = self.manifest.aligned
        if reference is not None and cap is not None:
            ref_stats = prepared_stats(self.manifest, self.cache).get(reference)
            if ref_stats is None:
                raise DataConfigError(f"data.eval_bytes: {self.manifest.path} is aligned on {reference!r}, which is "
                                      f"not prepared (run: aunet-lab data prepare {self.manifest.path} "
                                      f"--languages {reference})")
            ref_docs = self._docs(reference, split)
            order = seeded_order([d["id"] for d in ref_docs], eval_order_key(ref_stats.sha256[split], split, cap))
            chosen = set(take_until(ref_docs, order, cap))
            order = [i for i in order if i in chosen]
            taken = take_until(docs, order, None)
        else:
            sha = prepared_stats(self.manifest, self.cache)[lang].sha256.get(split, "")
            taken = take_until(docs, seeded_order([d["id"] for d in docs], eval_order_key(sha, split, cap)), cap)
        by_id = {d["id"]: d for d in docs}
        return [by_id[i] for i in taken]

    def _build_eval_sets(self) -> None:
        cfg = self.config
        self.eval_docs = {}
        for split in EVAL_SPLITS:
            self.eval_sets[split] = {}
            self.eval_docs[split] = {}
            if split not in self.eval_splits:
                continue
            for lang in self.eval_languages:
                held = self.eval_documents(lang, split)
                if not held:
                    continue
                texts = [d["text"] for d in held]
                packed = pack_tokens(texts, self.tokenizer) if cfg.arch == "bpe" else pack_bytes(texts, cfg.split)
                ids = [d["id"] for d in held]
                self.eval_sets[split][lang] = EvalWindows(split_documents(packed), self.window, lang, ids)
                self.eval_docs[split][lang] = ids

    def use_eval_corpus(self, manifest, languages: list[str]) -> None:
        """Score on another prepared corpus's held-out documents (after ``setup``): the model's own
        context (for BPE, the tokens that cover ``window_bytes`` of its training text) is kept."""
        window = self.window  # languages are checked by the caller (eval.run.evaluate)
        self.manifest, self.eval_languages = manifest, list(languages)
        self.config.window_tokens = window if self.config.arch == "bpe" else self.config.window_tokens
        self._build_eval_sets()

    @property
    def window(self) -> int:
        cfg = self.config
        if cfg.arch == "aunet":
            return cfg.window_bytes
        if cfg.window_tokens:
            return cfg.window_tokens
        return window_tokens(cfg.window_bytes, self.measured["bytes_per_token"])

    # ---------------------------------------------------------------- loaders
    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def train_dataloader(self) -> DataLoader:
        """``data.batch_size`` is the global batch: each of N processes reads batch_size / N windows."""
        self.setup()
        rank, world = self._rank_world()
        sampler = FromIndexSampler(len(self.train_set), self.next_window, rank, world, self.config.batch_size)
        return DataLoader(self.train_set, batch_size=self.config.batch_size // world, sampler=sampler,
                          num_workers=self.config.num_workers, drop_last=False)

    def _eval_loaders(self, split: str) -> list[DataLoader]:
        self.setup()
        rank, world = self._rank_world()
        return [DataLoader(ds, batch_size=self.config.batch_size, sampler=StridedSampler(len(ds), rank, world),
                           num_workers=self.config.num_workers)
                for ds in self.eval_sets[split].values()]

    def val_dataloader(self) -> list[DataLoader]:
        return self._eval_loaders(self.config.eval_split)

    def test_dataloader(self) -> list[DataLoader]:
        return self._eval_loaders("test")

    def eval_language_order(self, split: str) -> list[str]:
        """The language of each validation/test dataloader index."""
        return list(self.eval_sets[split])

    # ---------------------------------------------------------------- state
    def advance(self, batch: dict) -> None:
        """Record that a training batch was consumed (Lightning calls this through the hook): the
        next window is the start of the next global batch, the same on every process."""
        size = self.config.batch_size
        self.next_window = (int(batch["index"].max()) // size + 1) * size

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.training and "index" in batch:
            self.advance(batch)
        return batch

    def state_dict(self) -> dict:
        fingerprint = self.selection.fingerprint() if self.selection is not None else None
        return {"next_window": self.next_window, "fingerprint": fingerprint, "config": asdict(self.config)}

    def load_state_dict(self, state: dict) -> None:
        self.setup()
        if state.get("fingerprint") not in (None, self.selection.fingerprint()):
            raise DataConfigError("data: the checkpoint was trained on a different document stream "
                                  "(mixture, budget, seed or corpus changed); resume needs the same data")
        self.next_window = int(state["next_window"])

    def stats(self) -> dict:
        """``data/*`` numbers for tracking: bytes per language, epochs, windows."""
        self.setup()
        sel = self.selection
        ratios = {f"data/bytes_per_unit/stage{k + 1}": v for k, v in enumerate(self.measured.get("bytes_per_unit", []))
                  if k > 0}
        if "bytes_per_token" in self.measured:
            ratios["data/bytes_per_token"] = self.measured["bytes_per_token"]
        return {"data/bytes": sum(sel.bytes_per_language.values()), "data/epochs": sel.epochs, **ratios,
                "data/windows": len(self.train_set), "data/window": self.window,
                **{f"data/bytes/{k}": v for k, v in sel.bytes_per_language.items()},
                **{f"data/epochs/{k}": v for k, v in sel.epochs_per_language.items()}}

    def describe(self) -> str:
        return json.dumps(self.stats(), indent=1)


def measure_training_stream(data_config, tokenizer=None) -> tuple[dict, int]:
    """(the compute ratios of a run's training stream, its window in the arch's units), exactly as
    the run's DataModule measures them; cached on disk by the selection's fingerprint, so a plan
    is quick to redo (the BPE tokenizer is cached by the same data, and the trial reuses it)."""
    import copy
    import tempfile

    data_config = copy.deepcopy(data_config)
    dm = AUNetDataModule(data_config)
    docs = {lang: dm._docs(lang, "train") for lang in data_config.mixture}
    selection = select_documents(docs, data_config.mixture, dm.budget, data_config.seed, data_config.max_epochs)
    given = hashlib.sha256(Path(tokenizer.path).read_bytes()).hexdigest() if tokenizer is not None else "own"
    arm = f"bpe-{data_config.vocab_size}-{given}" if data_config.arch == "bpe" else f"aunet-{split_identity(data_config.split)}"
    key = hashlib.sha256(f"{selection.fingerprint()}\x00{arm}\x00{data_config.window_bytes}\x00"
                         f"{data_config.window_tokens}".encode()).hexdigest()[:20]
    path = dm.cache / "measured" / f"{key}.json"
    if path.is_file():
        try:
            found = json.loads(path.read_text())
            return found["measured"], int(found["window"])
        except (OSError, ValueError, KeyError):  # a damaged cache entry: measure again and rewrite it
            path.unlink(missing_ok=True)
    dm.tokenizer = tokenizer
    measured = dm.build_train()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Several sweep workers may plan at once: each writes its own temporary file, then renames it.
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as fh:
        fh.write(json.dumps({"measured": measured, "window": dm.window}))
    Path(fh.name).replace(path)
    return measured, dm.window


def split_identity(spec: str) -> str:
    """A split-function spec as a cache key: a learned one (``entropy:PATH``) with its model's sha256,
    so a retrained model at the same path is measured again."""
    from aunet_lab.data.splitting import get_split_function

    sha = getattr(get_split_function(spec), "sha256", "")
    return f"{spec}@{sha}" if sha else spec
