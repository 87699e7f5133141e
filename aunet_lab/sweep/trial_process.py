"""A trial's process, seen from the worker that runs it: its command, its start (from the fork server,
or as a plain subprocess that dies with its worker), the wait that keeps its heartbeat going, and the
result it leaves; and the checks that tell whether a trial's worker or process is still alive."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

from aunet_lab.sweep.forkserver import ForkServer
from aunet_lab.sweep.storage import has_heartbeat


def trial_command(launcher: str, trial_dir: Path) -> list[str]:
    """``python -m aunet_lab.sweep.trial DIR``, or the spec's launcher (torchrun, srun, ...) around it;
    only the first process of a multi-process trial talks to Optuna."""
    if not launcher:
        return [sys.executable, "-m", "aunet_lab.sweep.trial", str(trial_dir)]
    return [part.format(trial_dir=str(trial_dir), python=sys.executable) for part in shlex.split(launcher)]


def start_trial(command: list[str], trial_dir: Path, env: dict, log, fork_server: ForkServer | None):
    """The trial's process (a ``subprocess.Popen`` or the fork server's stand-in), its output to ``log``."""
    proc = None
    if fork_server is not None:
        proc = fork_server.launch(str(trial_dir), env, str(trial_dir / "log.txt"), command)
    if proc is None:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=_die_with_parent)
    return proc


def wait_for(proc, storage, trial_id: int, heartbeat_interval: float) -> int:
    """Wait for the trial process; on RDB storages, keep its heartbeat going meanwhile."""
    if not has_heartbeat(storage):
        return proc.wait()
    while True:
        storage.record_heartbeat(trial_id)
        try:
            return proc.wait(timeout=heartbeat_interval)
        except subprocess.TimeoutExpired:
            continue


def read_result(trial_dir: str | None) -> dict:
    if not trial_dir:
        return {}
    path = Path(trial_dir) / "result.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is dead too.
    try:
        with open(f"/proc/{int(pid)}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def host() -> str:
    """This machine's name in trial records (AUNET_LAB_HOST overrides it: tests stand in for a second host)."""
    return os.environ.get("AUNET_LAB_HOST") or socket.gethostname()


def _die_with_parent() -> None:
    """In the trial process: be killed if the worker that started it dies (Linux), so a killed
    worker leaves no trial training unseen."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
