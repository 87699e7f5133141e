"""From a study spec to one resolved training config per cell: the model (a fixed shape, or sized by
compute matching), bytes, epochs, steps, the learning-rate range around the paper's law, an
estimated time on this machine, and the reason a cell cannot run (refused before any training)."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from aunet_lab.config import TrainConfig, config_from_dict
from aunet_lab.sweep.forkserver import use_fork_server
from aunet_lab.sweep.spec import LEARNED, Cell, StudySpec

# A trial's fixed costs on this project's 2-core machine, measured by benchmarks/trial_breakdown.py
# (docs/performance.md): data setup, the MLflow run, checkpoints, export and samples per trial; each
# validation's own setup; and the imports a trial started as a fresh interpreter pays (a trial forked
# from the sweep's fork server does not, but the server pays them once per sweep).
TRIAL_FIXED_S = 1.5
VALIDATION_FIXED_S = 0.2
IMPORTS_S = 9.0


@dataclass
class CellPlan:
    cell: Cell
    config: TrainConfig
    shape: str
    params: int  # non-embedding
    flops_per_byte: float
    bytes: int
    compute: float
    epochs: dict[str, float]
    steps: int
    lr_law: float
    lr_range: tuple[float, float]
    lr_clamped: bool
    lr_source: str = "law"  # law / law, clamped / law, extrapolated / pilot / spec; ", bounded" when cut
    seconds_per_step: float | None = None
    refusals: list[str] = field(default_factory=list)
    validations: int = 1  # validations per trial
    eval_batches: float = 0.0  # evaluation batches per trial (validations and the test), each costed as a step
    forked: bool = True  # trials fork from the sweep's fork server (no per-trial imports)

    @property
    def feasible(self) -> bool:
        return not self.refusals

    def estimated_seconds(self, trials: int) -> float | None:
        """Training steps and evaluation batches at the measured seconds per step, plus the fixed costs."""
        if self.seconds_per_step is None:
            return None
        fixed = TRIAL_FIXED_S + self.validations * VALIDATION_FIXED_S + (0.0 if self.forked else IMPORTS_S)
        return trials * (fixed + (self.steps + self.eval_batches) * self.seconds_per_step)


def base_config(spec: StudySpec) -> TrainConfig:
    config = config_from_dict(spec.base, f"{spec.path}: base")
    config.tracking.experiment = spec.name
    if spec.tracking_uri:
        config.tracking.tracking_uri = spec.tracking_uri
    config.output_dir = str(spec.folder / "runs")
    return config


def ensure_prepared(spec: StudySpec, config: TrainConfig, progress=None) -> None:
    """Prepare the languages the study's mixtures use (idempotent; resumes a killed preparation)."""
    from aunet_lab.data.corpus import default_cache, prepare
    from aunet_lab.data.manifest import load_manifest

    manifest = load_manifest(config.data.manifest)
    languages = spec.languages()
    for lang in languages:
        if lang not in manifest.languages:
            raise _spec_error(spec, f"{lang!r} is not a language of {manifest.path} "
                                    f"(has: {', '.join(manifest.languages)})")
    prepare(manifest, Path(config.data.cache or default_cache()), languages, progress)


def _spec_error(spec: StudySpec, message: str):
    from aunet_lab.config import ConfigError

    return ConfigError(f"{spec.path}: {message}")


def _available(config: TrainConfig) -> dict[str, int]:
    from aunet_lab.data.corpus import default_cache, prepared_stats
    from aunet_lab.data.manifest import load_manifest

    stats = prepared_stats(load_manifest(config.data.manifest), Path(config.data.cache or default_cache()))
    return {tag: s.bytes.get("train", 0) for tag, s in stats.items()}


def _measured(config: TrainConfig, mixture: dict, vocab: int, split: str, cache: dict) -> dict:
    """Bytes per BPE token and per AU-Net unit on the mixture's training text (up to 2 MB a language)."""
    key = (tuple(sorted(mixture)), vocab, split)
    if key not in cache:
        from aunet_lab.data.bpe import measure_units, train_bpe
        from aunet_lab.data.corpus import default_cache, documents
        from aunet_lab.data.datamodule import split_identity
        from aunet_lab.data.manifest import load_manifest

        manifest = load_manifest(config.data.manifest)
        root = Path(config.data.cache or default_cache())
        texts = {}
        for lang in sorted(mixture):
            got, kept = 0, []
            for doc in documents(manifest, lang, "train", root):
                kept.append(doc["text"])
                got += len(doc["text"].encode())
                if got > 2_000_000:
                    break
            texts[lang] = kept
        # On disk too, by the text measured: a learned split takes minutes over 2 MB a language.
        digest = hashlib.sha256(f"{vocab}\x00{split_identity(split)}".encode())
        for lang, kept in texts.items():
            digest.update(f"\x00{lang}\x00{len(kept)}\x00".encode())
            for text in kept:
                digest.update(text.encode())
        path = root / "measured" / f"plan-{digest.hexdigest()[:20]}.json"
        try:
            cache[key] = json.loads(path.read_text())
        except (OSError, ValueError):
            tokenizer = train_bpe([t for ts in texts.values() for t in ts], vocab, root / "tokenizers")
            cache[key] = measure_units(texts, split, 4, tokenizer)
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as fh:
                fh.write(json.dumps(cache[key]))
            Path(fh.name).replace(path)
    return cache[key]


def select_cells(spec: StudySpec, patterns: list[str] | None) -> set[str] | None:
    """The ids of the cells named by ``patterns`` (shell globs on cell ids, as --plan lists them),
    with the pretraining cells they start from; None for every cell. A pattern matching no cell
    is a ConfigError naming the cells there are."""
    import fnmatch

    if not patterns:
        return None
    from aunet_lab.config import ConfigError

    cells = spec.cells()
    chosen = set()
    for pattern in patterns:
        hit = {c.id for c in cells if fnmatch.fnmatchcase(c.id, pattern)}
        if not hit:
            raise ConfigError(f"--cells {pattern!r}: no cell of {spec.path} matches (its cells: "
                              f"{', '.join(c.id for c in cells)})")
        chosen |= hit
    return chosen | {c.pretrain for c in cells if c.id in chosen and c.pretrain}


def plan_study(spec: StudySpec, time_steps: bool = True, cells: set[str] | None = None) -> list[CellPlan]:
    """Every cell's plan (only those in ``cells`` when given, see :func:`select_cells`)."""
    from aunet_lab.data.datamodule import window_tokens
    from aunet_lab.models.sizing import flops_per_byte, hyperparameters
    from aunet_lab.training.arms import arch_stages, matched_models, with_model

    base = base_config(spec)
    available = _available(base)
    measured_cache: dict = {}
    plans = []
    timings: dict = {}
    for cell in spec.cells():
        if cells is not None and cell.id not in cells:
            continue
        config = copy.deepcopy(base)
        config.data.mixture = dict(cell.mixture)
        if config.data.eval_languages:  # a run is always scored on its own training languages too
            config.data.eval_languages = sorted(set(config.data.eval_languages) | set(cell.mixture))
        config.data.vocab_size = cell.vocab_size
        # The split axis's "learned": learned chunking (models/chunking.py); its data keeps the word
        # rule's levels, which that model does not read, and its stage rates are its targets.
        learned = cell.split == LEARNED and cell.arch != "bpe"
        data_split = "word" if cell.split == LEARNED else cell.split
        config.data.split = data_split
        config.data.seed = cell.seed
        config.trainer.seed = cell.seed
        config.model.aunet.split = data_split
        measured = _measured(config, cell.mixture, cell.vocab_size, data_split, measured_cache)
        if learned:
            targets = [1.0] + list(config.model.aunet.target_bytes or [5.0, 10.0, 20.0])
            measured = {k: {**v, "bytes_per_unit": targets} for k, v in measured.items()}
        pooled = measured["all"]
        window = config.data.window_bytes
        refusals = []
        if cell.budget_kind == "compute":
            model = matched_models(cell.budget, [cell.arch], spec.sizing.ratio, measured, window, cell.vocab_size,
                                   data_split, spec.sizing)[cell.arch]
        else:
            arch_kind = "bpe" if cell.arch == "bpe" else "aunet"
            section = config_from_dict({"model": {"arch": arch_kind, arch_kind: spec.models[cell.arch]}},
                                       f"{spec.path}: models.{cell.arch}").model
            if arch_kind == "bpe":
                from aunet_lab.models import TransformerConfig

                b = section.bpe
                model = TransformerConfig(cell.vocab_size, b.dim, b.layers, b.heads, b.window, b.ffn_dim, b.rope_theta,
                                          b.ffn_multiple_of)
            else:
                model = section.aunet
                model.split = data_split
        if learned:
            model.chunking = "learned"
            model.validate()
        config = with_model(config, model)
        config.trainer.count_head_flops = bool(spec.sizing.count_head) if cell.budget_kind == "compute" \
            else config.trainer.count_head_flops
        params = _non_embedding(model)
        if cell.budget_kind == "compute":
            # Sized on a sample of the mixture's text; the trial's own stream gives the final FLOPs below.
            if cell.arch == "bpe":
                sample_fpb = flops_per_byte(model, window_tokens(window, pooled["bytes_per_token"]),
                                            bytes_per_token=pooled["bytes_per_token"])
            else:
                sample_fpb = flops_per_byte(model, window, pooled["bytes_per_unit"][: model.n_stages])
            sample_fpb = sample_fpb.total_with_head if spec.sizing.count_head else sample_fpb.total
            n_bytes = int(cell.budget / sample_fpb)
            target = math.sqrt(cell.budget / spec.sizing.ratio) / pooled["bytes_per_token"]
            if abs(math.log(sample_fpb / target)) > math.log(1.5):
                refusals.append(
                    f"model too small for its stages: the closest {cell.arch} has {sample_fpb:.3g} FLOPs/byte "
                    f"against {target:.3g} wanted (lower sizing.width_multiple/head_dim, or raise the budget)")
        else:
            n_bytes = int(cell.budget)
        config.data.budget = n_bytes
        epochs = {lang: cell.mixture[lang] * n_bytes / max(available.get(lang, 0), 1) for lang in cell.mixture}
        worst = max(epochs, key=epochs.get)
        if epochs[worst] > config.data.max_epochs:
            refusals.append(f"repetition past the maximum: {worst} would be seen {epochs[worst]:.1f} times "
                            f"(data.max_epochs {config.data.max_epochs:g})")
        fpb, units = float("nan"), window
        if not refusals and n_bytes > 0:
            from aunet_lab.data.dataconfig import DataConfigError

            tokenizer = warm_start_tokenizer(spec, cell, plans)
            try:
                fpb, units = trial_flops(config, model, tokenizer)
                # A compute budget buys budget / FLOPs-per-byte bytes, and the FLOPs per byte are
                # those of the stream those bytes make: a few rounds reach the fixed point.
                for _ in range(3 if cell.budget_kind == "compute" else 0):
                    again = int(cell.budget / fpb)
                    if again == n_bytes:
                        break
                    n_bytes = config.data.budget = again
                    fpb, units = trial_flops(config, model, tokenizer)
            except DataConfigError as err:
                refusals.append(str(err))
        compute = fpb * n_bytes
        epochs = {lang: cell.mixture[lang] * n_bytes / max(available.get(lang, 0), 1) for lang in cell.mixture}
        batch_bytes = config.data.batch_size * window
        if n_bytes < batch_bytes:
            refusals.append(f"budget below one batch: {n_bytes:,} bytes < {config.data.batch_size} x {window} bytes")
        if cell.arch != "bpe" and arch_stages(cell.arch) > 1 and \
                window < 4 * pooled["bytes_per_unit"][arch_stages(cell.arch) - 1]:
            refusals.append(f"window of {window} bytes holds under 4 units of the deepest stage")
        law = hyperparameters(compute if math.isfinite(compute) else 1.0, "bpe" if cell.arch == "bpe" else "aunet")
        centre, source = learning_rate(spec, cell, compute, law)
        if cell.budget_kind == "compute":
            config.data.batch_size = batch_windows(spec, cell, compute, n_bytes, window, pooled,
                                                   config.data.batch_size)
            batch_bytes = config.data.batch_size * window
        steps = max(1, math.ceil(n_bytes / batch_bytes))
        if spec.tune.lr:
            lr_range, source = tuple(spec.tune.lr), "spec"
        else:
            lr_range = (centre / spec.tune.lr_factor, centre * spec.tune.lr_factor)
        plan = CellPlan(cell, config, _shape(model), params, fpb, n_bytes, compute, epochs, steps, centre, lr_range,
                        law.clamped, source, refusals=refusals)
        plan.validations, plan.eval_batches = _evaluation_work(config, steps, batch_bytes)
        plan.forked = not spec.launcher and use_fork_server()
        # Timed only at sizes this machine can build in a moment (paper-scale templates plan anywhere).
        if time_steps and not refusals and params < 50_000_000:
            key = (plan.shape, cell.arch == "bpe", config.data.batch_size, units, cell.vocab_size)
            if key not in timings:
                timings[key] = _seconds_per_step(model, config.data.batch_size, units, pooled)
            plan.seconds_per_step = timings[key]
        plans.append(plan)
    return plans


def learning_rate(spec: StudySpec, cell: Cell, compute: float, law) -> tuple[float, str]:
    """The centre of a cell's learning-rate range, and where it came from. Inside the paper's laws'
    fitted range (or for a data-budget cell): the law. Below it, for a compute-budget cell: a pilot
    study's learning rate for the architecture (``tune.lr_anchor`` at ``tune.anchor_compute``) moved
    along the law's slope, or else the law extrapolated; both bounded by ``tune.lr_bounds``."""
    from aunet_lab.models.sizing import HPARAM_FIT_RANGE, HPARAM_LAWS, hyperparameters

    t = spec.tune
    if cell.budget_kind != "compute" or not math.isfinite(compute) or compute >= HPARAM_FIT_RANGE[0]:
        return law.lr, "law, clamped" if law.clamped else "law"
    family = "bpe" if cell.arch == "bpe" else "aunet"
    if t.lr_anchor and cell.arch in t.lr_anchor:
        lr = t.lr_anchor[cell.arch] * (compute / t.anchor_compute) ** HPARAM_LAWS[family]["lr"][1]
        source = "pilot"
    else:
        lr, source = hyperparameters(compute, family, extrapolate=True).lr, "law, extrapolated"
    lo, hi = t.lr_bounds
    if not lo <= lr <= hi:
        lr, source = min(max(lr, lo), hi), source + ", bounded"
    return lr, source


def batch_windows(spec: StudySpec, cell: Cell, compute: float, n_bytes: int, window: int, pooled: dict,
                  base: int) -> int:
    """Windows per step of a compute-budget cell: ``base`` (the cell's config), or (``tune.batch: law``) the
    paper's batch-size law extrapolated to the cell's compute (in bytes for AU-Net, tokens for BPE);
    then fewer, if needed, so that the run takes at least ``tune.min_steps`` steps."""
    from aunet_lab.models.sizing import hyperparameters

    windows = base
    if spec.tune.batch == "law" and math.isfinite(compute):
        family = "bpe" if cell.arch == "bpe" else "aunet"
        units = hyperparameters(compute, family, extrapolate=True).batch_size
        batch_bytes = units * (pooled["bytes_per_token"] if family == "bpe" else 1.0)
        windows = max(1, round(batch_bytes / window))
    most = max(1, n_bytes // (window * spec.tune.min_steps))
    return int(max(1, min(windows, most)))


def _non_embedding(model) -> int:
    from aunet_lab.models.sizing import count_params

    return int(count_params(model)["non_embedding"])


def _shape(model) -> str:
    if hasattr(model, "stages"):
        return "; ".join(f"{s.dim}x{s.layers}" for s in model.stages)
    return f"{model.dim}x{model.layers}"


def model_config_of(config: TrainConfig):
    """The model config a run of ``config`` builds (FLOPs need no weights)."""
    if config.model.arch == "bpe":
        from aunet_lab.models import TransformerConfig

        b = config.model.bpe
        return TransformerConfig(config.data.vocab_size, b.dim, b.layers, b.heads, b.window, b.ffn_dim, b.rope_theta,
                                 b.ffn_multiple_of)
    return config.model.aunet


def trial_flops(config: TrainConfig, model=None, tokenizer=None) -> tuple[float, int]:
    """FLOPs per byte a trial of ``config`` will log (its own training stream measured, the same
    function training uses), and its window in the model's units."""
    from aunet_lab.models.sizing import model_flops

    data = copy.deepcopy(config.data)
    data.arch = config.model.arch
    from aunet_lab.data.datamodule import measure_training_stream

    measured, window = measure_training_stream(data, tokenizer)
    report = model_flops(model or model_config_of(config), window, measured)
    return (report.total_with_head if config.trainer.count_head_flops else report.total), window


def warm_start_tokenizer(spec: StudySpec, cell: Cell, plans: list) -> object | None:
    """A warm-started BPE cell trains with its pretraining cell's tokenizer: the plan measures its
    stream with that tokenizer once the pretraining cell has a finished trial (else with its own)."""
    if cell.arch != "bpe" or not cell.pretrain:
        return None
    from aunet_lab.data.bpe import load_tokenizer

    for found in sorted((spec.folder / "runs").glob(f"{cell.pretrain}-t*/tokenizer.json")):
        return load_tokenizer(found)
    return None


def _evaluation_work(config: TrainConfig, steps: int, batch_bytes: int) -> tuple[int, float]:
    """(validations, evaluation batches) of one trial: a validation every ``val_every`` steps (one at
    the end if none falls inside the run) over the capped held-out bytes of every evaluated language,
    and the test at the end. An uncapped split is taken as 64 KB a language (its size is not known
    before the data is loaded)."""
    data, trainer = config.data, config.trainer
    languages = len(data.eval_languages or data.mixture)
    caps = {split: (cap if cap is not None else 64_000) * languages for split, cap in data.eval_caps().items()}
    every = trainer.val_every
    validations = max(1, steps // every) if every else 1
    batches = validations * math.ceil(caps["val"] / batch_bytes)
    if trainer.test_at_end:
        batches += math.ceil(caps["test"] / batch_bytes)
    return validations, float(batches)


def _seconds_per_step(model_config, batch: int, window: int, pooled: dict) -> float:
    """Forward, backward and AdamW step of this shape on random input, best of three."""
    import torch
    import torch.nn.functional as F

    from aunet_lab.models import AUNet, TokenTransformer

    torch.manual_seed(0)
    if hasattr(model_config, "stages"):
        model = AUNet(model_config)
        ids = torch.randint(0, 256, (batch, window + 1))
        levels = torch.zeros_like(ids)
        gaps = [max(1, round(b)) for b in pooled["bytes_per_unit"][1: model_config.n_stages]]
        for k, gap in enumerate(gaps, start=1):
            levels[:, ::gap] = k
        args = (ids[:, :-1], levels[:, :-1])
    else:
        model = TokenTransformer(model_config)
        ids = torch.randint(0, model_config.vocab_size, (batch, window + 1))
        args = (ids[:, :-1],)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    best = float("inf")
    for i in range(4):
        start = time.perf_counter()
        logits = model(*args)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:
            best = min(best, time.perf_counter() - start)
    return best


def plan_table(spec: StudySpec, plans: list[CellPlan]):
    """The plan as a pandas frame, one row per cell (the values of :func:`plan_json`, formatted)."""
    import pandas as pd

    def num(value, fmt):
        return "-" if value is None else format(value, fmt)

    rows = []
    for c in plan_json(spec, plans)["cells"]:
        lo, hi = c["lr_range"]
        rows.append({
            "cell": c["cell"], "arch": c["arch"], "budget": c["budget"], "mixture": c["mixture"],
            "vocab": c["vocab_size"] or "", "seed": c["seed"], "shape": c["shape"], "params": c["params"],
            "flops/byte": num(c["flops_per_byte"], ".3g"), "bytes": c["bytes"], "compute": num(c["compute"], ".3g"),
            "epochs": f"{max(c['epochs'].values()):.2f}", "steps": c["steps"],
            "batch": c["batch_size"],
            "lr range": (f"{lo:.2g}" if lo == hi else f"{lo:.2g}-{hi:.2g}") + f" ({c['lr_source']})",
            "est. time": _duration(c["estimated_seconds"]) if c["estimated_seconds"] is not None else "-",
            "status": "ok" if c["refused"] is None else "REFUSED: " + c["refused"],
        })
        if spec.pretrain:
            rows[-1]["warm start"] = c["pretrain"] or "-"
    return pd.DataFrame(rows)


def plan_json(spec: StudySpec, plans: list[CellPlan]) -> dict:
    """The plan as data: every cell (arch, shape, parameters, FLOPs per byte, bytes, steps,
    learning-rate range, estimated seconds, and ``refused`` with its reason or null) and the
    study's estimated hours with one worker."""
    cells = []
    for p in plans:
        c = p.cell
        est = p.estimated_seconds(sum(spec.trials_wanted(c)))
        cells.append({
            "cell": c.id, "arch": c.arch, "budget": c.budget_label, "budget_kind": c.budget_kind,
            "mixture": c.mixture_name, "weights": dict(c.mixture), "seed": c.seed, "split": c.split if c.arch != "bpe" else None,
            "vocab_size": c.vocab_size if c.arch == "bpe" else None, "shape": p.shape, "params": p.params,
            "flops_per_byte": None if math.isnan(p.flops_per_byte) else p.flops_per_byte, "bytes": p.bytes,
            "compute": None if math.isnan(p.compute) else p.compute, "epochs": p.epochs, "steps": p.steps,
            "trials": sum(spec.trials_wanted(c)), "lr_range": list(p.lr_range), "lr_law_clamped": p.lr_clamped,
            "lr_source": p.lr_source, "batch_size": p.config.data.batch_size,
            "estimated_seconds": est, "pretrain": c.pretrain or None,
            "refused": "; ".join(p.refusals) if p.refusals else None,
        })
    return {"study": spec.name, "spec": str(spec.path), "cells": cells, "estimated_hours": study_seconds(spec, plans) / 3600}


def study_seconds(spec: StudySpec, plans: list[CellPlan]) -> float:
    """The study's estimated time with one worker: every feasible cell's trials, and the fork
    server's imports once."""
    feasible = [p for p in plans if p.feasible]
    total = sum(p.estimated_seconds(sum(spec.trials_wanted(p.cell))) or 0 for p in feasible)
    return total + (IMPORTS_S if any(p.forked for p in feasible) else 0.0)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
