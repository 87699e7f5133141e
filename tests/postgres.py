"""A throwaway PostgreSQL server on 127.0.0.1 for the slow tests: Debian's binaries, a cluster in a
temporary folder, run as the ``postgres`` user (initdb refuses root), trust authentication."""

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (apt-get install postgresql; .ci/run does)")
    return path


class Postgres:
    def __init__(self, folder: Path, port: int):
        self.folder = folder
        self.port = port

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        subprocess.run([_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c",
                        f"CREATE DATABASE {name}"], check=True, capture_output=True)


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@contextlib.contextmanager
def running_postgres(_tmp: Path | None = None):
    folder = Path(tempfile.mkdtemp(prefix="aunet-pg-", dir="/tmp"))  # reachable by the postgres user
    data = folder / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    subprocess.run(_as_postgres([_bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]), check=True,
                   capture_output=True)
    subprocess.run(_as_postgres([_bin("pg_ctl"), "-D", str(data), "-l", str(folder / "log.txt"), "-w", "-o",
                                 f"-p {port} -h 127.0.0.1 -k {folder}", "start"]), check=True, capture_output=True)
    try:
        yield Postgres(folder, port)
    finally:
        subprocess.run(_as_postgres([_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
