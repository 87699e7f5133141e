"""Study specs (``studies/*.yaml``): the axes a study crosses, how each cell is tuned, the objective,
and Optuna's sampler and pruner, validated before anything trains.

A cell is one point of the axes (architecture, budget, mixture, vocabulary size, split function,
seed). Cells are enumerated here, not by Optuna (its GridSampler wants every parameter in its grid);
inside a cell the learning rate (and optionally the batch size) is sampled, one Optuna study per
cell, with the sampler and pruner rebuilt from this spec on every start.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aunet_lab.config import ConfigError
from aunet_lab.training.arms import Scale

def split_label(split: str) -> str:
    """A split function as it reads in a cell id: ``stride4-16``, ``script``, and for a learned one
    its model file's name (``entropy:runs/boundaries/help.pt`` reads ``entropyhelp``)."""
    if split.startswith("entropy:"):
        return "entropy" + Path(split.split(":", 1)[1]).stem
    return split.replace(":", "").replace(",", "-")


LEARNED = "learned"  # the split axis's value for AU-Net's learned chunking instead of a split function

AXES = ("arch", "data_budget", "compute_budget", "mixture", "vocab_size", "split", "seed")
SAMPLERS = ("tpe", "random")
PRUNERS = ("none", "median", "hyperband")


@dataclass
class TuneSpec:
    trials: int = 2  # per cell
    lr_factor: float = 3.0  # learning rate searched log-uniformly in [law / f, law * f]
    lr: list[float] | None = None  # or an explicit [low, high]
    batch_size: list[int] | None = None  # optional categorical search
    repeat_seeds: list[int] = field(default_factory=list)  # rerun the best learning rate with these seeds
    # Compute-budget cells below the paper's laws' fitted range (1e17 FLOPs): the centre of the
    # learning-rate range is a pilot study's best learning rate per architecture at
    # ``anchor_compute``, moved along the law's slope to the cell's compute; without a pilot, the law
    # extrapolated. Either way bounded by ``lr_bounds``.
    lr_anchor: dict[str, float] | None = None
    anchor_compute: float | None = None
    lr_bounds: list[float] = field(default_factory=lambda: [1e-4, 3e-2])
    batch: str = "fixed"  # or "law": the paper's batch-size law (extrapolated), kept to min_steps or more
    min_steps: int = 1  # compute-budget cells: fewer windows a step until a run has at least this many steps


@dataclass
class ObjectiveSpec:
    metric: str = "val/bpb"  # val/bpb (micro over all bytes) or val/bpb_macro
    languages: list[str] | None = None  # if given: the mean of val/bpb/<lang> over these
    on_mixture: bool = False  # the mean of val/bpb/<lang> over each cell's own training languages


@dataclass
class SamplerSpec:
    name: str = "tpe"
    seed: int = 0
    n_startup_trials: int = 2


@dataclass
class PrunerSpec:
    name: str = "median"
    n_startup_trials: int = 2  # median: trials finished before any is pruned
    warmup_fraction: float = 0.25  # median: no pruning before this fraction of the cell's bytes
    reduction_factor: int = 3  # hyperband


@dataclass
class SizingSpec(Scale):
    """Compute-budget cells: the paper's matching rule at CPU-sized granularity, and its data-to-model
    ratio (tokens per FLOP per token)."""

    ratio: float = 10.0


@dataclass
class FaultSpec:
    """What happens when a trial dies (its process, or the worker that ran it, killed or lost)."""

    max_retries: int = 2  # a dead trial is rerun (from its last checkpoint) up to this many times
    heartbeat_interval: int = 30  # RDB storages: seconds between a running trial's heartbeats
    grace_period: int = 120  # RDB storages: a trial without a heartbeat this long is dead
    poll_seconds: float = 5.0  # a worker with nothing to ask waits this long before looking again


@dataclass
class PretrainSpec:
    """Warm start: each arm is first trained on ``mixture`` for ``data_budget`` bytes (its own cell,
    ``pretrain-<arch>``), and every cell of the axes starts from those weights (and, for BPE, that
    tokenizer: trained without the target languages, as in practice)."""

    mixture: dict[str, float] = field(default_factory=dict)
    data_budget: str = "1MB"
    trials: int = 1  # learning rates tried for the pretraining; the best (validation on its mixture) is used


@dataclass
class EvaluateSpec:
    """Evaluation a trial runs on its final checkpoint after training (``aunet-lab eval``'s suites),
    logged to its own MLflow run for the report's character-task and diagnostics pages."""

    suite: list[str] = field(default_factory=list)  # chars, diagnostics
    languages: list[str] | None = None  # default: the run's evaluation languages
    per_task: int = 20


@dataclass
class Cell:
    id: str
    arch: str
    budget_kind: str  # data | compute
    budget: float  # bytes or FLOPs
    budget_label: str
    mixture_name: str
    mixture: dict[str, float]
    vocab_size: int
    split: str
    seed: int
    phase: str = "target"  # or "pretrain": the warm-start source of other cells
    pretrain: str | None = None  # id of the pretrain cell this one starts from

    def params(self) -> dict:
        return {"arch": self.arch, f"{self.budget_kind}_budget": self.budget_label, "mixture": self.mixture_name,
                "vocab_size": self.vocab_size, "split": self.split, "seed": self.seed, "phase": self.phase}


@dataclass
class StudySpec:
    name: str
    path: Path
    description: str
    base: dict
    models: dict[str, dict]
    sizing: SizingSpec
    axes: dict[str, Any]
    tune: TuneSpec
    objective: ObjectiveSpec
    sampler: SamplerSpec
    pruner: PrunerSpec
    faults: FaultSpec
    pretrain: PretrainSpec | None
    evaluate: EvaluateSpec
    launcher: str | None  # how a trial process starts, e.g. "torchrun --nproc-per-node 8 -m aunet_lab.sweep.trial {trial_dir}"
    output_dir: str
    tracking_uri: str | None
    raw: dict
    overrides: list[str] = field(default_factory=list)  # sweep --set, recorded on the study's run

    @property
    def folder(self) -> Path:
        """Where the study's journal, lock, trial folders and summary live."""
        return Path(self.output_dir) / self.name

    def cells(self) -> list[Cell]:
        ax = self.axes
        budget_kind = "compute" if "compute_budget" in ax else "data"
        budgets = ax.get(f"{budget_kind}_budget")
        mixtures = ax["mixture"]
        out = []
        for arch, budget, mix, vocab, split, seed in itertools.product(
                ax["arch"], budgets, list(mixtures), ax.get("vocab_size", [None]), ax.get("split", [None]),
                ax.get("seed", [None])):
            vocab = vocab if vocab is not None else (self.base.get("data") or {}).get("vocab_size", 4096)
            split = split if split is not None else self.base.get("model", {}).get("aunet", {}).get("split", "word")
            seed = seed if seed is not None else self.base.get("trainer", {}).get("seed", 0)
            label = budget if isinstance(budget, str) else f"{float(budget):.0e}"
            value = _bytes(budget) if budget_kind == "data" else float(budget)
            parts = [arch, label.replace("+", ""), mix]
            # The vocabulary only matters to BPE and the split function only to AU-Net: the other arm
            # gets one cell for all their values (same id, dropped below).
            if arch == "bpe" and "vocab_size" in ax:
                parts.append(f"v{vocab}")
            if arch != "bpe" and len(ax.get("split", [])) > 1:
                parts.append(split_label(split))
            if len(ax.get("seed", [])) > 1:
                parts.append(f"s{seed}")
            cell_id = "-".join(re.sub(r"[^A-Za-z0-9.]+", "", p) for p in parts)
            out.append(Cell(cell_id, arch, budget_kind, value, label, mix, dict(mixtures[mix]), int(vocab), split,
                            int(seed)))
        seen, unique = set(), []
        for c in out:
            if c.id not in seen:
                seen.add(c.id)
                unique.append(c)
        return self._pretrain_cells(unique) + unique if self.pretrain else unique

    def _pretrain_cells(self, cells: list[Cell]) -> list[Cell]:
        """One pretraining cell per arm (architecture, and the vocabulary, split and seed it trains
        with); each target cell points at its own."""
        out: dict[str, Cell] = {}
        p = self.pretrain
        for c in cells:
            parts = ["pretrain", c.arch]
            if c.arch == "bpe" and "vocab_size" in self.axes:
                parts.append(f"v{c.vocab_size}")
            if c.arch != "bpe" and len(self.axes.get("split", [])) > 1:
                parts.append(split_label(c.split))
            if len(self.axes.get("seed", [])) > 1:
                parts.append(f"s{c.seed}")
            cell_id = "-".join(re.sub(r"[^A-Za-z0-9.]+", "", x) for x in parts)
            c.pretrain = cell_id
            if cell_id not in out:
                out[cell_id] = Cell(cell_id, c.arch, "data", _bytes(p.data_budget), str(p.data_budget), "pretrain",
                                    dict(p.mixture), c.vocab_size, c.split, c.seed, phase="pretrain")
        return list(out.values())

    def trials_wanted(self, cell: Cell) -> tuple[int, int]:
        """(tuning trials, repeat seeds) the cell asks for."""
        if cell.phase == "pretrain":
            return self.pretrain.trials, 0
        return self.tune.trials, len(self.tune.repeat_seeds)

    def languages(self) -> list[str]:
        """Every language the study trains or evaluates on."""
        langs = {lang for mix in self.axes["mixture"].values() for lang in mix}
        if self.pretrain:
            langs |= set(self.pretrain.mixture)
        langs |= set((self.base.get("data") or {}).get("eval_languages") or [])
        langs |= set(self.evaluate.languages or [])
        return sorted(langs)


def _bytes(value) -> int:
    from aunet_lab.data.dataconfig import parse_bytes

    return parse_bytes(value, "axes.data_budget")


class _Checker:
    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, message: str):
        raise ConfigError(f"{self.path}: {key}: {message}")

    def mapping(self, data, key: str, known: tuple[str, ...] | None = None) -> dict:
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.fail(key, f"expected a mapping, got {data!r}")
        if known is not None:
            for k in data:
                if k not in known:
                    close = difflib.get_close_matches(str(k), known, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
                    self.fail(f"{key}.{k}" if key else str(k), f"unknown key{hint}")
        return data

    def grid(self, data, key: str, kind) -> list:
        if not isinstance(data, list):
            self.fail(key, f"expected a list of values, got {data!r}")
        if not data:
            self.fail(key, "empty grid: give at least one value")
        for i, v in enumerate(data):
            if not _is(v, kind):
                self.fail(f"{key}[{i}]", f"expected {_kind_name(kind)}, got {v!r}")
        if len(set(map(repr, data))) != len(data):
            self.fail(key, f"repeated values in {data!r}")
        return data


def _is(value, kind) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:  # NaN and infinities pass every comparison test silently: refused here
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, kind)


def _kind_name(kind) -> str:
    return {int: "an integer", float: "a number", str: "a string"}.get(kind, getattr(kind, "__name__", str(kind)))


def _dataclass(cls, data, key: str, check: _Checker):
    data = check.mapping(data, key, tuple(f.name for f in dataclasses.fields(cls)))
    import typing

    from aunet_lab.config import _convert

    hints = typing.get_type_hints(cls)
    kwargs = {k: _convert(v, hints[k], f"{key}.{k}", str(check.path)) for k, v in data.items()}
    return cls(**kwargs)


def load_spec(path: str | Path, overrides: dict | None = None) -> StudySpec:
    """Read and validate a study spec; every error names the file and the key."""
    from aunet_lab.training.arms import ARCHS

    from aunet_lab.yamlio import read_yaml

    path = Path(path)
    raw = read_yaml(path, ConfigError, "study spec")
    check = _Checker(path)
    if raw is not None and not isinstance(raw, dict):
        check.fail("(top level)", f"expected a mapping, got {type(raw).__name__}")
    raw = _merge(raw or {}, overrides or {})
    top = ("name", "description", "base", "models", "sizing", "axes", "tune", "objective", "sampler", "pruner",
           "faults", "pretrain", "evaluate", "launcher", "output_dir", "tracking_uri")
    check.mapping(raw, "", top)
    name = raw.get("name") or path.stem
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        check.fail("name", f"expected letters, digits, '.', '_' or '-', got {name!r}")
    base = check.mapping(raw.get("base"), "base")
    axes = check.mapping(raw.get("axes"), "axes", AXES)
    for required in ("arch", "mixture"):
        if required not in axes:
            check.fail(f"axes.{required}", "missing: every study names this axis")
    check.grid(axes["arch"], "axes.arch", str)
    for i, arch in enumerate(axes["arch"]):
        if arch not in ARCHS:
            close = difflib.get_close_matches(arch, ARCHS, n=1)
            check.fail(f"axes.arch[{i}]", f"unknown architecture {arch!r}" +
                       (f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(ARCHS)})"))
    if ("data_budget" in axes) == ("compute_budget" in axes):
        check.fail("axes", "give exactly one of data_budget (bytes) and compute_budget (FLOPs)")
    if "data_budget" in axes:
        check.grid(axes["data_budget"], "axes.data_budget", (str, int))
        for i, v in enumerate(axes["data_budget"]):
            try:
                _bytes(v)
            except ValueError as err:
                check.fail(f"axes.data_budget[{i}]", str(err).split(": ", 1)[-1])
    else:
        budgets = axes["compute_budget"]
        if isinstance(budgets, list):
            budgets = [_float(v) for v in budgets]
            axes["compute_budget"] = budgets
        check.grid(budgets, "axes.compute_budget", float)
        for i, v in enumerate(budgets):
            if v <= 0:
                check.fail(f"axes.compute_budget[{i}]", f"expected a positive number of FLOPs, got {v!r}")
    mixtures = axes["mixture"]
    if isinstance(mixtures, list):  # a list of single languages: each its own mixture
        check.grid(mixtures, "axes.mixture", str)
        mixtures = {lang: {lang: 1.0} for lang in mixtures}
        axes["mixture"] = mixtures
    check.mapping(mixtures, "axes.mixture")
    if not mixtures:
        check.fail("axes.mixture", "empty grid: give at least one mixture")
    for mix_name, mix in mixtures.items():
        check.mapping(mix, f"axes.mixture.{mix_name}")
        if not mix:
            check.fail(f"axes.mixture.{mix_name}", "empty mixture")
        for lang, w in mix.items():
            if not _is(w, float) or w <= 0:
                check.fail(f"axes.mixture.{mix_name}.{lang}", f"expected a positive weight, got {w!r}")
        total = sum(mix.values())
        if abs(total - 1) > 1e-6:
            mixtures[mix_name] = {lang: w / total for lang, w in mix.items()}
    for key, kind in (("vocab_size", int), ("seed", int), ("split", str)):
        if key in axes:
            check.grid(axes[key], f"axes.{key}", kind)
    models = check.mapping(raw.get("models"), "models", ARCHS)
    if "data_budget" in axes:
        for arch in axes["arch"]:
            if arch not in models:
                check.fail(f"models.{arch}", "missing: data-budget studies give each architecture's shape")
    tune = _dataclass(TuneSpec, raw.get("tune"), "tune", check)
    if tune.trials < 1:
        check.fail("tune.trials", f"expected at least 1 trial per cell, got {tune.trials}")
    if tune.lr is not None and (len(tune.lr) != 2 or not 0 < tune.lr[0] < tune.lr[1]):
        check.fail("tune.lr", f"expected [low, high] with 0 < low < high, got {tune.lr!r}")
    if tune.lr_factor < 1:
        check.fail("tune.lr_factor", f"expected a factor of at least 1, got {tune.lr_factor}")
    if tune.batch_size is not None:
        check.grid(tune.batch_size, "tune.batch_size", int)
    if len(tune.lr_bounds) != 2 or not all(_is(v, float) for v in tune.lr_bounds) \
            or not 0 < tune.lr_bounds[0] < tune.lr_bounds[1]:
        check.fail("tune.lr_bounds", f"expected [low, high] with 0 < low < high, got {tune.lr_bounds!r}")
    if tune.lr_anchor is not None:
        for arch, value in tune.lr_anchor.items():
            if arch not in ARCHS:
                check.fail(f"tune.lr_anchor.{arch}", f"unknown architecture (known: {', '.join(ARCHS)})")
            if not _is(value, float) or value <= 0:
                check.fail(f"tune.lr_anchor.{arch}", f"expected a positive learning rate, got {value!r}")
        if tune.anchor_compute is None or not _is(tune.anchor_compute, float) or tune.anchor_compute <= 0:
            check.fail("tune.anchor_compute", "expected the pilot's compute budget in FLOPs (a positive number) "
                                              "with tune.lr_anchor")
    if tune.batch not in ("fixed", "law"):
        check.fail("tune.batch", f"expected fixed or law, got {tune.batch!r}")
    if not _is(tune.min_steps, int) or tune.min_steps < 1:
        check.fail("tune.min_steps", f"expected an integer >= 1, got {tune.min_steps!r}")
    objective = _dataclass(ObjectiveSpec, raw.get("objective"), "objective", check)
    if objective.metric not in ("val/bpb", "val/bpb_macro"):
        check.fail("objective.metric", f"expected val/bpb or val/bpb_macro, got {objective.metric!r}")
    sampler = _dataclass(SamplerSpec, raw.get("sampler"), "sampler", check)
    if sampler.name not in SAMPLERS:
        check.fail("sampler.name", f"expected one of {', '.join(SAMPLERS)}, got {sampler.name!r}")
    pruner = _dataclass(PrunerSpec, raw.get("pruner"), "pruner", check)
    if pruner.name not in PRUNERS:
        check.fail("pruner.name", f"expected one of {', '.join(PRUNERS)}, got {pruner.name!r}")
    sizing = _dataclass(SizingSpec, raw.get("sizing"), "sizing", check)
    faults = _dataclass(FaultSpec, raw.get("faults"), "faults", check)
    if faults.max_retries < 0 or faults.heartbeat_interval < 1 or faults.grace_period <= faults.heartbeat_interval:
        check.fail("faults", "expected max_retries >= 0, heartbeat_interval >= 1 and grace_period > heartbeat_interval")
    pretrain = None
    if raw.get("pretrain") is not None:
        pretrain = _dataclass(PretrainSpec, raw.get("pretrain"), "pretrain", check)
        if "data_budget" not in axes:
            check.fail("pretrain", "warm start needs a data_budget study (a compute budget sizes each cell's model "
                                   "differently, so no pretrained weights would fit)")
        if not pretrain.mixture:
            check.fail("pretrain.mixture", "missing: the languages to pretrain on")
        for lang, w in pretrain.mixture.items():
            if not _is(w, float) or w <= 0:
                check.fail(f"pretrain.mixture.{lang}", f"expected a positive weight, got {w!r}")
        total = sum(pretrain.mixture.values())
        pretrain.mixture = {lang: w / total for lang, w in pretrain.mixture.items()}
        try:
            _bytes(pretrain.data_budget)
        except ValueError as err:
            check.fail("pretrain.data_budget", str(err).split(": ", 1)[-1])
        if pretrain.trials < 1:
            check.fail("pretrain.trials", f"expected at least 1 trial, got {pretrain.trials}")
    evaluate = _dataclass(EvaluateSpec, raw.get("evaluate"), "evaluate", check)
    for i, suite in enumerate(evaluate.suite):
        if suite not in ("chars", "diagnostics"):
            check.fail(f"evaluate.suite[{i}]", f"expected chars or diagnostics, got {suite!r} "
                                                "(test BPB per language is part of every run)")
    if evaluate.per_task < 1:
        check.fail("evaluate.per_task", f"expected at least 1 item per task, got {evaluate.per_task}")
    launcher = raw.get("launcher")
    if launcher is not None and (not isinstance(launcher, str) or "{trial_dir}" not in launcher):
        check.fail("launcher", f"expected a command containing {{trial_dir}}, got {launcher!r}")
    for key in ("description", "output_dir", "tracking_uri"):
        if key in raw and raw[key] is not None and not isinstance(raw[key], str):
            check.fail(key, f"expected a string, got {raw[key]!r}")
    spec = StudySpec(name, path, raw.get("description", ""), base, models, sizing, axes, tune, objective, sampler,
                     pruner, faults, pretrain, evaluate, launcher, raw.get("output_dir") or "runs/studies", raw.get("tracking_uri"), raw)
    _check_base(spec, check)
    return spec


def _float(v):
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def _check_base(spec: StudySpec, check: _Checker) -> None:
    """The base config and every model shape must load as a TrainConfig (same errors as ``train``)."""
    from aunet_lab.config import config_from_dict
    from aunet_lab.models.aunet import ConfigError as ModelConfigError

    from aunet_lab.data.dataconfig import DataConfigError

    try:
        # The data section's own checks too: an objective on test text, a bad evaluation cap.
        config_from_dict(spec.base, f"{spec.path}: base").data.validate()
        for arch, shape in spec.models.items():
            check.mapping(shape, f"models.{arch}")
            section = "bpe" if arch == "bpe" else "aunet"
            config_from_dict({"model": {"arch": "bpe" if arch == "bpe" else "aunet", section: shape}},
                             f"{spec.path}: models.{arch}")
    except ModelConfigError as err:
        raise ConfigError(f"{spec.path}: {err}") from None
    except DataConfigError as err:
        raise ConfigError(f"{spec.path}: base.{err}") from None
    for arch, shape in spec.models.items():
        if arch != "bpe":
            stages = len(shape.get("stages", []))
            from aunet_lab.training.arms import arch_stages

            if stages != arch_stages(arch):
                check.fail(f"models.{arch}.stages", f"{arch} needs {arch_stages(arch)} stages, got {stages}")


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
