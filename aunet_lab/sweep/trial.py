"""One trial as its own process: ``python -m aunet_lab.sweep.trial TRIAL_DIR``.

``TRIAL_DIR/trial.json`` (written by the sweep runner) holds the resolved training config, the
Optuna storage, study and trial id, the MLflow parent run and tags, and the objective. The trial
trains through the ordinary training path, reports the objective to Optuna at each validation (the
first process only), and writes ``result.json``. Exit status: 0 complete, 3 pruned, 4 failed
(non-finite loss); anything else is a crash, which the runner records.
"""

from __future__ import annotations

import fnmatch
import json
import os
import sys
from pathlib import Path

EXIT_PRUNED = 3
EXIT_FAILED = 4


def write_result(trial_dir: Path, result: dict) -> None:
    tmp = trial_dir / ".result.json.tmp"
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, trial_dir / "result.json")


def main(argv: list[str] | None = None) -> int:
    from aunet_lab.training.timing import PhaseClock

    clock = PhaseClock()
    clock.mark("process start")
    argv = sys.argv[1:] if argv is None else argv
    trial_dir = Path(argv[0])
    job = json.loads((trial_dir / "trial.json").read_text())
    threads = int(os.environ.get("AUNET_LAB_THREADS", "0") or 0)
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    import logging
    import warnings

    import optuna

    from aunet_lab.config import config_from_dict
    from aunet_lab.sweep.pruning import BytesPruning, objective_value
    from aunet_lab.sweep.storage import build_pruner, open_storage
    from aunet_lab.training.callbacks import ProgressFile, ProgressLines
    from aunet_lab.training.faults import Interrupted
    from aunet_lab.training.module import NonFiniteLoss
    from aunet_lab.training.run import is_launcher_process, train

    clock.mark("imports")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    config = config_from_dict(job["config"], f"{trial_dir / 'trial.json'}: config")
    only = os.environ.get("AUNET_LAB_FAULT_RUN")  # fault injection in the trials whose run name matches
    if only and not fnmatch.fnmatch(config.tracking.run_name, only):
        os.environ.pop("AUNET_LAB_FAULT", None)
    objective = job["objective"]
    trial = None
    if is_launcher_process():
        study = optuna.load_study(study_name=job["study"], storage=open_storage(job["storage"], tuple(job["heartbeat"])),
                                  pruner=build_pruner(job["pruner"], config.data.budget))
        trial = optuna.trial.Trial(study, job["trial_id"])
    pruning = BytesPruning(trial, objective["metric"], objective.get("languages"))
    # A retry continues its run folder: from its checkpoint, or from step 0 in the same MLflow run.
    resume = bool(job.get("resume")) or (Path(config.output_dir) / config.tracking.run_name / "last.ckpt").is_file()
    base = {"trial": job["number"], "run_name": config.tracking.run_name}
    try:
        result = train(config, resume=resume, init_from=job.get("init_from"), parent_run_id=job["parent_run_id"],
                       extra_tags=job["tags"], extra_params=job.get("params"), clock=clock,
                       # log.txt: a line per validation; progress.json: for the sweep's live display
                       callbacks=[pruning, ProgressLines(), ProgressFile(trial_dir / "progress.json")],
                       on_run_created=(lambda run_id: trial.set_user_attr("mlflow_run_id", run_id)) if trial else None)
    except optuna.TrialPruned as err:
        write_result(trial_dir, {**base, "status": "pruned", "reason": str(err)})
        return EXIT_PRUNED
    except NonFiniteLoss as err:
        write_result(trial_dir, {**base, "status": "failed", "reason": f"non-finite loss: {err}"})
        return EXIT_FAILED
    except Interrupted as err:  # the sweep was asked to stop: it retries this trial on --resume
        write_result(trial_dir, {**base, "status": "killed", "reason": err.describe()})
        return err.exit_code
    if not is_launcher_process():
        return 0
    value = objective_value(result.val, objective["metric"], objective.get("languages"))
    checkpoint = Path(result.run_dir) / "final.ckpt"
    if job.get("evaluate"):
        from aunet_lab.eval.run import evaluate, log_to_run

        spec = job["evaluate"]
        results, out = evaluate(str(checkpoint), spec["suite"], spec.get("languages") or config.data.eval_languages,
                                spec["per_task"], None, eval_bytes=config.data.eval_caps()["test"])
        log_to_run(str(checkpoint), config.tracking.tracking_uri, results, out)
    write_result(trial_dir, {**base, "status": "complete", "objective": value, "val": result.val,
                             "flops_per_byte": result.flops_per_byte,
                             "test": result.test, "run_id": result.run_id, "steps": result.steps,
                             "checkpoint": str(checkpoint.resolve())})
    return 0


if __name__ == "__main__":
    sys.exit(main())
