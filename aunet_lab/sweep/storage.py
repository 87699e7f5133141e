"""Optuna storages, samplers and pruners built from a study spec (Optuna persists none of the
latter two, so every process that opens a study rebuilds them from the same spec)."""

from __future__ import annotations

from pathlib import Path


def storage_url(url: str | None, folder: Path) -> str:
    """The storage a study uses: ``url`` as given, or the journal file in the study's folder."""
    return url or str(Path(folder) / "optuna.journal")


def open_storage(url: str, heartbeat: tuple[int, int] = (30, 120)):
    """A journal file (a path) or an RDB storage (``sqlite:///...``, ``postgresql://...``); RDB
    storages other than SQLite get heartbeats (``heartbeat`` = interval, grace period in seconds)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    if "://" not in url:
        path = Path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
    kwargs = {}
    if url.startswith(("postgresql://", "postgres://")):
        import importlib.util

        if importlib.util.find_spec("psycopg2") is None:  # SQLAlchemy's default driver; psycopg 3 is ours
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if not url.startswith("sqlite"):
        kwargs = {"engine_kwargs": {"pool_pre_ping": True}, "heartbeat_interval": heartbeat[0],
                  "grace_period": heartbeat[1]}
    return optuna.storages.RDBStorage(url, **kwargs)


def build_sampler(spec, cell_index: int):
    import optuna

    s = spec.sampler
    seed = s.seed * 1000 + cell_index  # each cell its own stream, the same on every start
    if s.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=s.n_startup_trials)


def build_pruner(pruner: dict, cell_bytes: int):
    """``pruner`` is the spec's pruner section as a mapping; steps are bytes seen."""
    import optuna

    name = pruner.get("name", "none")
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=pruner.get("n_startup_trials", 2),
                                           n_warmup_steps=int(pruner.get("warmup_fraction", 0.25) * cell_bytes))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, cell_bytes // 9), max_resource=cell_bytes,
                                              reduction_factor=pruner.get("reduction_factor", 3))
    return optuna.pruners.NopPruner()


def has_heartbeat(storage) -> bool:
    return hasattr(storage, "record_heartbeat") and storage.get_heartbeat_interval() is not None
