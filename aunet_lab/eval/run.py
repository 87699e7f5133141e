"""`aunet-lab eval CHECKPOINT`: test-split bits per byte per language (the training path's own
metric, through Lightning) and the character-task suite, for AU-Net and BPE checkpoints alike."""

from __future__ import annotations

import copy
from pathlib import Path

SUITES = ("bpb", "chars", "diagnostics")


def eval_bpb(config, model, tokenizer, languages: list[str], manifest=None,
             eval_bytes: int | str | None = None) -> dict[str, float]:
    """Test BPB per language (and micro/macro over them, bytes scored and mean context in bytes) on
    each language's test split, of the checkpoint's own corpus or of ``manifest`` (another prepared
    corpus): the whole split, or whole documents up to ``eval_bytes`` per language."""
    import lightning.pytorch as pl

    from aunet_lab.data.datamodule import AUNetDataModule
    from aunet_lab.training.module import LMModule

    config = copy.deepcopy(config)
    config.data.eval_languages = languages if manifest is None else None
    config.data.eval_bytes = {"val": None, "test": eval_bytes}
    # The training selection is rebuilt as it was (same budget, mixture and seed), so the BPE
    # context in tokens is the one the model trained with; the checkpoint's tokenizer is used.
    dm = AUNetDataModule(config.data)
    dm.eval_splits = ("test",)
    dm.tokenizer = tokenizer
    dm.setup()
    if manifest is not None:
        dm.use_eval_corpus(manifest, languages)
    if not dm.eval_sets.get("test"):
        return {}
    module = LMModule(config, 1, tokenizer.vocab_size if tokenizer is not None else None, dm.measured,
                      [], dm.eval_language_order("test"), dm.window)
    module.model.load_state_dict(model.state_dict())
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False)
    trainer.test(module, datamodule=dm, verbose=False)
    return dict(module.last_test)


def eval_chars(config, model, tokenizer, languages: list[str], per_task: int, seed: int = 0, manifest=None):
    from aunet_lab.data.corpus import default_cache, documents
    from aunet_lab.data.manifest import load_manifest
    from aunet_lab.eval.chars import generate, held_out_words
    from aunet_lab.eval.scoring import Scorer, score_items, summarise

    manifest = manifest or load_manifest(config.data.manifest)
    cache = Path(config.data.cache or default_cache())
    scorer = Scorer(model, tokenizer)
    rows = []
    for lang in languages:
        texts = [d["text"] for d in documents(manifest, lang, "test", cache)]
        rows += score_items(scorer, generate(held_out_words(texts), lang, per_task=per_task, seed=seed))
    return summarise(rows)


def model_run(model_path: str, tracking_uri: str):
    """(client, run id, its last step) of the MLflow run that trained ``model_path`` (a checkpoint,
    a run folder, or the export in a run folder: ``mlflow_run_id`` beside it or one folder up), if
    that run is in ``tracking_uri``; else None."""
    from aunet_lab.mlflow_client import client_for

    path = Path(model_path)
    folder = path if path.is_dir() else path.parent
    marker = next((f / "mlflow_run_id" for f in (folder, folder.parent) if (f / "mlflow_run_id").is_file()), None)
    if marker is None:
        return None
    run_id = marker.read_text().strip()
    client = client_for(tracking_uri)
    try:
        run = client.get_run(run_id)
    except Exception:  # not in this store
        return None
    return client, run_id, int(run.data.params.get("trainer.max_steps_resolved", 0) or 0)


def log_to_run(checkpoint: str, tracking_uri: str, results: dict, out: Path) -> str | None:
    """Log the evaluation to the checkpoint's own MLflow run (``eval/...`` metrics, the tables as
    artifacts), if that run is in ``tracking_uri``; returns its id, or None. An evaluation on
    another corpus than the run's logs under ``eval/<corpus>/...``."""
    found = model_run(checkpoint, tracking_uri)
    if found is None:
        return None
    client, run_id, step = found
    prefix = f"eval/{results['corpus']}/" if results.get("corpus") else "eval/"
    for key, value in results.get("bpb", {}).items():
        client.log_metric(run_id, f"{prefix}{key}", float(value), step=step)
    if "chars" in results:
        for r in results["chars"].itertuples():
            client.log_metric(run_id, f"{prefix}chars/{r.language}/{r.task}", float(r.accuracy), step=step)
            client.log_metric(run_id, f"{prefix}chars_chance/{r.language}/{r.task}", float(r.chance), step=step)
            client.log_metric(run_id, f"{prefix}chars_items/{r.language}/{r.task}", float(r.items), step=step)
    for by, table in results.get("diagnostics", {}).items():
        for r in table.itertuples():
            value = str(getattr(r, by)).replace("/", "-")
            client.log_metric(run_id, f"{prefix}diagnostics/{r.language}/{by}/{value}", float(r.bits_per_byte),
                              step=step)
    for path in sorted(out.glob("*")):
        if path.is_file():
            client.log_artifact(run_id, str(path), prefix.rstrip("/"))
    return run_id


def log_scores_to_run(model_path: str, tracking_uri: str, flat: dict[str, float], artifact: Path) -> str | None:
    """Log ``flat`` metrics and ``artifact`` to the MLflow run that trained ``model_path`` (a
    checkpoint or run folder beside its ``mlflow_run_id``, or an export whose run folder holds one),
    if that run is in ``tracking_uri``; returns its id, or None."""
    found = model_run(model_path, tracking_uri)
    if found is None:
        return None
    client, run_id, step = found
    for key, value in flat.items():
        client.log_metric(run_id, key, value, step=step)
    client.log_artifact(run_id, str(artifact), "lm_eval")
    return run_id


def evaluate(checkpoint: str, suites: list[str], languages: list[str] | None, per_task: int, out: Path | None,
             manifest: str | Path | None = None, eval_bytes: int | str | None = None):
    """Run ``suites`` on the checkpoint, on the test split of its own corpus or of ``manifest`` (another
    prepared corpus, e.g. the UDHR: the same content in every language); BPB on the whole split, or
    on whole documents up to ``eval_bytes`` per language."""
    import json

    from aunet_lab.data.corpus import default_cache, documents, prepared_stats
    from aunet_lab.data.dataconfig import DataConfigError
    from aunet_lab.data.manifest import load_manifest
    from aunet_lab.training.checkpoint import load_trained

    config, model, tokenizer = load_trained(checkpoint)
    languages = languages or sorted(config.data.mixture)
    own = load_manifest(config.data.manifest)
    corpus = load_manifest(manifest) if manifest is not None else own
    other = corpus.name != own.name
    cache = Path(config.data.cache or default_cache())
    prepared = prepared_stats(corpus, cache)
    for lang in languages:
        if lang not in corpus.languages:
            raise DataConfigError(f"--languages: {lang!r} is not a language of {corpus.path} "
                                  f"(has: {', '.join(corpus.languages)})")
        if lang not in prepared:
            raise DataConfigError(f"--languages: {lang!r} is not prepared under {cache} "
                                  f"(run: aunet-lab data prepare {corpus.path} --languages {lang})")
    results = {"corpus": corpus.name} if other else {}
    out = Path(out or Path(checkpoint).parent / (f"eval-{corpus.name}" if other else "eval"))
    out.mkdir(parents=True, exist_ok=True)
    if "bpb" in suites:
        results["bpb"] = eval_bpb(config, model, tokenizer, languages, corpus if other else None, eval_bytes)
        (out / "bpb.json").write_text(json.dumps(results["bpb"], indent=1))
    if "chars" in suites:
        frame = eval_chars(config, model, tokenizer, languages, per_task, manifest=corpus)
        frame.to_csv(out / "chars.csv", index=False)
        results["chars"] = frame
    if "diagnostics" in suites and tokenizer is None:  # AU-Net only: units and boundaries are its own
        from aunet_lab.eval.diagnostics import diagnose

        texts = {lang: [d["text"] for d in documents(corpus, lang, "test", cache)][:50] for lang in languages}
        tables = diagnose(model, texts, config.data.window_bytes)
        for name, table in tables.items():
            table.to_csv(out / f"diagnostics_by_{name}.csv", index=False)
        results["diagnostics"] = tables
    return results, out
