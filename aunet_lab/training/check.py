"""``aunet-lab train --check``: everything ``train`` would refuse, checked without creating a run,
a folder or a tokenizer, and a one-paragraph description of what would train."""

from __future__ import annotations

from pathlib import Path

from aunet_lab.config import ConfigError, TrainConfig


def check_training(config: TrainConfig, resume: bool = False, init_from: str | None = None) -> str:
    import torch

    from aunet_lab.data.corpus import corpus_dir, default_cache, verify_prepared
    from aunet_lab.data.dataconfig import DataConfigError, parse_bytes
    from aunet_lab.data.manifest import SPLITS, load_manifest
    from aunet_lab.models.build import build_model
    from aunet_lab.paths import check_folder
    from aunet_lab.training.checkpoint import CheckpointError, load_checkpoint
    from aunet_lab.training.run import run_name
    from aunet_lab.mlflow_client import check_tracking_uri, resolve_tracking_uri

    config.data.arch = config.model.arch
    data = config.data
    data.validate()
    manifest = load_manifest(data.manifest)
    cache = Path(data.cache or default_cache())
    languages = sorted(set(data.mixture) | set(data.eval_languages or []))
    for lang in languages:
        if lang not in manifest.languages:
            raise DataConfigError(f"data.mixture.{lang}: {lang!r} is not a language of {manifest.path} "
                                  f"(has: {', '.join(manifest.languages)})")
        for split in SPLITS:
            path = corpus_dir(manifest, cache) / lang / f"{split}.jsonl"
            if not path.is_file():
                raise DataConfigError(f"data.mixture.{lang}: {lang!r} is not prepared under {cache} "
                                      f"(run: aunet-lab data prepare {manifest.path} --languages {lang})")
            verify_prepared(manifest, lang, split, path)
    run_dir = Path(config.output_dir) / run_name(config)
    check_folder(run_dir, "output_dir", ConfigError)
    uri = resolve_tracking_uri(config.tracking.tracking_uri)
    check_tracking_uri(uri)
    try:
        with torch.device("meta"):  # sizes only: no memory, even for a billion parameters
            model = build_model(config, config.data.vocab_size)
    except (RuntimeError, ValueError, OverflowError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"model: cannot be built ({first[:160]})") from None
    params = sum(p.numel() for p in model.parameters())
    start = "step 0"
    if resume:
        last = run_dir / "last.ckpt"
        if last.is_file():
            start = f"step {int(load_checkpoint(last).get('global_step', 0))} of {last}"
    if init_from:
        source = load_checkpoint(init_from)
        if not isinstance(source, dict) or "aunet_lab" not in source:
            raise CheckpointError(f"--init-from {init_from}: not a checkpoint written by aunet-lab train")
    mixture = ", ".join(f"{k} {v:g}" for k, v in config.data.mixture.items())
    steps = f"{config.trainer.max_steps} steps" if config.trainer.max_steps else "one pass over the budget"
    return (f"check passed: would train {config.model.arch} ({params:,} parameters) on {manifest.name} "
            f"[{mixture}], budget {parse_bytes(config.data.budget):,} bytes, {steps} from {start}"
            f"{f', warm-started from {init_from}' if init_from else ''}; run folder {run_dir}; MLflow {uri}; "
            "nothing created (--check)")
