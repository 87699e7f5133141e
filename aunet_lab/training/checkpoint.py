"""Checkpoints ``aunet-lab train`` writes, read back: the file itself (with one-line errors for a
missing, corrupt or foreign one), the model and BPE tokenizer in it, and generation from it."""

from __future__ import annotations

from pathlib import Path

import torch

from aunet_lab.data.byte_ids import BOS_ID, EOS_ID
from aunet_lab.messages import first_line


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read; one line."""


def load_checkpoint(path: str | Path) -> dict:
    """``torch.load(weights_only=True)`` with a clear error for a missing, corrupt or truncated file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors all mean: unusable file
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({first_line(err, 160)})") from None



def tokenizer_beside(checkpoint: str | Path):
    """The BPE tokenizer a BPE checkpoint was trained with (``tokenizer.json`` in its run folder)."""
    from aunet_lab.data.bpe import load_tokenizer

    tok_path = Path(checkpoint).parent / "tokenizer.json"
    if not tok_path.is_file():
        raise CheckpointError(f"checkpoint {checkpoint}: the BPE tokenizer {tok_path} is missing beside it")
    return load_tokenizer(tok_path)


def load_trained(path: str | Path):
    """(config, model in eval mode, BPE tokenizer or None) from a checkpoint ``aunet-lab train`` wrote."""
    return model_from_checkpoint(load_checkpoint(path), path)


def model_from_checkpoint(checkpoint: dict, path: str | Path):
    """(config, model in eval mode, BPE tokenizer or None) from a loaded checkpoint ``path``."""
    from aunet_lab.config import config_from_dict
    from aunet_lab.models.build import build_model

    extra = checkpoint.get("aunet_lab")
    if not extra:
        raise CheckpointError(f"checkpoint {path} was not written by aunet-lab train")
    config = config_from_dict(extra["config"], f"checkpoint {path}: config")
    state = {k[len("model."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    tok = tokenizer_beside(path) if config.model.arch == "bpe" else None
    model = build_model(config, tok.vocab_size if tok is not None else None)
    model.load_state_dict(state)
    return config, model.eval(), tok


def generate_from_checkpoint(path: str, prompt: str, max_new: int = 200, temperature: float = 0.0,
                             top_p: float = 1.0, seed: int = 0) -> str:
    from aunet_lab.models.generate import Generator

    _, model, tok = load_trained(path)
    if tok is not None:
        ids = torch.tensor([[tok.bos_id] + tok.encode(prompt)])
        out = Generator(model).generate(ids, max_new, temperature, top_p, tok.eos_id, seed)
        return tok.decode_bytes(out[0].tolist()).decode("utf-8", "replace")
    ids = torch.tensor([[BOS_ID] + list(prompt.encode())])
    out = Generator(model).generate(ids, max_new, temperature, top_p, EOS_ID, seed)
    return bytes(t for t in out[0].tolist() if t < 256).decode("utf-8", "replace")
