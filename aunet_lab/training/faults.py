"""Stopping a run: a non-finite loss, a signal, and deterministic fault points for the kill-matrix tests.

``AUNET_LAB_FAULT=POINT`` sends this process ``AUNET_LAB_FAULT_SIGNAL`` (default SIGKILL) when it
reaches POINT: ``step:N`` (after optimizer step N), ``fit_end`` (training done, test not started),
``test`` (during the test pass), ``final_save`` (the final checkpoint half written). In a sweep's
trials, ``AUNET_LAB_FAULT_RUN=GLOB`` limits it to the trials whose run name matches. Unset, it
costs one dictionary lookup per point.
"""

from __future__ import annotations

import os
import signal
import threading


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite; the message says at which step."""


class Interrupted(BaseException):
    """SIGTERM or SIGINT asked the run to stop (BaseException, like KeyboardInterrupt: no
    ``except Exception`` swallows it). ``exit_code`` is the shell's 128 + signal number."""

    def __init__(self, signum: int, step: int | None = None, saved: bool = False):
        self.signum = signum
        self.step = step
        self.saved = saved
        self.run_id: str | None = None  # the MLflow run it marked KILLED, if one existed
        super().__init__(self.describe())

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def describe(self) -> str:
        where = f" at step {self.step}" if self.step is not None else ""
        saved = "; checkpoint saved there" if self.saved else ""
        return f"stopped by {self.name}{where}{saved}"


def reach(point: str) -> None:
    if os.environ.get("AUNET_LAB_FAULT") == point:
        name = os.environ.get("AUNET_LAB_FAULT_SIGNAL", "SIGKILL")
        os.kill(os.getpid(), getattr(signal, name))


class StopRequest:
    """SIGTERM/SIGINT handlers for one run. Inside the training loop a signal only sets ``signum``
    (the loop stops at the next optimizer step, after saving a checkpoint there); anywhere else it
    raises :class:`Interrupted` at once. A repeated signal is ignored: the stop is under way."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum: int | None = None
        self.deferred = False  # True while the training loop can stop cleanly by itself
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            return
        self.signum = signum
        if not self.deferred:
            raise Interrupted(signum)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
