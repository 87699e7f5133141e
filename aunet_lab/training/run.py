"""Build and run a training: DataModule, model, Trainer, MLflow run, checkpoints, resume, warm start.

The run directory is ``<output_dir>/<run name>`` (run name from the config, or the architecture and
a hash of the config), holding ``last.ckpt``, the MLflow run id, the resolved config and (BPE) the
tokenizer. ``resume=True`` continues from ``last.ckpt`` in the same MLflow run; ``init_from`` loads
weights only (new optimizer, schedule and data) for continued training on other data.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from aunet_lab.config import ConfigError, TrainConfig, dump_yaml, flatten, to_plain
from aunet_lab.messages import first_line
from aunet_lab.paths import check_folder
from aunet_lab.training.checkpoint import CheckpointError, load_checkpoint, tokenizer_beside
from aunet_lab.mlflow_client import check_tracking_uri, client_for, resolve_tracking_uri, source_tags
from aunet_lab.training.tracking import MetricBuffer, experiment_id


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    status: str
    final_loss: float | None
    val: dict
    test: dict
    steps: int
    flops_per_byte: float | None = None  # logged as compute/flops_per_byte (the one source of compute)


def run_name(config: TrainConfig) -> str:
    if config.tracking.run_name:
        return config.tracking.run_name
    digest = hashlib.sha256(json.dumps(to_plain(config), sort_keys=True, default=str).encode()).hexdigest()[:8]
    stages = f"aunet{config.model.aunet.n_stages}" if config.model.arch == "aunet" else "bpe"
    return f"{stages}-{digest}"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def _ensure_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as err:
        raise ConfigError(f"output_dir: cannot write checkpoints to {folder} ({err.strerror})") from None


def _precision(choice: str) -> str:
    if choice != "auto":
        return choice
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def _checkpoint_callback(run_dir: Path, every: int, val_every: int, stop=None, clock=None):
    import lightning.pytorch as pl

    from aunet_lab.training.faults import Interrupted, reach

    class CheckpointAndCommit(pl.Callback):
        """Saves ``last.ckpt`` atomically every ``every`` optimizer steps (after the validation of that
        step, if any) and then writes the buffered metrics to MLflow. On a stop request (``stop``, a
        StopRequest) it saves at the next optimizer step and raises Interrupted."""

        def __init__(self):
            self.saved_step = -1
            self.seen_step = -1

        def _save(self, trainer, module):
            step = trainer.global_step
            if step == self.saved_step:
                return
            module.commit_step_metrics()
            if clock is not None:
                clock.begin("checkpoints")
            tmp = run_dir / ".last.ckpt.tmp"
            trainer.save_checkpoint(tmp, weights_only=False)
            if trainer.is_global_zero:
                # Metrics first, then the checkpoint: a kill in between replays steps MLflow already
                # holds, and a resumed run skips logging those (see MetricBuffer.skip_through).
                if module.tracker is not None:
                    module.tracker.flush()
                os.replace(tmp, run_dir / "last.ckpt")
            if clock is not None:
                clock.end("checkpoints")
            self.saved_step = step

        def _stop(self, trainer, module):
            self._save(trainer, module)
            raise Interrupted(stop.signum, trainer.global_step, saved=True)

        def on_train_start(self, trainer, module):
            self.seen_step = trainer.global_step

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            step = trainer.global_step
            stepped, self.seen_step = step != self.seen_step, step  # an optimizer step just ended
            validating = bool(val_every and step % val_every == 0)
            if step and step % every == 0 and not validating:
                self._save(trainer, module)
            if stepped:
                module.commit_step_metrics()
                reach(f"step:{step}")
                if stop is not None and stop.signum is not None and not validating and step < trainer.max_steps:
                    self._stop(trainer, module)

        def on_validation_end(self, trainer, module):
            step = trainer.global_step
            if trainer.sanity_checking or trainer.state.fn != "fit" or not step:
                return
            if step % every == 0:
                self._save(trainer, module)
            if stop is not None and stop.signum is not None and step < trainer.max_steps:
                self._stop(trainer, module)

    return CheckpointAndCommit()


def is_launcher_process() -> bool:
    """True in the process the user started; False in the extra processes a multi-process launch
    (Lightning's DDP launcher, torchrun, SLURM) starts, which must not create or write MLflow runs."""
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        if int(os.environ.get(key, "0") or 0) != 0:
            return False
    return True


def train(config: TrainConfig, resume: bool = False, init_from: str | None = None, parent_run_id: str | None = None,
          extra_tags: dict | None = None, callbacks: list | None = None,
          on_run_created=None, extra_params: dict | None = None, clock=None) -> RunResult:
    """Train ``config``; ``extra_params`` are logged with the run's parameters (a sweep trial's
    ``plan.flops_per_byte``). SIGTERM and SIGINT stop it at the next optimizer step with a
    checkpoint there, the MLflow run KILLED, and :class:`Interrupted` raised. ``clock`` (a
    :class:`PhaseClock`, started by the caller to count its own imports) splits the wall time into
    phases, written to ``timings.json`` and logged as ``time/<phase>`` metrics."""
    from aunet_lab.training.faults import StopRequest
    from aunet_lab.training.timing import PhaseClock

    if clock is None:
        clock = PhaseClock()
        clock.mark("process start")
    with StopRequest() as stop:
        return _train(config, resume, init_from, parent_run_id, extra_tags, callbacks, on_run_created,
                      extra_params, stop, clock)


def _trainer_error(err: Exception) -> ConfigError:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return ConfigError(f"trainer: {first[:200]}")


def _train(config, resume, init_from, parent_run_id, extra_tags, callbacks, on_run_created, extra_params, stop, clock):
    import warnings

    import lightning.pytorch as pl

    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    from lightning.pytorch.callbacks import RichProgressBar

    from aunet_lab.data.datamodule import AUNetDataModule
    from aunet_lab.training.faults import Interrupted, reach
    from aunet_lab.training.module import LMModule, NonFiniteLoss

    # Everything that can be refused is checked before the MLflow run exists.
    config.data.arch = config.model.arch
    config.data.validate()  # before any folder or run exists
    name = run_name(config)
    run_dir = Path(config.output_dir) / name
    uri = resolve_tracking_uri(config.tracking.tracking_uri)
    check_tracking_uri(uri)
    check_folder(run_dir, "output_dir", ConfigError)
    client = client_for(uri)  # fails here, before any training, if the store cannot be reached
    _ensure_writable(run_dir)
    clock.mark("imports")  # Lightning and MLflow, imported on the way here

    last = run_dir / "last.ckpt"
    marker = run_dir / "mlflow_run_id"
    ckpt_path = None
    run_id = None
    if resume:
        run_id = marker.read_text().strip() if marker.is_file() else None
        if run_id:
            try:
                client.get_run(run_id)
            except Exception:
                print(f"note: --resume: MLflow run {run_id} is not in {uri}; starting a new run", file=sys.stderr)
                run_id = None
        if last.is_file():
            load_checkpoint(last)  # validates before Lightning touches it
            ckpt_path = str(last)
        else:  # killed before its first checkpoint: nothing to continue, start again from step 0
            print(f"note: --resume: no checkpoint in {run_dir} yet; training from step 0"
                  + (f" in the same MLflow run {run_id}" if run_id else ""), file=sys.stderr)
    init_state = None
    if init_from:
        source = load_checkpoint(init_from)
        if not isinstance(source, dict) or "aunet_lab" not in source or "state_dict" not in source:
            raise CheckpointError(f"--init-from {init_from}: not a checkpoint written by aunet-lab train")
        init_state = source["state_dict"]

    pl.seed_everything(config.trainer.seed, workers=True, verbose=False)
    dm = AUNetDataModule(config.data)
    dm.clock = clock
    if init_from and config.model.arch == "bpe":
        # Token ids only mean what the pretraining tokenizer made them mean: a warm start keeps it
        # (trained without the new data's languages, as when adapting a model in practice).
        dm.tokenizer = tokenizer_beside(init_from)
    dm.setup()
    clock.mark("data")
    accumulate = config.optim.accumulate
    steps_per_pass = math.ceil(len(dm.train_set) / config.data.batch_size / accumulate)
    max_steps = config.trainer.max_steps or steps_per_pass
    vocab = dm.tokenizer.vocab_size if dm.tokenizer is not None else None
    module = LMModule(config, max_steps, vocab, dm.measured, dm.eval_language_order(config.data.eval_split),
                      dm.eval_language_order("test"), dm.window)
    module.commit = git_commit()
    if init_state is not None:
        try:
            module.load_state_dict(init_state, strict=False)
            missing = [k for k in module.state_dict() if k.startswith("model.") and k not in init_state]
        except RuntimeError as err:
            raise CheckpointError(f"--init-from {init_from}: weights do not fit this model ({first_line(err)})") from None
        if missing:
            raise CheckpointError(f"--init-from {init_from}: weights do not fit this model (missing {missing[0]})")

    val_every = config.trainer.val_every
    from aunet_lab.data.corpus import default_cache
    from aunet_lab.training.callbacks import Throughput, load_peak
    from aunet_lab.training.strategy import build_strategy

    precision = _precision(config.trainer.precision)
    device = "cuda" if torch.cuda.is_available() and config.trainer.accelerator in ("auto", "gpu", "cuda") else "cpu"
    dtype = "bfloat16" if precision.startswith("bf16") else "float32"
    peak = config.trainer.peak_flops or load_peak(Path(config.data.cache or default_cache()), dtype, device)
    # Throughput first: its numbers join the step's metrics before the checkpoint commits them.
    callbacks = [Throughput(peak), _checkpoint_callback(run_dir, config.trainer.checkpoint_every, val_every, stop, clock),
                 _evaluation_timer(clock), *(callbacks or [])]
    progress = config.trainer.progress and sys.stderr.isatty()
    if progress:
        callbacks.append(RichProgressBar())
    try:
        trainer = pl.Trainer(
            max_steps=max_steps, accelerator=config.trainer.accelerator, devices=config.trainer.devices,
            strategy=build_strategy(config.trainer), num_nodes=config.trainer.num_nodes,
            precision=precision, gradient_clip_val=config.optim.grad_clip or None,
            accumulate_grad_batches=accumulate, deterministic=config.trainer.deterministic, logger=False,
            callbacks=callbacks, enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False,
            val_check_interval=(val_every * accumulate) if val_every else None, check_val_every_n_epoch=None,
            num_sanity_val_steps=0, max_epochs=-1, log_every_n_steps=config.trainer.log_every,
            use_distributed_sampler=False,  # the DataModule splits the stream across processes itself
        )
    except (ValueError, RuntimeError, TypeError) as err:  # Lightning's MisconfigurationException too
        raise _trainer_error(err) from None
    single = trainer.world_size == 1
    if single:
        # One process: the stop request saves a checkpoint at the next step (Lightning's own SIGTERM
        # flag would end the loop first, without one). Several processes keep Lightning's, which
        # all ranks agree on.
        trainer._signal_connector._sigterm_notifier_fn = lambda signum, frame: None

    tags = {
        "aunet.arch": config.model.arch,
        "aunet.stages": str(config.model.aunet.n_stages if config.model.arch == "aunet" else 0),
        "aunet.split": ("learned" if config.model.aunet.learned else config.model.aunet.split)
        if config.model.arch == "aunet" else "bpe",
        "aunet.languages": ",".join(sorted(config.data.mixture)),
        "aunet.seed": str(config.trainer.seed),
        "git.commit": module.commit,
        **source_tags(module.commit, "aunet-lab sweep" if parent_run_id else "aunet-lab train"),
        "data.hash": dm.selection.fingerprint(),
        **config.tracking.tags,
        **(extra_tags or {}),
    }
    if init_from:
        tags["aunet.init_from"] = str(init_from)
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    main = is_launcher_process()
    reused = run_id is not None
    if not main:
        run_id = run_id or "(rank>0)"
    elif not reused:
        exp = experiment_id(client, config.tracking.experiment, uri)
        run_id = client.create_run(exp, run_name=name, tags=tags).info.run_id
        marker.write_text(run_id + "\n")
    else:
        client.set_terminated(run_id, "RUNNING")
        for key in ("aunet.failure", "aunet.status"):  # from the attempt this one continues
            if key in client.get_run(run_id).data.tags:
                client.delete_tag(run_id, key)
    if main and on_run_created is not None:
        on_run_created(run_id)
    module.tracker = None
    status, final_loss = "FINISHED", None
    clock.mark("model and trainer")
    try:
        if main:
            logged_through = -1
            if ckpt_path is None:  # a new run, or one restarted from step 0
                _log_run_setup(config, module, dm, client, run_id, run_dir, max_steps, extra_params)
            else:
                logged_through = max((m.step for m in client.get_metric_history(run_id, "train/loss")), default=-1)
            module.tracker = MetricBuffer(client, run_id, logged_through, spill=run_dir / "unlogged_metrics.jsonl")
        clock.mark("logging")
        stop.deferred = single
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
        stop.deferred = False
        clock.mark("training steps")
        if stop.signum is not None:  # arrived during the last step
            raise Interrupted(stop.signum, trainer.global_step)
        reach("fit_end")
        if not getattr(module, "last_val", None) and dm.eval_sets.get(config.data.eval_split):
            # No validation ran: a run shorter than val_every (logged like any validation), or one
            # resumed from a checkpoint at its last step, killed while finishing (for the result
            # only: MLflow already holds the run's validations, and an uninterrupted run logs no
            # extra one).
            tracker = module.tracker
            if ckpt_path is not None:
                module.tracker = None
            try:
                trainer.validate(module, datamodule=dm, verbose=False)
            finally:
                module.tracker = tracker
        if config.trainer.test_at_end and dm.eval_sets.get("test"):
            trainer.test(module, datamodule=dm, verbose=False)
        clock.mark("test")
        tmp = run_dir / ".final.ckpt.tmp"
        trainer.save_checkpoint(tmp, weights_only=True)  # collective; weights and config, no optimizer
        reach("final_save")
        if not trainer.is_global_zero:
            return RunResult(run_id, run_dir, status, None, {}, {}, trainer.global_step)
        os.replace(tmp, run_dir / "final.ckpt")
        clock.mark("checkpoints")
        module.tracker.flush(final=True)
        clock.mark("logging")
        _final_artifacts(config, module, dm, client, run_id, run_dir, trainer, clock)
    except NonFiniteLoss as err:
        status = "FAILED"
        if module.tracker is not None:
            module.tracker.flush()
            client.set_tag(run_id, "aunet.failure", str(err))
            client.set_terminated(run_id, status)
        raise
    except BaseException as err:
        stopped = err if isinstance(err, Interrupted) else None
        if stopped is None and stop.signum is not None:  # Lightning's own stop (several processes)
            stopped = Interrupted(stop.signum, trainer.global_step)
        if main:
            try:
                if module.tracker is not None:
                    module.tracker.flush()
                if stopped is not None:  # KILLED like a pruned trial, told apart by aunet.status
                    client.set_tag(run_id, "aunet.status", f"killed: {stopped.describe()}")
                    client.set_terminated(run_id, "KILLED")
                    stopped.run_id = run_id
                elif type(err).__name__ == "TrialPruned":  # a sweep's pruner stopped it: not a failure
                    client.set_tag(run_id, "aunet.status", "pruned")
                    client.set_tag(run_id, "aunet.pruned", str(err))
                    client.set_terminated(run_id, "KILLED")
                else:
                    client.set_tag(run_id, "aunet.failure", f"{type(err).__name__}: {err}"[:5000])
                    client.set_terminated(run_id, "FAILED")
            except Exception:  # the store itself is unreachable: the original error is the one to see
                pass
        if stopped is not None and stopped is not err:
            raise stopped from None
        raise
    clock.mark("logging")
    _log_timings(client, run_id, run_dir, clock, trainer.global_step)
    client.set_terminated(run_id, status)
    history = client.get_metric_history(run_id, "train/loss")
    if history:
        final_loss = sorted(history, key=lambda m: m.step)[-1].value
    return RunResult(run_id, run_dir, status, final_loss, getattr(module, "last_val", {}),
                     getattr(module, "last_test", {}), trainer.global_step, module.counted_flops_per_byte)


def _log_run_setup(config, module, dm, client, run_id, run_dir, max_steps, extra_params) -> None:
    """Parameters, the resolved config, the evaluation documents, the tokenizer and the data
    statistics of a run starting at step 0 (again, for a run restarted before its first
    checkpoint: the same values, and step-0 metrics only if not there yet)."""
    from mlflow.entities import Param

    params = {k: ("null" if v is None else str(v))[:6000] for k, v in flatten(to_plain(config)).items()}
    params.update({"model.non_embedding_params": str(sum(p.numel() for n, p in module.model.named_parameters()
                                                        if "tok_embeddings" not in n and "output" not in n)),
                   "compute.flops_per_byte": repr(module.counted_flops_per_byte),
                   "compute.head_flops_per_byte": repr(module.head_flops_per_byte),
                   "trainer.max_steps_resolved": str(max_steps), "data.window": str(dm.window),
                   # a learned split function: which boundary model, by content (its path may change)
                   **({"data.split_sha256": module.model.split.sha256}
                      if getattr(getattr(module.model, "split", None), "sha256", "") else {}),
                   **{k: str(v) for k, v in (extra_params or {}).items()}})
    have = client.get_run(run_id).data
    items = [Param(k, v) for k, v in params.items() if k not in have.params]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i : i + 100])
    (run_dir / "config.yaml").write_text(dump_yaml(config))
    client.log_artifact(run_id, str(run_dir / "config.yaml"))
    # Which held-out documents every language is scored on: the same for every arm and seed.
    (run_dir / "eval_documents.json").write_text(json.dumps(dm.eval_docs, indent=1, ensure_ascii=False))
    client.log_artifact(run_id, str(run_dir / "eval_documents.json"))
    if dm.tokenizer is not None:
        shutil.copy(dm.tokenizer.path, run_dir / "tokenizer.json")
        client.log_artifact(run_id, str(run_dir / "tokenizer.json"))
    _log_dataset(client, run_id, training_dataset(config, dm))
    if "compute/flops_per_byte" not in have.metrics:
        buffer = MetricBuffer(client, run_id)
        buffer.log({k: float(v) for k, v in dm.stats().items() if isinstance(v, (int, float))}, 0)
        buffer.log({"compute/flops_per_byte": module.counted_flops_per_byte}, 0)
        buffer.flush()


def _log_dataset(client, run_id: str, dataset) -> None:
    """Link the dataset to the run. Runs of one cell start together with the same data, and MLflow's
    get-or-create of a dataset is not atomic (a UNIQUE constraint error for the loser): try again,
    then, the link being a convenience, tag why it is missing rather than fail the training."""
    import time

    for attempt in range(4):
        if client.get_run(run_id).inputs.dataset_inputs:
            return
        try:
            client.log_inputs(run_id, datasets=[dataset])
            return
        except Exception as err:  # noqa: BLE001 (any store error: the run must train regardless)
            if attempt == 3:
                client.set_tag(run_id, "aunet.dataset", f"not linked: {first_line(err)}")
                return
            time.sleep(0.5 * (attempt + 1))


def training_dataset(config, dm):
    """The run's training data as an MLflow dataset input (the UI's Dataset column): the corpus and
    mixture by name, the selection's fingerprint as its digest, bytes and epochs per language."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    sel = dm.selection
    mixture = ",".join(f"{k}:{v:g}" for k, v in sorted(config.data.mixture.items()))
    source = {"manifest": str(config.data.manifest), "languages": sorted(config.data.mixture),
              "split": "train", "seed": config.data.seed}
    profile = {"mixture": config.data.mixture, "budget": config.data.budget,
               "bytes": sum(sel.bytes_per_language.values()), "bytes_per_language": sel.bytes_per_language,
               "epochs_per_language": sel.epochs_per_language, "documents": len(sel.docs)}
    dataset = Dataset(name=f"{dm.manifest.name} [{mixture}]", digest=sel.fingerprint()[:8], source_type="aunet_lab",
                      source=json.dumps(source), profile=json.dumps(profile, default=str))
    return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])


def _log_timings(client, run_id: str, run_dir: Path, clock, step: int) -> None:
    from mlflow.entities import Metric

    data = clock.write(run_dir / "timings.json")
    stamp = int(time.time() * 1000)
    metrics = [Metric(f"time/{name.replace(' ', '_')}_s", value, stamp, step) for name, value in data["seconds"].items()]
    client.log_batch(run_id, metrics=[*metrics, Metric("time/total_s", data["total"], stamp, step)])


def _evaluation_timer(clock):
    import lightning.pytorch as pl

    class EvaluationTimer(pl.Callback):
        """Books the validations inside the training loop, and the final test, to their phases."""

        def on_validation_start(self, trainer, module):
            clock.begin("validation")

        def on_validation_end(self, trainer, module):
            clock.end("validation")

        def on_test_start(self, trainer, module):
            clock.begin("test")

        def on_test_end(self, trainer, module):
            clock.end("test")

    return EvaluationTimer()


def _final_artifacts(config, module, dm, client, run_id, run_dir, trainer, clock) -> None:
    """The per-language BPB table, the exported model (the run's logged model, not the Lightning
    checkpoints) and sample generations (rank 0 only)."""
    rows = []
    for split, results in (("val", getattr(module, "last_val", {})), ("test", getattr(module, "last_test", {}))):
        for key, value in results.items():
            parts = key.split("/")
            rows.append({"split": split, "language": parts[2] if len(parts) > 2 else
                         ("all (micro)" if key.endswith("/bpb") else "all (macro)"), "bpb": value})
    (run_dir / "bpb_by_language.json").write_text(json.dumps(rows, indent=1))
    client.log_artifact(run_id, str(run_dir / "bpb_by_language.json"))
    from aunet_lab.training.tracking import log_exported_model

    log_exported_model(client, run_id, run_dir, rows, trainer.global_step)
    clock.mark("export")
    sharded = config.trainer.strategy in ("fsdp", "fsdp2")
    if config.model.arch != "bpe" and dm.eval_sets.get("test") and not (sharded and config.model.aunet.learned):
        from aunet_lab.models.chunking import LearnedLevels
        from aunet_lab.training.tracking import log_boundaries

        # learned chunking: the model's own boundaries, not the split function's
        levels_fn = LearnedLevels(module.model) if config.model.aunet.learned else None
        log_boundaries(client, run_id, dm, config.data.split, config.model.aunet.n_stages, trainer.global_step,
                       levels_fn)
        clock.mark("boundaries")
    model = module.model
    if config.trainer.strategy in ("fsdp", "fsdp2"):
        # Generation calls the model outside forward(), where sharded parameters are not gathered:
        # sample from an unsharded copy built from the consolidated final checkpoint.
        from aunet_lab.models.build import build_model

        model = build_model(config, dm.tokenizer.vocab_size if dm.tokenizer is not None else None)
        weights = load_checkpoint(run_dir / "final.ckpt")["state_dict"]
        model.load_state_dict({k[len("model."):]: v for k, v in weights.items() if k.startswith("model.")})
    samples = sample_generations(model, dm, config.trainer.samples, config.trainer.sample_bytes)
    (run_dir / "samples.txt").write_text("\n\n".join(f"[{p!r}] -> {s!r}" for p, s in samples), encoding="utf-8")
    client.log_artifact(run_id, str(run_dir / "samples.txt"))
    clock.mark("samples")


def sample_generations(model, dm, count: int, length: int) -> list[tuple[str, str]]:
    from aunet_lab.data.byte_ids import BOS_ID, EOS_ID
    from aunet_lab.models import AUNet
    from aunet_lab.models.generate import Generator

    if count <= 0:
        return []
    model.eval()
    out = []
    docs = dm.selection.docs[:count]
    for _, _, text in docs:
        prompt = text[:40]
        if isinstance(model, AUNet):
            ids = torch.tensor([[BOS_ID] + list(prompt.encode())])
            gen = Generator(model).generate(ids, length, stop_id=EOS_ID)
            sample = bytes(t for t in gen[0].tolist() if t < 256).decode("utf-8", "replace")
        else:
            tok = dm.tokenizer
            ids = torch.tensor([[tok.bos_id] + tok.encode(prompt)])
            gen = Generator(model).generate(ids, max(1, length // 3), stop_id=tok.eos_id)
            sample = tok.decode_bytes(gen[0].tolist()).decode("utf-8", "replace")
        out.append((prompt, sample))
    model.train()
    return out
