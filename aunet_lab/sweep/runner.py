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
import subprocess
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from aunet_lab.config import ConfigError, to_plain
from aunet_lab.sweep.forkserver import ForkServer, use_fork_server
from aunet_lab.sweep.mlflow_runs import fail_trial_run, finish_parent_run, parent_run
from aunet_lab.sweep.plan import CellPlan, base_config, ensure_prepared, plan_study, select_cells
from aunet_lab.sweep.spec import StudySpec
from aunet_lab.sweep.storage import build_pruner, build_sampler, has_heartbeat, open_storage, storage_url
from aunet_lab.sweep.summary import best_trial, summary_table
from aunet_lab.sweep.trial_process import alive, host, read_result, start_trial, trial_command, wait_for


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
        uri = resolve_tracking_uri(self.base.tracking.tracking_uri)
        check_tracking_uri(uri)
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
        # Created once (the store with it, before any worker starts), found again by every later or
        # concurrent process through the study folder.
        with _lock(spec):
            self.tracking_uri, self.parent_run_id = uri, parent_run(spec, uri, self.storage_url, len(self.plans))

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
        trial.set_user_attr("host", host())
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
            if attrs.get("host") == host() and attrs.get("worker_pid"):
                if not alive(attrs["worker_pid"]):
                    reason = f"its worker (pid {attrs['worker_pid']}) died"
                elif attrs.get("pid") and not alive(attrs["pid"]) and attrs["worker_pid"] == os.getpid():
                    reason = f"its trial process (pid {attrs['pid']}) died"
            elif stale_ids is not None and t._trial_id in stale_ids:
                reason = f"no heartbeat for {self.spec.faults.grace_period}s (worker on {attrs.get('host', '?')} lost)"
            if reason is None:
                continue
            result = read_result(attrs.get("trial_dir"))
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
        fail_trial_run(self.tracking_uri, attrs, reason, self._say)
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
            proc = start_trial(trial_command(self.spec.launcher, trial_dir), trial_dir, env, log, self.fork_server)
            (trial_dir / "pid").write_text(f"{proc.pid}\n")  # for whoever watches the trials (tests, scripts)
            self._procs[trial._trial_id] = proc
            if self.stopping is not None:  # the stop came while it started
                proc.send_signal(self.stopping)
            trial.set_user_attr("pid", proc.pid)
            try:
                code = wait_for(proc, self.storage, trial._trial_id, self.spec.faults.heartbeat_interval)
            finally:
                self._procs.pop(trial._trial_id, None)
        seconds = time.monotonic() - start
        result = read_result(str(trial_dir))
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
        return summary_table(self.spec, self.plans, self.studies, self.refused)

    def finish(self):
        """Summary table to the parent run; the parent run ends FINISHED once every cell has all its trials."""
        refused = {p.cell.id: "; ".join(p.refusals) for p in self.refused}
        blocked = [p.cell.id for p in self.plans if p.cell.pretrain and self.blocked(p)]
        return finish_parent_run(self.tracking_uri, self.parent_run_id, self.spec.folder, self.summary(), refused,
                                 blocked)
