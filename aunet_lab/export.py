"""``aunet-lab export CKPT OUT/``: a trained model as the field's tools expect it.

The folder holds ``model.safetensors`` (weights only), ``config.json`` (architecture, split
function, context, vocabulary, training facts), the BPE tokenizer's own ``tokenizer.json`` for the
baseline, and ``README.md``, a short model card. ``aunet_lab.load(OUT)`` reads it back.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

from aunet_lab.loaded import EXPORT_FORMAT, LoadedModel


class ExportError(ValueError):
    """A model that cannot be exported, or a destination that cannot take it; one line."""


def check_split_exportable(split) -> None:
    """An export names its split function so that another process can build it again: a name the
    platform registers, ``regex:PATTERN``, or an importable ``module.path:callable``."""
    from aunet_lab.data.splitting import registering_module

    if not isinstance(split, str):
        raise ExportError(f"split function {split!r} is a Python object: export needs one named by "
                          "import path (module.path:callable) or a registered name")
    head = split.split(":", 1)[0]
    if split.startswith("regex:"):
        return
    module = registering_module(head)
    if module is not None:
        if not module.startswith("aunet_lab"):
            raise ExportError(f"split function {split!r} is registered at run time by {module}: export needs "
                              "it named by import path (module.path:callable)")
        return
    if ":" in split and head != "__main__":
        from aunet_lab.data.splitting import SplitSpecError, get_split_function

        try:
            get_split_function(split)
        except SplitSpecError as err:
            raise ExportError(str(err)) from None
        return
    raise ExportError(f"split function {split!r} cannot be named by import path (module.path:callable)")


def _model_dict(model: LoadedModel) -> dict:
    return dataclasses.asdict(model.module.config)


def _training_facts(model: LoadedModel) -> dict:
    cfg = model.info.get("train_config", {})
    data = cfg.get("data", {})
    return {
        "manifest": data.get("manifest"),
        "mixture": data.get("mixture"),
        "budget_bytes": data.get("budget"),
        "window_bytes": data.get("window_bytes"),
        "seed": cfg.get("trainer", {}).get("seed"),
        "steps": model.info.get("steps"),
        "bytes_seen": model.info.get("bytes_seen"),
        "commit": model.info.get("commit"),
    }


def _model_card(model: LoadedModel, info: dict, bpb_rows: list[dict]) -> str:
    t = info["training"]
    arch = f"AU-Net with {model.stages} stage(s), split function `{model.split}`" if model.arch == "aunet" \
        else f"BPE-token transformer baseline ({info['vocab_size']} tokens)"
    lines = [f"# {info.get('name') or 'aunet_lab model'}", "", f"{arch}; context {model.window} "
             f"{'bytes' if model.arch == 'aunet' else 'tokens'}; {info['parameters']:,} parameters.", "",
             "## Training", "",
             f"- data: `{t['manifest']}`, mixture {json.dumps(t['mixture'], ensure_ascii=False)}",
             f"- budget: {t['budget_bytes']} bytes, {t['steps']} optimizer steps, seed {t['seed']}",
             f"- code: aunet_lab {info['aunet_lab_version']}, commit {t['commit'] or 'unknown'}", ""]
    if bpb_rows:
        lines += ["## Bits per byte (one seed, whole held-out documents)", "", "| split | language | bpb |",
                  "|---|---|---|"]
        lines += [f"| {r['split']} | {r['language']} | {r['bpb']:.4f} |" for r in bpb_rows]
        lines.append("")
    lines += ["## Use", "", "```python", "import aunet_lab", "", "model = aunet_lab.load(\"THIS_FOLDER\")",
              "model.bits_per_byte(\"Some text.\"), model.generate(\"Some \", max_new_bytes=40)", "```", ""]
    return "\n".join(lines)


def write_export(model: LoadedModel, out: Path, bpb_rows: list[dict] | None = None, name: str | None = None,
                 replace: bool = False) -> Path:
    """Write ``model`` as an export folder at ``out`` (built beside it, then renamed into place:
    never half-written). An existing ``out`` is refused unless ``replace``."""
    from safetensors.torch import save_file

    from aunet_lab import __version__

    out = Path(out)
    if model.arch == "aunet":
        check_split_exportable(model.split)
    if out.exists() and not replace and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out}: already exists and is not empty (choose a new folder)")
    info = {
        "format": EXPORT_FORMAT,
        "name": name,
        "arch": model.arch,
        "model": _model_dict(model),
        "window": model.window,
        "window_unit": "bytes" if model.arch == "aunet" else "tokens",
        "vocab_size": model.module.config.vocab_size,
        "special_tokens": ({"bos": 256, "eos": 257} if model.arch == "aunet" else
                           {"bos": model.tokenizer.bos_id, "eos": model.tokenizer.eos_id}),
        "parameters": sum(p.numel() for p in model.module.parameters()),
        "aunet_lab_version": __version__,
        "training": _training_facts(model),
        "train_config": model.info.get("train_config"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        state = {k: v.detach().contiguous() for k, v in model.module.state_dict().items()}
        save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})
        (staging / "config.json").write_text(json.dumps(info, indent=1, ensure_ascii=False, default=str),
                                             encoding="utf-8")
        if model.tokenizer is not None:
            shutil.copy(model.tokenizer.path, staging / "tokenizer.json")
        (staging / "README.md").write_text(_model_card(model, info, bpb_rows or []), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out


def export_checkpoint(checkpoint: str | Path, out: str | Path) -> Path:
    """``aunet-lab export``: a checkpoint (or a run folder with ``final.ckpt``) as an export folder;
    the run's per-language bits per byte go into the model card when they are beside it."""
    from aunet_lab.loaded import load

    checkpoint = Path(checkpoint)
    if checkpoint.is_dir() and (checkpoint / "final.ckpt").is_file():
        checkpoint = checkpoint / "final.ckpt"
    if checkpoint.is_dir():
        raise ExportError(f"{checkpoint}: a folder without final.ckpt (give a checkpoint file)")
    model = load(checkpoint)
    rows_path = checkpoint.parent / "bpb_by_language.json"
    rows = json.loads(rows_path.read_text()) if rows_path.is_file() else []
    return write_export(model, Path(out), rows, name=checkpoint.parent.name)
