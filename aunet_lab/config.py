"""Dataclass configs and YAML loading with path-precise errors.

``load_config(path, TrainConfig, overrides=["optim.lr=1e-3"])`` reads YAML into nested
dataclasses. Every error is one line naming the file, the key path and what was expected, with a
did-you-mean for unknown keys: ``cfg.yaml: optim.lrr: unknown key (did you mean lr?)``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aunet_lab.data.dataconfig import DataConfig
from aunet_lab.models.aunet import AUNetConfig, StageConfig


class ConfigError(ValueError):
    """A config that cannot be used: one line naming the file and key path."""


@dataclass
class BPEModelConfig:
    """The baseline's shape; its vocabulary comes from the tokenizer (``data.vocab_size``)."""

    dim: int = 64
    layers: int = 2
    heads: int = 4
    window: int | None = None
    ffn_dim: int | None = None
    ffn_multiple_of: int = 16
    rope_theta: float = 10000.0

    def __post_init__(self):
        from aunet_lab.models.aunet import MAX_DIM, MAX_LAYERS

        _check(1 <= self.dim <= MAX_DIM, "dim", f"an integer in [1, {MAX_DIM}]", self.dim)
        _check(1 <= self.layers <= MAX_LAYERS, "layers", f"an integer in [1, {MAX_LAYERS}]", self.layers)
        _check(1 <= self.heads <= self.dim and self.dim % self.heads == 0, "heads",
               f"a divisor of dim {self.dim}", self.heads)
        _check((self.dim // self.heads) % 2 == 0, "heads", "a head dim that is even (rotary embeddings)", self.heads)
        _check(self.window is None or self.window >= 1, "window", "an integer >= 1 or null", self.window)
        _check(self.ffn_dim is None or 1 <= self.ffn_dim <= 8 * MAX_DIM, "ffn_dim",
               f"an integer in [1, {8 * MAX_DIM}] or null", self.ffn_dim)
        _check(1 <= self.ffn_multiple_of <= MAX_DIM, "ffn_multiple_of", f"an integer in [1, {MAX_DIM}]",
               self.ffn_multiple_of)
        _check(self.rope_theta > 0, "rope_theta", "a positive number", self.rope_theta)


@dataclass
class ModelSection:
    arch: str = "aunet"  # aunet | bpe (the flat byte transformer is aunet with one stage)
    aunet: AUNetConfig = field(default_factory=lambda: AUNetConfig.tiny(stages=2))
    bpe: BPEModelConfig = field(default_factory=BPEModelConfig)


@dataclass
class OptimConfig:
    """AdamW, linear warmup then cosine; the paper's recipe (docs/models.md) for every arch."""

    lr: float = 3e-3
    weight_decay: float = 0.1  # on every parameter, norm gains and embeddings included, as lingua
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    warmup_steps: int = 20
    min_lr_ratio: float = 0.01  # cosine decays to lr * min_lr_ratio at max_steps
    grad_clip: float = 0.2  # max global gradient norm
    accumulate: int = 1

    def __post_init__(self):
        _check(self.lr > 0, "lr", "a positive learning rate", self.lr)
        _check(self.weight_decay >= 0, "weight_decay", "a number >= 0", self.weight_decay)
        _check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas", "two numbers in [0, 1)",
               self.betas)
        _check(self.eps > 0, "eps", "a positive number", self.eps)
        _check(self.warmup_steps >= 0, "warmup_steps", "an integer >= 0", self.warmup_steps)
        _check(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "a number in [0, 1]", self.min_lr_ratio)
        _check(self.grad_clip >= 0, "grad_clip", "a number >= 0 (0: no clipping)", self.grad_clip)
        _check(self.accumulate >= 1, "accumulate", "an integer >= 1", self.accumulate)


PRECISIONS = ("auto", "32-true", "32", "bf16-mixed", "bf16-true", "16-mixed", "16-true", "64-true", "64")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


# Lightning strategies (training/strategy.py builds them) and FSDP sharding modes, by name.
STRATEGIES = ("auto", "ddp", "fsdp", "fsdp2")
SHARDING = ("full", "hybrid", "grad_op", "none")


@dataclass
class TrainerConfig:
    max_steps: int | None = None  # default: one pass over the data budget
    val_every: int = 50  # optimizer steps between validations
    log_every: int = 1
    checkpoint_every: int = 25  # optimizer steps between checkpoints (metrics reach MLflow with them)
    precision: str = "auto"  # auto (bf16-mixed where the hardware has it), 32-true, bf16-mixed
    compile: bool = False
    seed: int = 0
    deterministic: bool = True
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"  # auto, ddp, fsdp (Lightning's FSDPStrategy, GPUs), fsdp2 (ModelParallelStrategy, CPU or GPU)
    num_nodes: int = 1
    sharding: str = "full"  # fsdp only: full, hybrid, grad_op, none
    activation_checkpointing: bool = False  # fsdp and fsdp2: recompute each block's activations in backward
    test_at_end: bool = True
    samples: int = 2  # sample generations logged at the end
    sample_bytes: int = 120
    progress: bool = True
    peak_flops: float | None = None  # per device, for MFU; default: what `aunet-lab peak` measured, if anything
    count_head_flops: bool = False  # the output head's FLOPs in compute/flops_per_byte (a study's sizing.count_head)

    # Keys that no longer exist, with what replaces them (one line instead of "unknown key").
    REMOVED = {
        "limit_val_batches": "evaluation is capped in UTF-8 bytes over whole documents, the same for every arm: "
                             "use data.eval_bytes (e.g. eval_bytes: {val: 64KB, test: 256KB}; null = the whole split)",
        "limit_test_batches": "evaluation is capped in UTF-8 bytes over whole documents, the same for every arm: "
                              "use data.eval_bytes (e.g. eval_bytes: {val: 64KB, test: 256KB}; null = the whole split)",
    }

    def __post_init__(self):
        _check(self.max_steps is None or self.max_steps >= 1, "max_steps", "an integer >= 1 or null (one pass)",
               self.max_steps)
        _check(self.val_every >= 0, "val_every", "an integer >= 0 (0: validate at the end only)", self.val_every)
        _check(self.log_every >= 1, "log_every", "an integer >= 1", self.log_every)
        _check(self.checkpoint_every >= 1, "checkpoint_every", "an integer >= 1", self.checkpoint_every)
        _check(self.precision in PRECISIONS, "precision", f"one of {', '.join(PRECISIONS)}", self.precision)
        _check(self.accelerator in ACCELERATORS, "accelerator", f"one of {', '.join(ACCELERATORS)}", self.accelerator)
        devices_ok = (self.devices >= 1 or self.devices == -1) if isinstance(self.devices, int) else \
            (self.devices == "auto" or re.fullmatch(r"-1|[0-9]+(,[0-9]+)*,?", self.devices) is not None)
        _check(devices_ok and self.devices not in ("0",), "devices", "a count >= 1, -1 (all), auto or a list "
               "such as 0,1", self.devices)
        _check(self.num_nodes >= 1, "num_nodes", "an integer >= 1", self.num_nodes)
        _check(self.samples >= 0 and self.sample_bytes >= 0, "samples", "counts >= 0",
               (self.samples, self.sample_bytes))
        _check(self.peak_flops is None or self.peak_flops > 0, "peak_flops", "a positive number or null",
               self.peak_flops)
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.sharding not in SHARDING:
            raise ValueError(f"sharding: expected one of {', '.join(SHARDING)}, got {self.sharding!r}")


@dataclass
class TrackingConfig:
    tracking_uri: str | None = None  # default sqlite:///<project>/mlruns/mlflow.db
    experiment: str = "aunet-lab"
    run_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    output_dir: str = "runs"  # checkpoints land in <output_dir>/<run name>/


# --------------------------------------------------------------------------------------------
# Generic YAML -> dataclass conversion
# --------------------------------------------------------------------------------------------


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp, where: str, source: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _convert(value, option, where, source)
            except ConfigError as err:
                errors.append(err)
        raise errors[-1] if len(errors) == 1 else ConfigError(
            f"{source}: {where}: expected {' or '.join(_type_name(a) for a in args if a is not type(None))}"
            f"{' or null' if type(None) in args else ''}, got {_short(value)}")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where, source)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {where}: expected a list, got {_short(value)}")
        return [_convert(v, args[0] if args else Any, f"{where}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {where}: expected a mapping, got {_short(value)}")
        kt, vt = args if args else (Any, Any)
        return {_convert(k, kt, f"{where}", source): _convert(v, vt, f"{where}.{k}", source) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {where}: expected true or false, got {_short(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {where}: expected an integer, got {_short(value)}")
        return value
    if tp is float:
        number = value
        if isinstance(value, str):
            try:  # YAML 1.1 reads 3e-3 (no dot) as a string
                number = float(value)
            except ValueError:
                pass
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise ConfigError(f"{source}: {where}: expected a number, got {_short(value)}")
        if not math.isfinite(number):  # a NaN learning rate or weight trains nothing useful, silently
            raise ConfigError(f"{source}: {where}: expected a finite number, got {_short(value)}")
        return float(number)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {where}: expected a string, got {_short(value)}")
        return value
    return value


def _short(value: Any, limit: int = 60) -> str:
    """A value for an error message, cut to ``limit`` characters."""
    import reprlib

    # reprlib: a value built from aliases may be huge; its full repr is never made.
    cut = reprlib.Repr()
    cut.maxlevel, cut.maxlist, cut.maxdict, cut.maxstring, cut.maxother = 3, 4, 4, limit, limit
    text = cut.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check(condition: bool, key: str, expected: str, value: Any) -> None:
    if not condition:
        raise ValueError(f"{key}: expected {expected}, got {_short(value)}")


def _unknown(key: str, known: list[str], where: str, source: str) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else f" (expected one of: {', '.join(known)})"
    return ConfigError(f"{source}: {where}: unknown key{hint}")


def _build(cls, data: Any, where: str, source: str):
    if data is None:
        data = {}
    if dataclasses.is_dataclass(data):
        data = dataclasses.asdict(data)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {where or '(top level)'}: expected a mapping, got {_short(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key in getattr(cls, "REMOVED", {}):
            raise ConfigError(f"{source}: {path}: no longer supported; {cls.REMOVED[key]}")
        if key not in fields:
            raise _unknown(str(key), list(fields), path, source)
        default = _default(fields[key])
        if isinstance(value, dict) and dataclasses.is_dataclass(default):
            # A partial section keeps the section's other defaults; fields that are themselves sections
            # merge the same way one level down, and data-valued mappings (a mixture) are replaced.
            value = {**dataclasses.asdict(default), **value}
        kwargs[key] = _convert(value, hints[key], path, source)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        message = str(err).split("\n")[0]
        if where and message.split(":", 1)[0] in fields:  # "max_steps: ..." -> "trainer.max_steps: ..."
            raise ConfigError(f"{source}: {where}.{message}") from None
        raise ConfigError(f"{source}: {where or '(top level)'}: {message}") from None


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _set_path(tree: dict, dotted: str, value: Any, source: str, cls) -> None:
    parts = dotted.split(".")
    node, node_cls = tree, cls
    for i, part in enumerate(parts):
        path = ".".join(parts[: i + 1])
        if node_cls is not None and dataclasses.is_dataclass(node_cls):
            names = [f.name for f in dataclasses.fields(node_cls)]
            if part in getattr(node_cls, "REMOVED", {}):
                raise ConfigError(f"{source}: {path}: no longer supported; {node_cls.REMOVED[part]}")
            if part not in names:
                raise _unknown(part, names, path, source)
            hint = typing.get_type_hints(node_cls)[part]
            options = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
            node_cls = next((a for a in options if dataclasses.is_dataclass(a)), None)
        else:
            node_cls = None
        if i == len(parts) - 1:
            node[part] = value
        else:
            child = node.get(part)
            if dataclasses.is_dataclass(child):
                child = dataclasses.asdict(child)
            if child is None:
                child = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{source}: {path}: is not a mapping, cannot set {dotted}")
            node[part] = child
            node = child


def parse_overrides(items: list[str], example: str = "") -> list[tuple[str, object]]:
    """``--set KEY.PATH=VALUE`` items as (key path, value parsed as YAML; the raw text if not YAML)."""
    from aunet_lab.yamlio import YAMLBoundsError, parse_yaml

    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip() or not all(k.strip() for k in key.split(".")):
            raise ConfigError(f"--set {item!r}: expected KEY.PATH=VALUE{example}")
        try:
            value = parse_yaml(raw) if raw.strip() else ""
        except YAMLBoundsError as err:
            raise ConfigError(f"--set {key.strip()}: {err}") from None
        except yaml.YAMLError:
            value = raw
        out.append((key.strip(), value))
    return out


def load_config(path: str | Path | None, cls=None, overrides: list[str] | None = None):
    """Read a YAML file (or nothing: defaults) into ``cls`` (default :class:`TrainConfig`), then apply
    ``KEY.PATH=VALUE`` overrides (values parsed as YAML)."""
    cls = cls or TrainConfig
    source = str(path) if path is not None else "(defaults)"
    data: dict = {}
    if path is not None:
        from aunet_lab.yamlio import read_yaml

        path = Path(path)
        data = read_yaml(path, ConfigError, "config file")
        if data is None or data == {}:  # an empty file would silently train the whole default
            raise ConfigError(f"{path}: the config file is empty (expected at least a model or data section)")
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: (top level): expected a mapping")
    for key, value in parse_overrides(overrides or []):
        _set_path(data, key, value, "--set", cls)
    return _build(cls, data, "", source)


def config_from_dict(data: dict, source: str, cls=None):
    """A config from an already-parsed mapping (a study's base, a trial's resolved config)."""
    import copy

    return _build(cls or TrainConfig, copy.deepcopy(data), "", source)


def to_plain(config) -> dict:
    return dataclasses.asdict(config)


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 0.1}}`` -> ``{"optim.lr": 0.1}`` (lists of mappings by index)."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, v in enumerate(value):
                out.update(flatten(v, f"{name}.{i}."))
        else:
            out[name] = value
    return out


def dump_yaml(config) -> str:
    return yaml.safe_dump(to_plain(config), sort_keys=False, allow_unicode=True)


__all__ = ["ConfigError", "TrainConfig", "ModelSection", "BPEModelConfig", "OptimConfig", "TrainerConfig",
           "TrackingConfig", "DataConfig", "AUNetConfig", "StageConfig", "load_config", "flatten", "dump_yaml",
           "to_plain"]
