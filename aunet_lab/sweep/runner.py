"""Runs a study: one Optuna study per cell in a shared storage, worker threads that ask for trials
under a lock and run each as its own process, an MLflow parent run with one child run per trial,
and a summary table at the end.

Several ``aunet-lab sweep`` processes (on one machine, or on many with a shared RDB storage and
filesystem) can work on the same study: a trial is asked for under the study folder's lock, so no
cell gets more trials than its spec asks for.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from aunet_lab.config import ConfigError, to_plain
from aunet_lab.sweep.forkserver import ForkServer, use_fork_server
from aunet_lab.sweep.plan import CellPlan, base_config, ensure_prepared, plan_study, select_cells
from aunet_lab.sweep.spec import StudySpec
from aunet_lab.sweep.storage import build_pruner, build_sampler, has_heartbeat, open_storage, storage_url


@dataclass
class TrialOutcome:
    cell: str
    number: int
    state: str  # COMPLETE, PRUNED, FAIL
    value: float | None
    seconds: float
    reason: str = ""


def study_name(spec: StudySpec, cell_id: str) -> str:
    return f"{spec.name}/{cell_id}"


def _lock(spec: StudySpec):
    from filelock import FileLock

    spec.folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(spec.folder / "schedule.lock"))


class StudyRunner:
    def __init__(self, spec: StudySpec, storage: str | None = None, workers: int = 1, console=None,
                 threads_per_trial: int | None = None, strict: bool = False, cells: list[str] | None = None):
        self.spec = spec
        self.cell_patterns = cells  # run only these cells (globs; a ladder run in parts)
        self.strict = strict  # a refused cell stops the study (default: it is skipped with its reason)
        self.refused: list[CellPlan] = []
        self.storage_url = storage_url(storage, spec.folder)
        self.workers = max(1, workers)
        self.console = console
        cores = os.cpu_count() or 1
        # AUNET_LAB_THREADS set for the sweep itself fixes each trial's threads (several sweeps on a machine)
        fixed = os.environ.get("AUNET_LAB_THREADS", "")
        self.threads_per_trial = threads_per_trial or (int(fixed) if fixed.isdigit() and int(fixed) > 0 else 0) \
            or max(1, cores // self.workers)
        self.outcomes: list[TrialOutcome] = []
        self._done = threading.Lock()
        self.plans: list[CellPlan] = []
        self.studies: dict = {}
        self._running: set[int] = set()  # trial ids this process is running now
        self._procs: dict[int, subprocess.Popen] = {}  # their processes
        self.stopping: int | None = None  # the signal that asked this process to stop
        self._wake = threading.Event()  # a trial of this process ended: waiting cells may start now
        self.fork_server: ForkServer | None = None  # trials fork from it (see forkserver.py)

    # ------------------------------------------------------------------ setup
    def prepare(self, resume: bool) -> None:
        try:
            self._prepare(resume)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stops the fork server (run() does when its trials are done)."""
        if self.fork_server is not None:
            self.fork_server.close()
            self.fork_server = None

    def _prepare(self, resume: bool) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        from aunet_lab.paths import check_folder
        from aunet_lab.sweep.storage import check_storage
        from aunet_lab.mlflow_client import check_tracking_uri, resolve_tracking_uri

        spec = self.spec
        self.base = base_config(spec)
        # Refused in one line before any corpus is prepared or any tokenizer trained.
        check_folder(spec.folder, "output_dir", ConfigError)
        check_storage(self.storage_url)
        check_tracking_uri(resolve_tracking_uri(self.base.tracking.tracking_uri))
        chosen = select_cells(spec, self.cell_patterns)  # a bad --cells is refused before any download
        if not spec.launcher and use_fork_server() and self.fork_server is None:
            self.fork_server = ForkServer()  # imports torch & co. while the corpus and plan are checked
        ensure_prepared(spec, self.base, self._say)
        self.plans = plan_study(spec, time_steps=False, cells=chosen)
        self.refused = [p for p in self.plans if not p.feasible]
        if self.refused and self.strict:
            raise ConfigError(f"{spec.path}: " + "; ".join(f"cell {p.cell.id}: {r}" for p in self.refused
                                                           for r in p.refusals) + " (--strict)")
        for p in self.refused:  # skipped with its reason; the other cells run
            self._say(f"skipped cell {p.cell.id}: {'; '.join(p.refusals)}")
        self.plans = [p for p in self.plans if p.feasible]
        if not self.plans:
            raise ConfigError(f"{spec.path}: every cell is refused (see the reasons above, or sweep --plan)")
        faults = spec.faults
        self.storage = self._open_storage((faults.heartbeat_interval, faults.grace_period))
        existing = {s.study_name for s in optuna.get_all_study_summaries(self.storage, include_best_trial=False)}
        mine = {study_name(spec, p.cell.id) for p in self.plans}
        if existing & mine and not resume:
            raise ConfigError(f"{spec.path}: study {spec.name!r} already exists in {self.storage_url}; "
                              f"pass --resume to continue it (or remove {spec.folder})")
        for i, plan in enumerate(self.plans):
            study = optuna.create_study(
                study_name=study_name(spec, plan.cell.id), storage=self.storage, direction="minimize",
                sampler=build_sampler(spec, i), pruner=build_pruner(dataclasses.asdict(spec.pruner), plan.bytes),
                load_if_exists=True)
            with warnings.catch_warnings():  # experimental since Optuna 3.2, and stable in use
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names([spec.objective.metric])  # optuna-dashboard names the objective
            for key, value in plan.cell.params().items():
                study.set_user_attr(key, value)
            self.studies[plan.cell.id] = study
        self.tracking_uri, self.parent_run_id = self._parent_run()

    def _open_storage(self, heartbeat):
        """Open (and on first use create) the storage. Workers started together on an empty database
        race to create Optuna's tables; the loser finds them made and opens them on a retry."""
        for attempt in range(5):
            try:
                with _lock(self.spec):
                    return open_storage(self.storage_url, heartbeat)
            except Exception as err:
                if attempt == 4 or "://" not in self.storage_url:
                    raise
                self._say(f"storage not ready ({type(err).__name__}); retrying")
                time.sleep(1 + attempt)

    def _say(self, message: str) -> None:
        if self.console is not None:
            self.console.print(message, highlight=False)

    def _parent_run(self) -> tuple[str, str]:
        """The study's MLflow parent run: created once (the store with it, before any worker
        starts), found again by every later or concurrent process through the study folder."""
        from aunet_lab.training.run import git_commit
        from aunet_lab.training.tracking import experiment_id
        from aunet_lab.mlflow_client import client_for, resolve_tracking_uri, source_tags

        spec = self.spec
        uri = resolve_tracking_uri(self.base.tracking.tracking_uri)
        with _lock(spec):
            client = client_for(uri)
            marker = spec.folder / "parent_run_id"
            if marker.is_file():
                run_id = marker.read_text().strip()
                run = client.get_run(run_id)
                if run.info.status == "KILLED":  # a stopped sweep, continued
                    client.set_terminated(run_id, "RUNNING")
                    if "aunet.status" in run.data.tags:
                        client.delete_tag(run_id, "aunet.status")
                return uri, run_id
            exp = experiment_id(client, spec.name, uri)
            run = client.create_run(exp, run_name=spec.name, tags={
                "aunet.study": spec.name, "aunet.kind": "study", "git.commit": git_commit(),
                **source_tags(git_commit(), "aunet-lab sweep"),
                "optuna.storage": self.storage_url, "aunet.cells": str(len(self.plans)),
                "aunet.trials_per_cell": str(spec.tune.trials),
                **({"aunet.set": json.dumps(spec.overrides)} if spec.overrides else {})})
            from mlflow.entities import Param

            params = [Param(f"axes.{k}", json.dumps(v, default=str)[:6000]) for k, v in spec.axes.items()]
            params += [Param("tune", json.dumps(dataclasses.asdict(spec.tune))),
                       Param("objective", json.dumps(dataclasses.asdict(spec.objective))),
                       Param("sampler", json.dumps(dataclasses.asdict(spec.sampler))),
                       Param("pruner", json.dumps(dataclasses.asdict(spec.pruner)))]
            client.log_batch(run.info.run_id, params=params)
            client.log_artifact(run.info.run_id, str(spec.path), "spec")
            marker.write_text(run.info.run_id + "\n")
            return uri, run.info.run_id

    # ------------------------------------------------------------------ scheduling
    def _distributions(self, plan: CellPlan) -> dict:
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        dist = {"lr": FloatDistribution(plan.lr_range[0], plan.lr_range[1], log=True)}
        if self.spec.tune.batch_size:
            dist["batch_size"] = CategoricalDistribution(list(self.spec.tune.batch_size))
        return dist

    def next_trial(self):
        """(plan, trial, repeat seed or None) for the next trial to run, or None when no cell needs
        a new trial now; asked under the study folder's lock, after dead trials are dealt with."""
        from optuna.trial import TrialState

        # Smaller budgets first (pretraining before all): a ladder stopped part-way has every
        # architecture at its lower budgets, not one architecture at all of them.
        order = sorted(self.plans, key=lambda p: (p.cell.phase != "pretrain", p.cell.budget))
        with _lock(self.spec):
            for plan in order:
                study = self.studies[plan.cell.id]
                self._reap(plan, study)
                if plan.cell.pretrain and self.warm_start(plan) is None:
                    continue  # its pretraining is still running (or failed: see finished())
                trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("retried")]
                if any(t.state == TrialState.WAITING for t in trials):  # a retry (or a repeat) queued
                    trial = self._ask(plan, study)
                    return plan, trial, trial.user_attrs.get("repeat_seed")
                tuning = [t for t in trials if "repeat_seed" not in t.user_attrs]
                wanted, repeats = self.spec.trials_wanted(plan.cell)
                if len(tuning) < wanted:
                    return plan, self._ask(plan, study), None
                if not repeats:
                    continue
                if any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in tuning):
                    continue  # the best learning rate is not known yet
                best = best_trial(tuning)
                if best is None:
                    continue
                have = {t.user_attrs["repeat_seed"] for t in trials if "repeat_seed" in t.user_attrs}
                for seed in self.spec.tune.repeat_seeds:
                    if seed not in have:
                        study.enqueue_trial(best.params, user_attrs={"repeat_seed": seed, "repeat_of": best.number})
                        return plan, self._ask(plan, study), seed
        return None

    def _ask(self, plan: CellPlan, study):
        """A new (or queued) trial of the cell, from a sampler seeded by the cell's trial count."""
        asked = len(study.get_trials(deepcopy=False))
        study.sampler = build_sampler(self.spec, self.plans.index(plan), asked)
        return self._claim(study.ask(self._distributions(plan)))

    def _claim(self, trial):
        """Mark a just-asked trial as this worker's before the lock is released, so that a worker
        dying at any later moment leaves a trial that others can recognise as dead."""
        trial.set_user_attr("host", _host())
        trial.set_user_attr("worker_pid", os.getpid())
        if has_heartbeat(self.storage):
            self.storage.record_heartbeat(trial._trial_id)
        return trial

    def _cell_finished(self, plan: CellPlan) -> bool:
        from optuna.trial import TrialState

        done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        trials = [t for t in self.studies[plan.cell.id].get_trials(deepcopy=False) if not t.user_attrs.get("retried")]
        return sum(t.state in done for t in trials) >= sum(self.spec.trials_wanted(plan.cell))

    def finished(self) -> bool:
        """Every cell has all its trials finished (complete, pruned, or failed past its retries), or
        can never start because its pretraining finished without a usable result."""
        for plan in self.plans:
            if self._cell_finished(plan):
                continue
            if plan.cell.pretrain and self.blocked(plan):
                continue
            return False
        return True

    def _pretrain_plan(self, plan: CellPlan) -> CellPlan:
        return next(p for p in self.plans if p.cell.id == plan.cell.pretrain)

    def warm_start(self, plan: CellPlan) -> str | None:
        """The checkpoint a warm-started cell starts from: its pretraining cell's best trial, once
        that cell is finished; None before."""
        source = self._pretrain_plan(plan)
        if not self._cell_finished(source):
            return None
        best = best_trial([t for t in self.studies[source.cell.id].get_trials(deepcopy=False)
                           if not t.user_attrs.get("retried")])
        return best.user_attrs.get("checkpoint") if best is not None else None

    def blocked(self, plan: CellPlan) -> bool:
        """The cell's pretraining finished, and none of its trials completed: the cell cannot run."""
        return self._cell_finished(self._pretrain_plan(plan)) and self.warm_start(plan) is None

    # ------------------------------------------------------------------ dead trials
    def _reap(self, plan: CellPlan, study) -> None:
        from optuna.trial import TrialState

        stale_ids = None
        if has_heartbeat(self.storage):
            stale_ids = set(self.storage._get_stale_trial_ids(study._study_id))
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t._trial_id in self._running:
                continue  # ours, in this process
            attrs = t.user_attrs
            reason = None
            if attrs.get("host") == _host() and attrs.get("worker_pid"):
                if not _alive(attrs["worker_pid"]):
                    reason = f"its worker (pid {attrs['worker_pid']}) died"
                elif attrs.get("pid") and not _alive(attrs["pid"]) and attrs["worker_pid"] == os.getpid():
                    reason = f"its trial process (pid {attrs['pid']}) died"
            elif stale_ids is not None and t._trial_id in stale_ids:
                reason = f"no heartbeat for {self.spec.faults.grace_period}s (worker on {attrs.get('host', '?')} lost)"
            if reason is None:
                continue
            result = _read_result(attrs.get("trial_dir"))
            if result.get("status") == "complete":  # it finished; its worker died before reporting it
                self._tell_complete(study, t._trial_id, t.number, result)
                continue
            self._fail(study, t._trial_id, t, f"dead trial: {reason}")

    def _fail(self, study, trial_id: int, trial, reason: str, retry: bool = True, counted: bool = True) -> None:
        """Mark a trial FAIL with the reason, end its MLflow run FAILED (unless it is ended already),
        and queue a retry of the same parameters (resuming from its last checkpoint) while retries
        remain; an uncounted retry (a stop the user asked for) does not use one up."""
        from optuna.trial import TrialState

        attrs = trial.user_attrs
        retries = int(attrs.get("retries", 0))
        storage = study._storage
        storage.set_trial_user_attr(trial_id, "failure", reason[:5000])
        self._fail_mlflow_run(attrs, reason)
        if retry and (retries < self.spec.faults.max_retries or not counted):
            storage.set_trial_user_attr(trial_id, "retried", True)
            extra = {k: attrs[k] for k in ("repeat_seed", "repeat_of") if k in attrs}
            study.enqueue_trial(dict(trial.params), user_attrs={
                **extra, "retry_of": trial.number, "retries": retries + int(counted),
                "resume_run": attrs.get("run_name")})
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)

    def _tell_complete(self, study, trial_id: int, number: int, result: dict) -> None:
        storage = study._storage
        for key in ("run_id", "objective", "test", "val", "checkpoint", "flops_per_byte"):
            if key in result:
                storage.set_trial_user_attr(trial_id, key, result[key])
        study.tell(number, result["objective"], skip_if_finished=True)

    def trial_config(self, plan: CellPlan, trial, repeat_seed: int | None):
        config = copy.deepcopy(plan.config)
        config.optim.lr = float(trial.params["lr"])
        if "batch_size" in trial.params:
            config.data.batch_size = int(trial.params["batch_size"])
        if repeat_seed is not None:
            config.trainer.seed = config.data.seed = repeat_seed
        config.tracking.tracking_uri = self.tracking_uri
        # A retry continues the dead trial's run folder: it resumes from its last checkpoint.
        config.tracking.run_name = trial.user_attrs.get("resume_run") or f"{plan.cell.id}-t{trial.number}"
        config.trainer.progress = False
        return config

    def run_trial(self, plan: CellPlan, trial, repeat_seed: int | None) -> TrialOutcome:
        spec = self.spec
        config = self.trial_config(plan, trial, repeat_seed)
        trial_dir = spec.folder / "trials" / plan.cell.id / f"{trial.number:04d}"
        trial_dir.mkdir(parents=True, exist_ok=True)
        (trial_dir / "result.json").unlink(missing_ok=True)
        cell = plan.cell
        tags = {"aunet.study": spec.name, "aunet.cell": cell.id, "aunet.trial": str(trial.number),
                "optuna.study": study_name(spec, cell.id), "optuna.trial_id": str(trial._trial_id),
                "aunet.budget": cell.budget_label, "aunet.budget_kind": cell.budget_kind,
                "aunet.mixture": cell.mixture_name,
                "aunet.role": "pretrain" if cell.phase == "pretrain" else "repeat" if repeat_seed is not None else "tuning"}
        init_from = self.warm_start(plan) if cell.pretrain else None
        if init_from:
            tags["aunet.pretrain_cell"] = cell.pretrain
        plan_fpb = plan.flops_per_byte
        if repeat_seed is not None or (init_from and cell.arch == "bpe"):
            # Another seed selects other documents (and BPE a warm start's tokenizer): this trial's
            # own stream, measured by the planner's function before it starts.
            from aunet_lab.sweep.plan import trial_flops
            from aunet_lab.training.checkpoint import tokenizer_beside

            tokenizer = tokenizer_beside(init_from) if init_from and cell.arch == "bpe" else None
            plan_fpb, _ = trial_flops(config, None, tokenizer)
        job = {"config": to_plain(config), "storage": self.storage_url, "study": study_name(spec, cell.id),
               "trial_id": trial._trial_id, "number": trial.number, "parent_run_id": self.parent_run_id,
               "tags": tags, "objective": self._objective(cell),
               "heartbeat": [spec.faults.heartbeat_interval, spec.faults.grace_period],
               "pruner": dataclasses.asdict(spec.pruner) if repeat_seed is None else {"name": "none"},
               "init_from": init_from, "params": {"plan.flops_per_byte": repr(plan_fpb)},
               "resume": bool(trial.user_attrs.get("resume_run")),
               "evaluate": dataclasses.asdict(spec.evaluate) if spec.evaluate.suite else None}
        (trial_dir / "trial.json").write_text(json.dumps(job, indent=1, default=str))
        for key, value in (("trial_dir", str(trial_dir)), ("run_name", config.tracking.run_name)):
            trial.set_user_attr(key, value)
        env = {**os.environ, "AUNET_LAB_THREADS": str(self.threads_per_trial), "PYTHONHASHSEED": "0",
               "OMP_NUM_THREADS": str(self.threads_per_trial)}
        start = time.monotonic()
        self._running.add(trial._trial_id)  # until it is told: other threads must not reap it
        try:
            return self._launch(plan, trial, trial_dir, env, start)
        finally:
            self._running.discard(trial._trial_id)

    def _launch(self, plan: CellPlan, trial, trial_dir: Path, env: dict, start: float) -> TrialOutcome:
        from optuna.trial import TrialState

        cell = plan.cell
        with (trial_dir / "log.txt").open("a") as log:
            command = self._command(trial_dir)
            proc = None
            if self.fork_server is not None:
                proc = self.fork_server.launch(str(trial_dir), env, str(trial_dir / "log.txt"), command)
            if proc is None:
                proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        preexec_fn=_die_with_parent)
            (trial_dir / "pid").write_text(f"{proc.pid}\n")  # for whoever watches the trials (tests, scripts)
            self._procs[trial._trial_id] = proc
            if self.stopping is not None:  # the stop came while it started
                proc.send_signal(self.stopping)
            trial.set_user_attr("pid", proc.pid)
            try:
                code = self._wait(proc, trial)
            finally:
                self._procs.pop(trial._trial_id, None)
        seconds = time.monotonic() - start
        result = _read_result(str(trial_dir))
        study = self.studies[cell.id]
        status = result.get("status")
        if status == "complete":
            self._tell_complete(study, trial._trial_id, trial.number, result)
            return TrialOutcome(cell.id, trial.number, "COMPLETE", result["objective"], seconds)
        if status == "pruned":
            trial.set_user_attr("pruned", result.get("reason", ""))
            study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
            return TrialOutcome(cell.id, trial.number, "PRUNED", None, seconds, result.get("reason", ""))
        frozen = study._storage.get_trial(trial._trial_id)
        if status == "killed" or (self.stopping is not None and code in (128 + self.stopping, -self.stopping)):
            # Stopped on request (it checkpointed): FAIL, with a retry that --resume continues from
            # that checkpoint; not counted against faults.max_retries.
            told = result.get("reason", "")  # "stopped by SIGINT at step ..." from the trial itself
            name = signal.Signals(self.stopping).name if self.stopping else (told.split()[2:3] or ["a signal"])[0]
            reason = f"interrupted by {name}; sweep --resume continues it"
            self._fail(study, trial._trial_id, frozen, reason, counted=False)
            return TrialOutcome(cell.id, trial.number, "FAIL", None, seconds, reason)
        if status == "failed":  # the run itself failed (non-finite loss): rerunning would fail again
            self._fail(study, trial._trial_id, frozen, result.get("reason", "failed"), retry=False)
            return TrialOutcome(cell.id, trial.number, "FAIL", None, seconds, result.get("reason", ""))
        how = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
        reason = f"trial process {how} (log: {trial_dir / 'log.txt'})"
        self._fail(study, trial._trial_id, frozen, reason)
        return TrialOutcome(cell.id, trial.number, "FAIL", None, seconds, reason)

    def _objective(self, cell) -> dict:
        objective = dataclasses.asdict(self.spec.objective)
        if objective.pop("on_mixture", False):
            objective["languages"] = sorted(cell.mixture)
        return objective

    def _command(self, trial_dir: Path) -> list[str]:
        """The trial's command: ``python -m aunet_lab.sweep.trial DIR``, or the spec's launcher (torchrun,
        srun, ...) around it; only the first process of a multi-process trial talks to Optuna."""
        import shlex

        if not self.spec.launcher:
            return [sys.executable, "-m", "aunet_lab.sweep.trial", str(trial_dir)]
        return [part.format(trial_dir=str(trial_dir), python=sys.executable)
                for part in shlex.split(self.spec.launcher)]

    def _wait(self, proc, trial) -> int:
        """Wait for the trial process; on RDB storages, keep its heartbeat going meanwhile."""
        if not has_heartbeat(self.storage):
            return proc.wait()
        interval = self.spec.faults.heartbeat_interval
        while True:
            self.storage.record_heartbeat(trial._trial_id)
            try:
                return proc.wait(timeout=interval)
            except subprocess.TimeoutExpired:
                continue

    def _fail_mlflow_run(self, attrs: dict, reason: str) -> None:
        """A trial that died leaves its MLflow run RUNNING: end it FAILED, with the reason. The run is
        found through the trial (set by the trial process) or the run folder's marker."""
        run_id = attrs.get("mlflow_run_id")
        if not run_id and attrs.get("trial_dir"):
            job = Path(attrs["trial_dir"]) / "trial.json"
            if job.is_file():
                config = json.loads(job.read_text())["config"]
                marker = Path(config["output_dir"]) / config["tracking"]["run_name"] / "mlflow_run_id"
                run_id = marker.read_text().strip() if marker.is_file() else None
        if not run_id:
            return
        try:
            from aunet_lab.mlflow_client import client_for

            client = client_for(self.tracking_uri)
            if client.get_run(run_id).info.status == "RUNNING":
                client.set_tag(run_id, "aunet.failure", reason[:5000])
                client.set_terminated(run_id, "FAILED")
        except Exception as err:  # the tracking server itself may be what failed
            self._say(f"could not mark MLflow run {run_id} FAILED: {err}")

    # ------------------------------------------------------------------ the loop
    def request_stop(self, signum: int) -> None:
        """SIGTERM/SIGINT: ask for no new trial, pass the signal to the running trials (they save a
        checkpoint and end KILLED), and let the workers return once those have ended."""
        if self.stopping is not None:
            return
        self.stopping = signum
        for proc in list(self._procs.values()):
            try:
                proc.send_signal(signum)
            except OSError:
                pass
        self._wake.set()

    def _worker(self, progress) -> None:
        while self.stopping is None:
            picked = self.next_trial()
            if picked is None:
                # Nothing to ask now; trials still running elsewhere may die and need a retry.
                if self.finished():
                    return
                self._wake.wait(self.spec.faults.poll_seconds)
                self._wake.clear()
                continue
            if self.stopping is not None:  # asked while this trial was picked: hand it back
                self._fail(self.studies[picked[0].cell.id], picked[1]._trial_id, picked[1],
                           "interrupted before it started", counted=False)
                return
            plan, trial, seed = picked
            outcome = self.run_trial(plan, trial, seed)
            with self._done:
                self.outcomes.append(outcome)
            self._wake.set()
            if progress is not None:
                progress(outcome)

    def run(self, progress=None) -> None:
        threads = [threading.Thread(target=self._worker, args=(progress,), daemon=True) for _ in range(self.workers)]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():  # a timed join: the main thread stays free for signal handlers
                    t.join(0.5)
        finally:
            self.close()

    # ------------------------------------------------------------------ results
    def summary(self):
        frame = study_summary(self.spec, self.plans, self.studies)
        if self.refused:  # listed with their reasons, after the cells that ran
            import pandas as pd

            rows = pd.DataFrame([{"cell": p.cell.id, "refused": "; ".join(p.refusals)} for p in self.refused])
            frame = pd.concat([frame, rows], ignore_index=True)
        return frame

    def finish(self):
        """Summary table to the parent run; the parent run ends FINISHED once every cell has all its trials."""
        from aunet_lab.mlflow_client import client_for

        frame = self.summary()
        client = client_for(self.tracking_uri)
        out = self.spec.folder
        frame.to_csv(out / "summary.csv", index=False)
        (out / "summary.md").write_text(frame.to_markdown(index=False) + "\n")
        client.log_artifact(self.parent_run_id, str(out / "summary.csv"))
        client.log_artifact(self.parent_run_id, str(out / "summary.md"))
        if self.refused:
            import json

            client.set_tag(self.parent_run_id, "aunet.refused",
                           json.dumps({p.cell.id: "; ".join(p.refusals) for p in self.refused})[:5000])
            frame = frame[frame["refused"].isna()].drop(columns="refused")
        blocked = [p.cell.id for p in self.plans if p.cell.pretrain and self.blocked(p)]
        if blocked:
            frame["blocked"] = frame["cell"].isin(blocked)
        complete = all(frame["finished"] >= frame["wanted"])
        counts = {"trials_complete": int(frame["complete"].sum()), "trials_pruned": int(frame["pruned"].sum()),
                  "trials_failed": int(frame["failed"].sum())}
        for key, value in counts.items():
            client.log_metric(self.parent_run_id, f"study/{key}", value)
        if complete:
            client.set_terminated(self.parent_run_id, "FINISHED")
        return frame


def best_trial(trials):
    from optuna.trial import TrialState

    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    return min(done, key=lambda t: t.value) if done else None


def study_summary(spec: StudySpec, plans: list[CellPlan], studies: dict):
    """One row per cell: its best tuning trial (validation objective, learning rate, test BPB) and
    the counts of trials by state; repeat seeds' test BPB as mean and spread."""
    import statistics

    import pandas as pd
    from optuna.trial import TrialState

    rows = []
    for plan in plans:
        cell = plan.cell
        trials = [t for t in studies[cell.id].get_trials(deepcopy=False) if not t.user_attrs.get("retried")]
        tuning = [t for t in trials if "repeat_seed" not in t.user_attrs]
        best = best_trial(tuning)
        logged_fpb = best.user_attrs.get("flops_per_byte") if best else None
        states = [t.state for t in trials]
        finished = sum(s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) for s in states)
        row = {"cell": cell.id, "arch": cell.arch, "budget": cell.budget_label, "mixture": cell.mixture_name,
               "seed": cell.seed, "shape": plan.shape, "params": plan.params, "bytes": plan.bytes,
               # Compute as the run logged it (data.budget x compute/flops_per_byte), like the report.
               "flops_per_byte": logged_fpb, "compute": plan.bytes * logged_fpb if logged_fpb else None,
               "best_trial": best.number if best else None,
               "lr": best.params["lr"] if best else None,
               "val_objective": best.value if best else None,
               "test_bpb": (best.user_attrs.get("test") or {}).get("test/bpb") if best else None,
               "complete": states.count(TrialState.COMPLETE), "pruned": states.count(TrialState.PRUNED),
               "failed": states.count(TrialState.FAIL), "finished": finished,
               "wanted": sum(spec.trials_wanted(cell)),
               "run_id": best.user_attrs.get("run_id") if best else None}
        if spec.trials_wanted(cell)[1] and best is not None:
            seeds = [best] + [t for t in trials if "repeat_seed" in t.user_attrs and t.state == TrialState.COMPLETE]
            values = [(t.user_attrs.get("test") or {}).get("test/bpb") for t in seeds]
            values = [v for v in values if v is not None]
            row["test_bpb_seeds"] = len(values)
            row["test_bpb_mean"] = statistics.fmean(values) if values else None
            row["test_bpb_std"] = statistics.stdev(values) if len(values) > 1 else None
        if cell.phase == "pretrain" or cell.pretrain:
            row["phase"] = cell.phase
        rows.append(row)
    return pd.DataFrame(rows)


def _alive(pid: int) -> bool:
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


def _die_with_parent() -> None:
    """In the trial process: be killed if the worker that started it dies (Linux), so a killed
    worker leaves no trial training unseen."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _read_result(trial_dir: str | None) -> dict:
    if not trial_dir:
        return {}
    path = Path(trial_dir) / "result.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def _host() -> str:
    """This machine's name in trial records (AUNET_LAB_HOST overrides it: tests stand in for a second host)."""
    return os.environ.get("AUNET_LAB_HOST") or socket.gethostname()
