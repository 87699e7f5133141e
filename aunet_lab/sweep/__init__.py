"""Studies: Optuna sweeps over stage depth, budgets and languages; every trial a tracked training run."""
