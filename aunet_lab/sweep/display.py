"""The live view of a running study on a terminal: per cell, trials done / running / pruned / failed
out of those wanted, and each running trial's bytes seen and last validation BPB (from the
``progress.json`` its process rewrites). It reads the Optuna storage, so trials that other workers
of the same study run are counted too."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from aunet_lab.training.callbacks import read_progress


@dataclass
class CellStatus:
    cell: str
    wanted: int
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: list[str] = field(default_factory=list)  # "t3 1.2 MB of 4.0 MB, val 3.214"

    @property
    def done(self) -> int:
        return self.complete + self.pruned + self.failed


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def cell_status(cell: str, wanted: int, trials, budget_bytes: int | None = None) -> CellStatus:
    """One cell's counts from its Optuna trials (retried ones left out, as in the summary), with each
    running trial's progress."""
    from optuna.trial import TrialState

    status = CellStatus(cell, wanted)
    for t in trials:
        if t.user_attrs.get("retried"):
            continue
        if t.state == TrialState.COMPLETE:
            status.complete += 1
        elif t.state == TrialState.PRUNED:
            status.pruned += 1
        elif t.state == TrialState.FAIL:
            status.failed += 1
        elif t.state == TrialState.RUNNING:
            progress = read_progress(Path(t.user_attrs["trial_dir"]) / "progress.json") \
                if t.user_attrs.get("trial_dir") else None
            text = f"t{t.number}"
            if progress:
                seen = _size(progress["bytes"])
                text += f" {seen} of {_size(budget_bytes)}" if budget_bytes else f" {seen}"
                if progress.get("val_bpb") is not None:
                    text += f", val {progress['val_bpb']:.3f}"
            else:
                text += " starting"
            status.running.append(text)
    return status


def status_table(statuses: list[CellStatus], title: str):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name in ("cell", "done", "running", "pruned", "failed", "running trials (bytes seen, last val BPB)"):
        table.add_column(name, justify="left" if name.startswith(("cell", "running t")) else "right")
    for s in statuses:
        table.add_row(s.cell, f"{s.done}/{s.wanted}", str(len(s.running)), str(s.pruned), str(s.failed),
                      "; ".join(s.running) or "-")
    return table


class StudyDisplay:
    """A rich renderable for ``rich.live.Live``: the runner's cells, read from the storage at most
    every ``every_s`` seconds."""

    def __init__(self, runner, every_s: float = 2.0):
        self.runner = runner
        self.every_s = every_s
        self._table = None
        self._at = 0.0
        self.start = time.monotonic()

    def statuses(self) -> list[CellStatus]:
        spec = self.runner.spec
        return [cell_status(p.cell.id, sum(spec.trials_wanted(p.cell)),
                            self.runner.studies[p.cell.id].get_trials(deepcopy=False), p.bytes)
                for p in self.runner.plans]

    def __rich__(self):
        if self._table is None or time.monotonic() - self._at >= self.every_s:
            elapsed = time.monotonic() - self.start
            try:
                self._table = status_table(self.statuses(), f"study {self.runner.spec.name}, {elapsed:.0f}s")
            except Exception as err:  # a storage hiccup: keep the last table, the workers report errors
                if self._table is None:
                    return f"study {self.runner.spec.name}: status unavailable ({type(err).__name__})"
            self._at = time.monotonic()
        return self._table
