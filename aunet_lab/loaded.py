"""A trained model ready to use outside training: ``aunet_lab.load(PATH)``.

PATH is an export folder (``aunet-lab export``: ``model.safetensors`` + ``config.json``), a
checkpoint ``aunet-lab train`` wrote, or a run folder holding ``final.ckpt``. Scoring goes through
the evaluation path's own documents and windows (``data.evalset``), so ``bits_per_byte`` of a text
is what ``aunet-lab eval`` reports for the same document.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

EXPORT_FORMAT = "aunet_lab.export/1"


class LoadError(ValueError):
    """A path that holds no loadable model; one line naming it."""


@dataclass
class LoadedModel:
    """``module``: the ``nn.Module`` (eval mode). ``arch``: ``aunet`` or ``bpe``. ``window``: the
    context it was trained with, in its own units (bytes, or BPE tokens). ``split``: the split
    function (AU-Net). ``info``: what the export's ``config.json`` records (training data, budget,
    commit), or the checkpoint's training config."""

    module: torch.nn.Module
    arch: str
    window: int
    tokenizer: object | None = None  # data.bpe.BPETokenizer for the baseline
    split: str | None = None
    info: dict = field(default_factory=dict)

    @property
    def stages(self) -> int:
        return self.module.config.n_stages if self.arch == "aunet" else 0

    def documents(self, texts: list[str]):
        """Each text as one document (``BOS + units + EOS``) in the model's units."""
        from aunet_lab.data.datamodule import pack_bytes, pack_tokens
        from aunet_lab.data.evalset import split_documents

        packed = pack_tokens(texts, self.tokenizer) if self.arch == "bpe" else pack_bytes(texts, self.split)
        return split_documents(packed)

    @torch.no_grad()
    def score(self, texts: str | list[str], batch_size: int = 8) -> tuple[float, int]:
        """(summed negative log-likelihood in nats, UTF-8 bytes scored) of whole documents, every
        byte scored once with the evaluation path's windows (EOS and BOS are not counted)."""
        from aunet_lab.data.evalset import EvalWindows
        from aunet_lab.training.metrics import token_nll

        texts = [texts] if isinstance(texts, str) else list(texts)
        windows = EvalWindows(self.documents(texts), self.window)
        nll, nbytes = 0.0, 0
        device = next(self.module.parameters()).device
        for start in range(0, len(windows), batch_size):
            rows = [windows[i] for i in range(start, min(start + batch_size, len(windows)))]
            batch = {k: torch.stack([r[k] for r in rows]).to(device) for k in ("input_ids", "targets", "target_bytes")}
            if self.arch == "aunet":
                logits = self.module(batch["input_ids"], torch.stack([r["levels"] for r in rows]).to(device))
            else:
                logits = self.module(batch["input_ids"])
            counted = batch["target_bytes"] > 0
            nll += float((token_nll(logits, batch["targets"]).double() * counted).sum())
            nbytes += int(batch["target_bytes"].sum())
        return nll, nbytes

    def bits_per_byte(self, texts: str | list[str]) -> float:
        """Bits per UTF-8 byte over the given documents (pooled: total bits / total bytes)."""
        nll, nbytes = self.score(texts)
        if nbytes == 0:
            raise ValueError("bits_per_byte: the text has no bytes to score")
        return nll / (math.log(2) * nbytes)

    @torch.no_grad()
    def generate(self, prompt: str, max_new_bytes: int = 200, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int = 0) -> str:
        """The continuation of ``prompt`` (without the prompt): at most ``max_new_bytes`` UTF-8
        bytes, stopping at the end of document; greedy at temperature 0."""
        from aunet_lab.models.generate import Generator

        if self.arch == "bpe":
            tok = self.tokenizer
            ids = torch.tensor([[tok.bos_id] + tok.encode(prompt)])
            out = Generator(self.module).generate(ids, max_new_bytes, temperature, top_p, tok.eos_id, seed)
            raw = tok.decode_bytes(out[0].tolist())
        else:
            ids = torch.tensor([[256] + list(prompt.encode())])
            out = Generator(self.module).generate(ids, max_new_bytes, temperature, top_p, 257, seed)
            raw = bytes(t for t in out[0].tolist() if t < 256)
        return raw[:max_new_bytes].decode("utf-8", "replace")


def _from_export(folder: Path) -> LoadedModel:
    from safetensors.torch import load_file

    from aunet_lab.models import AUNet, AUNetConfig, TokenTransformer, TransformerConfig

    try:
        info = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LoadError(f"{folder / 'config.json'}: not readable JSON ({err})") from None
    if info.get("format") != EXPORT_FORMAT:
        raise LoadError(f"{folder / 'config.json'}: format {info.get('format')!r}, expected {EXPORT_FORMAT!r}")
    tokenizer = None
    try:
        if info["arch"] == "bpe":
            from aunet_lab.data.bpe import load_tokenizer

            if not (folder / "tokenizer.json").is_file():
                raise LoadError(f"{folder}: a BPE model needs tokenizer.json beside config.json")
            tokenizer = load_tokenizer(folder / "tokenizer.json")
            module = TokenTransformer(TransformerConfig(**info["model"]))
        else:
            module = AUNet(AUNetConfig.from_dict(info["model"]))
        state = load_file(str(folder / "model.safetensors"))
    except LoadError:
        raise
    except (KeyError, TypeError, ValueError, OSError, RuntimeError) as err:
        raise LoadError(f"{folder}: not an aunet_lab export ({type(err).__name__}: {str(err)[:160]})") from None
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise LoadError(f"{folder / 'model.safetensors'}: weights do not fit config.json "
                        f"({str(err).splitlines()[0][:160]})") from None
    return LoadedModel(module.eval(), info["arch"], int(info["window"]), tokenizer,
                       info["model"].get("split") if info["arch"] == "aunet" else None, info)


def trained_window(config, tokenizer, extra: dict) -> int:
    """The context a checkpoint's model trained with, in its units: recorded in the checkpoint, else
    (older checkpoints) the window bytes, or the BPE tokens that cover them on its training stream."""
    if extra.get("window"):
        return int(extra["window"])
    if config.model.arch == "aunet":
        return config.data.window_bytes
    if config.data.window_tokens:
        return config.data.window_tokens
    import copy

    from aunet_lab.data.datamodule import window_tokens
    from aunet_lab.data.datamodule import measure_training_stream

    data = copy.deepcopy(config.data)
    data.arch = "bpe"
    measured, _ = measure_training_stream(data, tokenizer)
    return window_tokens(config.data.window_bytes, measured["bytes_per_token"])


def _from_checkpoint(path: Path) -> LoadedModel:
    from aunet_lab.config import to_plain
    from aunet_lab.training.checkpoint import load_checkpoint, model_from_checkpoint

    raw = load_checkpoint(path)
    config, module, tokenizer = model_from_checkpoint(raw, path)
    extra = raw.get("aunet_lab", {})
    window = trained_window(config, tokenizer, extra)
    split = config.model.aunet.split if config.model.arch == "aunet" else None
    return LoadedModel(module, config.model.arch, window, tokenizer, split,
                       {"train_config": to_plain(config), "checkpoint": str(path), "steps": raw.get("global_step"),
                        "bytes_seen": extra.get("bytes_seen"), "commit": extra.get("commit")})


def load(path: str | Path) -> LoadedModel:
    """A ready model from an export folder, a checkpoint, or a run folder with ``final.ckpt``."""
    path = Path(path)
    if path.is_dir():
        if (path / "config.json").is_file():
            return _from_export(path)
        if (path / "final.ckpt").is_file():
            return _from_checkpoint(path / "final.ckpt")
        raise LoadError(f"{path}: neither an export folder (config.json) nor a run folder (final.ckpt)")
    if not path.exists():
        raise LoadError(f"{path}: no such file or folder")
    return _from_checkpoint(path)
