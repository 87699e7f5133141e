"""Trial processes forked from a server that has imported the heavy libraries once.

A trial started as ``python -m aunet_lab.sweep.trial DIR`` spends about 10 s importing torch,
Lightning, MLflow and Optuna before it trains, more than a smoke trial trains (docs/performance.md).
The worker instead starts one server (``python -m aunet_lab.sweep.forkserver``) that imports them
and then forks a child per trial; the child takes the trial's environment, working folder and log
and runs :func:`aunet_lab.sweep.trial.main`. To everything that watches it the child is an ordinary
trial process: its own pid, signals, an exit status (or the signal that killed it), and death with
the worker (the server exits when the worker's end of its pipe closes; a child dies with the server).

The server runs no tensor operation, so a child inherits no thread pool or accelerator context.
``AUNET_LAB_TRIAL_START=spawn`` starts every trial as a fresh interpreter instead; a spec's
``launcher`` (torchrun, srun) always does.

Protocol: one JSON object per line. Worker -> server ``{"id", "trial_dir", "env", "cwd", "log"}``;
server -> worker ``{"ready": true}`` once, then ``{"id", "pid"}`` per fork and ``{"pid", "exit"}`` per
child that ended (``exit`` < 0: killed by that signal, as in subprocess).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading

PRELOAD = ("torch", "lightning.pytorch", "mlflow", "mlflow.store.tracking.sqlalchemy_store", "optuna",
           "aunet_lab.sweep.trial", "aunet_lab.training.run", "aunet_lab.training.module",
           "aunet_lab.data.datamodule", "aunet_lab.training.tracking", "aunet_lab.training.callbacks")


START_MODES = ("fork", "spawn")


def use_fork_server() -> bool:
    """``AUNET_LAB_TRIAL_START``: ``fork`` (default; Linux only, elsewhere it falls back to
    ``spawn``) or ``spawn``; anything else is refused (ConfigError, one line)."""
    mode = os.environ.get("AUNET_LAB_TRIAL_START") or "fork"
    if mode not in START_MODES:
        from aunet_lab.config import ConfigError

        raise ConfigError(f"AUNET_LAB_TRIAL_START: expected {' or '.join(START_MODES)}, got {mode!r}")
    return mode == "fork" and hasattr(os, "fork") and sys.platform == "linux"


# ---------------------------------------------------------------- the server process

def _send(out, message: dict) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _die_with_parent() -> None:
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _child(request: dict, server_pid: int, keep_closed: list[int]) -> None:
    """In the forked child: become the trial process; never returns."""
    code = 1
    try:
        _die_with_parent()
        if os.getppid() != server_pid:  # the server died before the line above
            os._exit(137)
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for fd in keep_closed:
            os.close(fd)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = [sys.executable, "-m", "aunet_lab.sweep.trial", request["trial_dir"]]
        from aunet_lab.sweep.trial import main

        code = main([request["trial_dir"]])
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
    except KeyboardInterrupt:  # like an interpreter that dies of SIGINT: the status says so
        _finish()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    _finish()
    os._exit(code)


def _finish() -> None:
    import atexit

    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass


def serve() -> None:
    import importlib

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the trials (same process group), not the server
    for name in PRELOAD:
        importlib.import_module(name)
    out = sys.stdout
    inp = sys.stdin.fileno()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    me = os.getpid()
    _send(out, {"ready": True, "threads": threading.active_count()})
    pending = b""
    while True:
        ready, _, _ = select.select([inp, wake_r], [], [])
        if wake_r in ready:
            try:
                while os.read(wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                _send(out, {"pid": pid, "exit": -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)})
        if inp in ready:
            data = os.read(inp, 1 << 16)
            if not data:  # the worker is gone: exit, and the children die with this process
                return
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                out.flush()
                pid = os.fork()
                if pid == 0:
                    _child(request, me, [wake_r, wake_w])  # stdin and stdout: replaced in the child
                _send(out, {"id": request["id"], "pid": pid})


# ---------------------------------------------------------------- the worker's side

class ForkedTrial:
    """The part of ``subprocess.Popen`` the sweep runner uses, for a child of the fork server."""

    def __init__(self, server: "ForkServer", pid: int, args: list[str]):
        self.server, self.pid, self.args = server, pid, args

    @property
    def returncode(self) -> int | None:
        return self.server.exit_of(self.pid)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        with self.server.changed:
            if not self.server.changed.wait_for(lambda: self.returncode is not None, timeout):
                raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """Started once per sweep process (its imports overlap the sweep's own setup); ``start`` blocks
    until it is ready. ``launch`` returns a :class:`ForkedTrial`, or None if the server is unusable
    (the caller then starts the trial as a fresh interpreter)."""

    def __init__(self):
        self.changed = threading.Condition()
        self._write = threading.Lock()
        self._pids: dict[int, int] = {}
        self._exits: dict[int, int] = {}
        self._next = 0
        self.ready = False
        self.dead = False
        self.proc = subprocess.Popen([sys.executable, "-m", "aunet_lab.sweep.forkserver"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env={**os.environ, "PYTHONHASHSEED": "0"}, text=True)
        threading.Thread(target=self._read, name="fork-server", daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            with self.changed:
                if message.get("ready"):
                    self.ready = True
                elif "id" in message:
                    self._pids[message["id"]] = message["pid"]
                elif "exit" in message:
                    self._exits[message["pid"]] = message["exit"]
                self.changed.notify_all()
        with self.changed:  # the server is gone, and its children with it
            self.dead = True
            self.changed.notify_all()

    def exit_of(self, pid: int) -> int | None:
        code = self._exits.get(pid)
        if code is None and self.dead:
            return -signal.SIGKILL
        return code

    def launch(self, trial_dir: str, env: dict, log: str, args: list[str]) -> ForkedTrial | None:
        with self.changed:
            self.changed.wait_for(lambda: self.ready or self.dead)
            if self.dead:
                return None
            self._next += 1
            ident = self._next
        request = {"id": ident, "trial_dir": trial_dir, "env": dict(env), "cwd": os.getcwd(), "log": log}
        try:
            with self._write:
                self.proc.stdin.write(json.dumps(request) + "\n")
                self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        with self.changed:
            self.changed.wait_for(lambda: ident in self._pids or self.dead)
            pid = self._pids.pop(ident, None)
        return ForkedTrial(self, pid, args) if pid is not None else None

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


if __name__ == "__main__":
    serve()
