"""Optuna storages, samplers and pruners built from a study spec (Optuna persists none of the
latter two, so every process that opens a study rebuilds them from the same spec)."""

from __future__ import annotations

import os
from pathlib import Path

from aunet_lab.messages import first_line
from aunet_lab.paths import check_folder


def storage_url(url: str | None, folder: Path) -> str:
    """The storage a study uses: ``url`` as given, or the journal file in the study's folder."""
    return url or str(Path(folder) / "optuna.journal")


class StorageError(ValueError):
    """An Optuna storage that cannot be used; one line naming it."""


RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql")


def _driver_url(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        import importlib.util

        if importlib.util.find_spec("psycopg2") is None:  # SQLAlchemy's default driver; psycopg 3 is ours
            return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def check_storage(url: str) -> None:
    """Refuse, in one line, a storage that cannot work, creating nothing: a journal path whose folder
    cannot be written, an unknown scheme, an SQLite file in a missing folder, an unreachable server."""
    what = f"--storage {url}"
    if "://" not in url:
        path = Path(url)
        if path.is_dir():
            raise StorageError(f"{what}: is a folder (a journal storage is a file path)")
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            raise StorageError(f"{what}: the journal file is not readable and writable")
        check_folder(path.parent, what, StorageError)
        return
    scheme = url.split("://", 1)[0].split("+", 1)[0]
    if scheme not in RDB_SCHEMES:
        raise StorageError(f"{what}: unknown storage (expected a journal file path, sqlite:///PATH or "
                           "postgresql://USER@HOST/DB)")
    if scheme == "sqlite":
        db = url.split("://", 1)[1]
        if not db.startswith("/") or db in ("/", "/:memory:"):
            raise StorageError(f"{what}: expected sqlite:///PATH/FILE.db (an in-memory study is lost at exit)")
        db_path = Path(db[1:])  # sqlite:///rel.db, sqlite:////abs.db
        if not db_path.parent.is_dir():
            raise StorageError(f"{what}: folder {db_path.parent} does not exist")
        if db_path.is_dir():
            raise StorageError(f"{what}: {db_path} is a folder")
        return
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(_driver_url(url), connect_args={"connect_timeout": 5}
                                          if scheme.startswith("postgres") else {})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as err:
        raise StorageError(f"{what}: cannot connect ({first_line(err)})") from None




def open_storage(url: str, heartbeat: tuple[int, int] = (30, 120)):
    """A journal file (a path) or an RDB storage (``sqlite:///...``, ``postgresql://...``); RDB
    storages other than SQLite get heartbeats (``heartbeat`` = interval, grace period in seconds).
    Any failure to open it is a StorageError."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    check_storage(url)
    try:
        if "://" not in url:
            path = Path(url)
            path.parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
        kwargs = {}
        url = _driver_url(url)
        if not url.startswith("sqlite"):
            kwargs = {"engine_kwargs": {"pool_pre_ping": True}, "heartbeat_interval": heartbeat[0],
                      "grace_period": heartbeat[1]}
        return optuna.storages.RDBStorage(url, **kwargs)
    except StorageError:
        raise
    except Exception as err:
        raise StorageError(f"--storage {url}: cannot open ({first_line(err)})") from None


def build_sampler(spec, cell_index: int, asked: int = 0):
    """The cell's sampler for its next trial. ``asked``, the number of trials the cell's study holds,
    is part of the seed: a second worker process or a resumed sweep (which rebuild the sampler) never
    replays a learning rate already tried, and the same history always gives the same proposal."""
    import numpy as np
    import optuna

    s = spec.sampler
    seed = int(np.random.SeedSequence([s.seed, cell_index, asked]).generate_state(1)[0])
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
