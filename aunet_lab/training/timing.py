"""Where a run's wall time goes: a clock that splits the time since the process started into named
phases (process start and imports, store, data, tokenizer, training steps, validation, checkpoints,
test, export and samples). ``train`` writes the result to ``timings.json`` in the run folder and to
MLflow as ``time/<phase>`` metrics; ``benchmarks/trial_breakdown.py`` reads it for a smoke study.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path


def seconds_since_process_start() -> float | None:
    """From /proc (Linux, 10 ms resolution); None elsewhere. A forked process starts at its fork."""
    try:
        with open("/proc/self/stat") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


class PhaseClock:
    """``mark(name)`` books the time since the previous mark (less the nested phases timed meanwhile)
    to ``name``; ``phase(name)`` (or ``begin``/``end``) times a nested stretch, such as a validation
    inside the training loop. The first mark counts from the process start."""

    def __init__(self):
        self.origin = time.time() - (seconds_since_process_start() or 0.0)
        self.last = self.origin
        self.nested = 0.0
        self.seconds: dict[str, float] = {}
        self._open: dict[str, float] = {}

    def _add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + max(0.0, seconds)

    def mark(self, name: str) -> None:
        now = time.time()
        self._add(name, now - self.last - self.nested)
        self.last, self.nested = now, 0.0

    def begin(self, name: str) -> None:
        self._open[name] = time.time()

    def end(self, name: str) -> None:
        started = self._open.pop(name, None)
        if started is not None:
            took = time.time() - started
            self._add(name, took)
            self.nested += took

    @contextmanager
    def phase(self, name: str):
        self.begin(name)
        try:
            yield
        finally:
            self.end(name)

    def total(self) -> float:
        return time.time() - self.origin

    def as_dict(self) -> dict:
        return {"seconds": {k: round(v, 3) for k, v in self.seconds.items()}, "total": round(self.total(), 3)}

    def write(self, path: Path) -> dict:
        data = self.as_dict()
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
        return data


TRAINING_PHASES = ("training steps", "validation", "test")  # what a run is for; the rest is fixed cost
