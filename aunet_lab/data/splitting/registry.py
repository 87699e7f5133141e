"""The registry of split functions by name, and resolving a spec (a registered name, ``regex:PATTERN``,
``module.path:callable`` or a callable) to a :class:`SplitFunction`."""

from __future__ import annotations

import dataclasses
import functools
import importlib
from typing import Callable, Sequence

import regex

from aunet_lab.data.splitting.split_function import MAX_SUPPORTED_LEVEL, SplitFunction, SplitSpecError
from aunet_lab.data.splitting.stride import StrideSplit
from aunet_lab.data.splitting.user_defined import CallableSplit, RegexSplit
from aunet_lab.data.splitting.word import ScriptAwareSplit, WordSplit


@dataclasses.dataclass(frozen=True)
class _Registered:
    factory: Callable[[str | None], SplitFunction]
    description: str
    needs_argument: bool = False


_REGISTRY: dict[str, _Registered] = {}


def register_split_function(name: str, description: str, needs_argument: bool = False):
    """Decorator: register ``factory(args: str | None) -> SplitFunction`` under ``name``.

    The spec ``"name:args"`` passes ``"args"`` to the factory; a bare ``"name"`` passes None
    (``needs_argument``: the bare name is refused, e.g. ``entropy`` without its model's path).
    """

    def wrap(factory):
        if not regex.fullmatch(r"[a-z][a-z0-9_-]*", name):
            raise ValueError(f"split function name {name!r} must be lower-case letters, digits, - or _")
        _REGISTRY[name] = _Registered(factory, description, needs_argument)
        return factory

    return wrap


def list_split_functions(with_argument: bool = False) -> list[str]:
    """Names of the registered split functions usable as they are (``with_argument``: also those
    that need one, like ``entropy:PATH``)."""
    return sorted(name for name, r in _REGISTRY.items() if with_argument or not r.needs_argument)


def describe_split_functions() -> dict[str, str]:
    return {name: _REGISTRY[name].description for name in list_split_functions(with_argument=True)}


def registering_module(name: str) -> str | None:
    """The module that registered the split function ``name`` (its factory's module), or None if no
    split function has that name."""
    if name not in _REGISTRY:
        return None
    return getattr(_REGISTRY[name].factory, "__module__", "") or ""


# --------------------------------------------------------------------------------------------
# Built-ins
# --------------------------------------------------------------------------------------------


def _parse_ints(args: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in args.split(","))
    except ValueError:
        raise ValueError(f"expected comma-separated integers for {what}, got {args!r}") from None
    if not values or any(v < 1 for v in values) or list(values) != sorted(set(values)):
        raise ValueError(f"expected strictly increasing positive integers for {what}, got {args!r}")
    if len(values) > MAX_SUPPORTED_LEVEL:
        raise ValueError(f"at most {MAX_SUPPORTED_LEVEL} levels, got {len(values)}")
    return values


def _parse_ints_any(args: str, what: str, count: int) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in args.split(","))
    except ValueError:
        raise ValueError(f"expected {count} comma-separated integers for {what}, got {args!r}") from None
    if len(values) != count or any(v < 1 for v in values):
        raise ValueError(f"expected {count} positive integers for {what}, got {args!r}")
    return values


@register_split_function(
    "word",
    "the paper's rule: units of 1, 2, 4 words (word:1,2 for other groupings); digit chunks, "
    "punctuation and newlines at the deepest level; stable",
)
def _word(args):
    groups = _parse_ints(args, "word groups") if args else (1, 2, 4)
    return WordSplit(groups, name="word" + (f":{args}" if args else ""))


@register_split_function(
    "script",
    "word, plus units of 2 Han/Kana letters, 2 Thai/Lao/Khmer/Myanmar letters, 4 Hangul syllables "
    "inside unspaced runs (script:cjk,sea,hangul to change)",
)
def _script(args):
    if not args:
        return ScriptAwareSplit()
    sizes = _parse_ints_any(args, "script chunk sizes (cjk,sea,hangul)", 3)
    return ScriptAwareSplit(*sizes, name=f"script:{args}")


@register_split_function(
    "stride",
    "fixed stride: a unit every k bytes, the paper's byte[::k] baseline (stride:4 or stride:4,16)",
)
def _stride(args):
    return StrideSplit(_parse_ints(args, "strides") if args else (4,), name="stride" + (f":{args}" if args else ""))


@register_split_function(
    "entropy",
    "learned from data: a unit ends where a small byte model's next-byte entropy is high (entropy:PATH, "
    "a model from `aunet-lab split train-entropy`)",
    needs_argument=True,
)
def _entropy(args):
    if not args:
        raise ValueError("expected entropy:PATH (a boundary model from `aunet-lab split train-entropy`)")
    from aunet_lab.data.splitting.entropy import EntropySplit

    return EntropySplit.load(args)


# --------------------------------------------------------------------------------------------
# Resolving specs
# --------------------------------------------------------------------------------------------

_PROBE_TEXT = "Hello world, 12345!\n  Wie geht's? 你好世界。\n"


def _import_callable(spec: str):
    module_name, _, attr = spec.partition(":") if ":" in spec else spec.rpartition(".")
    if not module_name or not attr:
        raise SplitSpecError(f"split function {spec!r}: expected module.path:callable")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise SplitSpecError(f"split function {spec!r}: cannot import module {module_name!r} ({err})") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SplitSpecError(f"split function {spec!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


@functools.lru_cache(maxsize=256)
def _resolve_string(spec: str) -> SplitFunction:
    spec = spec.strip()
    if not spec:
        raise SplitSpecError("split function '': empty spec (try one of: "
                             + ", ".join(list_split_functions(with_argument=True)) + ")")
    head, sep, args = spec.partition(":")
    if head in ("regex", "re"):
        if not args:
            raise SplitSpecError(f"split function {spec!r}: empty regex")
        try:
            return RegexSplit([args], name=spec)
        except regex.error as err:
            raise SplitSpecError(f"split function {spec!r}: regex does not compile: {err}") from None
    if head in _REGISTRY:
        try:
            return _REGISTRY[head].factory(args if sep else None)
        except ValueError as err:
            raise SplitSpecError(f"split function {spec!r}: {err}") from None
    if regex.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+", spec):
        obj = _import_callable(spec)
        if isinstance(obj, SplitFunction):
            return _validated(obj)
        if isinstance(obj, type) and issubclass(obj, SplitFunction):
            return _validated(obj())
        if callable(obj):
            return _validated(CallableSplit(obj, name=spec))
        raise SplitSpecError(f"split function {spec!r}: {type(obj).__name__} is not callable")
    known = ", ".join(list_split_functions(with_argument=True))
    raise SplitSpecError(
        f"split function {spec!r}: unknown name (known: {known}; or regex:PATTERN, or module.path:callable)"
    )


def get_split_function(spec: str | SplitFunction | Callable[[str], Sequence[int]]) -> SplitFunction:
    """Resolve a spec: a registered name (``word``, ``script``, ``stride:4``), ``regex:PATTERN``,
    a dotted path ``module.path:callable``, a callable, or a :class:`SplitFunction`.

    User-supplied functions are probed once on a short text so a wrong return shape fails here,
    with a :class:`SplitSpecError` naming the spec.
    """
    if isinstance(spec, SplitFunction):
        return spec
    if isinstance(spec, str):
        return _resolve_string(spec)
    if callable(spec):
        return _validated(CallableSplit(spec, name=getattr(spec, "__qualname__", repr(spec))))
    raise SplitSpecError(f"split function {spec!r}: expected a name, regex:PATTERN, module.path:callable or a callable")


def _validated(split: SplitFunction) -> SplitFunction:
    if not 1 <= split.max_level <= MAX_SUPPORTED_LEVEL:
        raise SplitSpecError(
            f"split function {split.name!r}: max_level {split.max_level} outside 1..{MAX_SUPPORTED_LEVEL}"
        )
    if isinstance(split, CallableSplit):
        try:
            split.char_levels(_PROBE_TEXT)
        except SplitSpecError:
            raise
        except Exception as err:  # a user function failing on plain text is a bad spec
            raise SplitSpecError(f"split function {split.name!r}: raised {type(err).__name__}: {err}") from None
    return split

