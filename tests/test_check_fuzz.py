"""``--check`` under mutation (issue 17): valid configs, study specs and manifests are mutated (wrong
types, NaN and infinities, negative and zero values, huge numbers, unknown or missing keys, wrong
encodings, truncation, aliases and alias bombs) and checked in process through ``cli.main``. Each
answer is a valid plan (exit 0) or one error line of at most 300 characters (exit 2): never an
exception, never a hang. A sample of 20 also runs the real CLI in subprocesses, which must answer
exactly as in process."""

import contextlib
import io
import random
import signal
import subprocess
import sys

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from test_bad_inputs import BOMB, lab  # noqa: F401 (lab: the module fixture with a prepared corpus)

VALUES = [float("nan"), float("inf"), float("-inf"), -1, 0, -0.5, 1e308, 10**12, "", "x" * 400, None, [], {},
          True, "nan", "-5", [1, 2], {"unknown": 1}, "é\u0000∞", 3.5]
OPS = ["keep", "replace", "replace", "delete", "unknown_key", "wrap_in_list"]
TEXT_OPS = ["none", "none", "truncate", "bad_bytes", "nul", "alias", "bomb", "tab"]


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


def mutate(doc, path_pick: int, op: str, value_pick: int, text_op: str, where: float) -> bytes:
    import copy

    doc = copy.deepcopy(doc)
    paths = [p for p in _paths(doc) if p]
    path = paths[path_pick % len(paths)]
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    value = VALUES[value_pick % len(VALUES)]
    if op == "replace":
        parent[last] = value
    elif op == "delete":
        del parent[last]
    elif op == "unknown_key" and isinstance(parent, dict):
        parent[f"no_such_key_{value_pick}"] = value
    elif op == "wrap_in_list":
        parent[last] = [parent[last]]
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    if text_op == "alias" and isinstance(doc, dict) and len(doc) > 1:
        keys = list(doc)
        first, second = keys[0], keys[-1]  # the second section becomes an alias of the first
        lines = text.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith(f"{first}:"))
        lines[start] = lines[start].replace(f"{first}:", f"{first}: &anchor", 1)
        text = "\n".join(lines) + f"\n{second}: *anchor\n"
        text = text.replace(f"{second}:", "_dup_:", 1) if text.count(f"{second}:") > 1 else text
    raw = text.encode()
    cut = int(where * len(raw))
    if text_op == "truncate":
        raw = raw[:cut]
    elif text_op == "bad_bytes":
        raw = raw[:cut] + b"\xff\xc3(" + raw[cut:]
    elif text_op == "nul":
        raw = raw[:cut] + b"\x00" + raw[cut:]
    elif text_op == "bomb":
        raw = BOMB.encode() + raw
    elif text_op == "tab":
        raw = raw[:cut] + b"\n\t- x: [" + raw[cut:]
    return raw


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang("no answer within 20 s")


def check_in_process(argv):
    from aunet_lab.cli import main

    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(20)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, out.getvalue(), err.getvalue()


def assert_answer(code, out, err):
    if code == 0:
        assert out.startswith("check passed"), out[-500:]
    else:
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, (code, err[-2000:])
        assert lines[0].startswith("error: ") and len(lines[0]) <= 300, lines[0]


def targets(lab):
    root, manifest, cache = lab
    return {
        "config": (yaml.safe_load((root / "good.yaml").read_text()), lambda p: ["train", p, "--check"]),
        "spec": (yaml.safe_load((root / "study.yaml").read_text()), lambda p: ["sweep", p, "--check"]),
        "manifest": (yaml.safe_load(manifest.read_text()),
                     lambda p: ["data", "prepare", p, "--cache", cache, "--check"]),
    }


mutation = st.tuples(st.sampled_from(["config", "spec", "manifest"]), st.integers(0, 10_000), st.sampled_from(OPS),
                     st.integers(0, 100), st.sampled_from(TEXT_OPS), st.floats(0, 1))


def test_mutated_inputs_get_a_plan_or_one_line(lab, tmp_path_factory):
    found = {"pass": 0, "error": 0}
    folder = tmp_path_factory.mktemp("fuzz")
    kinds = targets(lab)

    @settings(max_examples=300, deadline=None, database=None)
    @given(mutation)
    def run(case):
        kind, path_pick, op, value_pick, text_op, where = case
        doc, argv = kinds[kind]
        path = folder / f"{kind}.yaml"
        path.write_bytes(mutate(doc, path_pick, op, value_pick, text_op, where))
        code, out, err = check_in_process(argv(path))
        assert_answer(code, out, err)
        found["pass" if code == 0 else "error"] += 1

    run()
    assert found["pass"] and found["error"]  # the mutations reach both answers


def test_a_sample_of_twenty_through_the_real_cli_answers_as_in_process(lab, tmp_path):
    rng = random.Random(17)
    kinds = targets(lab)
    cases = []
    for i in range(20):
        kind = ["config", "spec", "manifest"][i % 3]
        doc, argv = kinds[kind]
        path = tmp_path / f"{i:02d}-{kind}.yaml"
        path.write_bytes(mutate(doc, rng.randrange(10_000), rng.choice(OPS), rng.randrange(100),
                                rng.choice(TEXT_OPS), rng.random()))
        cases.append([str(a) for a in argv(path)])
    procs = [subprocess.Popen([sys.executable, "-m", "aunet_lab.cli", *argv], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for argv in cases]
    for argv, proc in zip(cases, procs):
        out, err = proc.communicate(timeout=120)
        assert_answer(proc.returncode, out, err)
        code, _, in_err = check_in_process(argv)
        assert (proc.returncode, err.strip()) == (code, in_err.strip()), argv
