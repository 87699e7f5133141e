"""Reports the objective to Optuna at each validation, at the number of bytes seen (batch sizes
and tokenizers differ between arms, so steps and epochs are not comparable), and prunes."""

from __future__ import annotations

import lightning.pytorch as pl


def objective_value(results: dict, metric: str = "val/bpb", languages: list[str] | None = None) -> float:
    """The study's objective from a run's validation results: ``val/bpb`` (micro over all bytes),
    ``val/bpb_macro``, or the mean of ``val/bpb/<lang>`` over ``languages``."""
    if languages:
        missing = [lang for lang in languages if f"val/bpb/{lang}" not in results]
        if missing:
            raise KeyError(f"objective.languages: no validation BPB for {', '.join(missing)}")
        return sum(results[f"val/bpb/{lang}"] for lang in languages) / len(languages)
    return results[metric]


class BytesPruning(pl.Callback):
    """Only the first process talks to Optuna; its decision is broadcast to every process."""

    def __init__(self, trial, metric: str = "val/bpb", languages: list[str] | None = None):
        self.trial = trial
        self.metric = metric
        self.languages = languages

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        prune, message = False, ""
        if trainer.is_global_zero and self.trial is not None:
            value = objective_value(getattr(pl_module, "last_val", {}), self.metric, self.languages)
            seen = int(pl_module.bytes_seen)
            self.trial.report(value, seen)
            # The last validation ends the run anyway: report it, but let the trial complete.
            prune = trainer.global_step < trainer.max_steps and self.trial.should_prune()
            message = f"pruned at {seen:,} bytes seen (objective {value:.4f})"
        prune = trainer.strategy.broadcast(prune)
        if prune:
            import optuna

            raise optuna.TrialPruned(message)
