"""The study's summary table: per cell its best tuning trial, the counts of trials by state, the
repeat seeds' spread, and the refused cells with their reasons."""

from __future__ import annotations

from aunet_lab.sweep.plan import CellPlan
from aunet_lab.sweep.spec import StudySpec


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


def summary_table(spec: StudySpec, plans: list[CellPlan], studies: dict, refused: list[CellPlan]):
    """The cells that ran, then the refused ones with their reasons."""
    frame = study_summary(spec, plans, studies)
    if refused:
        import pandas as pd

        rows = pd.DataFrame([{"cell": p.cell.id, "refused": "; ".join(p.refusals)} for p in refused])
        frame = pd.concat([frame, rows], ignore_index=True)
    return frame
