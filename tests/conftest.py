"""Fixtures: one PostgreSQL per run, a fresh database per test cloned from a template.

The server is the embedded PostgreSQL 18 unless ORDERGRAPH_TEST_DATABASE_URL names one.
Tests commit for real (NOTIFY fires only on commit), so each gets its own database.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import uvicorn

from gql.config import Settings
from gql.http.app import create_app
from gql.serve import uvicorn_options
from gql.store.connection import APP_ROLE, as_role, create_pool
from gql.store.migrations import migrate
from tests.factories import settled_end

_counter = itertools.count()


_loop: asyncio.AbstractEventLoop | None = None  # the session's loop, for a hung test's report


@pytest.fixture(scope="session", autouse=True)
async def _session_loop() -> AsyncIterator[None]:
    global _loop
    _loop = asyncio.get_running_loop()
    yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A test that pytest-timeout stopped reports where each of the loop's tasks was waiting:
    the thread stacks only show the loop's select()."""
    report = yield
    if report.failed and _loop is not None and "Timeout" in str(report.longrepr):
        out = io.StringIO()
        for task in asyncio.all_tasks(_loop):
            task.print_stack(limit=12, file=out)
        report.sections.append(("asyncio tasks when the test timed out", out.getvalue()))
    return report


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    configured = os.environ.get("ORDERGRAPH_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    from gql.database import embedded_postgres

    # its own directory: pytest prunes old basetemp dirs, also under a concurrent run
    with tempfile.TemporaryDirectory(prefix="ordergraph-test-") as tmp, \
            embedded_postgres(Path(tmp) / "data") as url:
        async def tune() -> None:
            conn = await asyncpg.connect(url)
            # test data is disposable: skip durable commits to keep the suite fast
            await conn.execute("alter system set synchronous_commit = off")
            await conn.execute("select pg_reload_conf()")
            await conn.close()

        asyncio.run(tune())
        yield url


# the databases of this run's process; those of a run no longer running are dropped at start
_OURS = re.compile(r"^og_(?:template|test|empty)_(\d+)(?:_\d+)?$")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # a PermissionError says it runs too, as another user's
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


@pytest.fixture(scope="session")
def template_name(server_url: str) -> Iterator[str]:
    """The migrated database every test's is cloned from, dropped when the run ends. A shared
    server (ORDERGRAPH_TEST_DATABASE_URL) may hold those of a run that was killed: they go."""
    name = f"og_template_{os.getpid()}"

    async def create() -> None:
        admin = await asyncpg.connect(server_url)
        for (left,) in await admin.fetch("select datname from pg_database where datname like 'og\\_%'"):
            found = _OURS.match(left)
            if found and (int(found[1]) == os.getpid() or not _running(int(found[1]))):
                await admin.execute(f'drop database if exists "{left}" with (force)')
        await admin.execute(f'create database "{name}"')
        await admin.close()
        conn = await asyncpg.connect(with_database(server_url, name))
        await migrate(conn)
        await conn.close()

    async def drop() -> None:
        admin = await asyncpg.connect(server_url)
        await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()

    asyncio.run(create())
    yield name
    asyncio.run(drop())


@contextlib.asynccontextmanager
async def _database(server_url: str, template: str, prefix: str = "og_test") -> AsyncIterator[str]:
    name = f"{prefix}_{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'create database "{name}" template "{template}"')
    try:
        yield with_database(server_url, name)
    finally:
        await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()


@pytest.fixture
async def database_url(server_url: str, template_name: str) -> AsyncIterator[str]:
    async with _database(server_url, template_name) as url:
        yield url


@pytest.fixture
async def second_database_url(server_url: str, template_name: str) -> AsyncIterator[str]:
    """Another fresh database from the template (an import's destination)."""
    async with _database(server_url, template_name) as url:
        yield url


@pytest.fixture
async def empty_database_url(server_url: str) -> AsyncIterator[str]:
    """A database with no schema at all."""
    async with _database(server_url, "template0", "og_empty") as url:
        yield url


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool like the server's (generic plans), for apps and tests' own statements."""
    pool = await create_pool(database_url, min_size=1, max_size=20, generic_plans=True)
    yield pool
    await pool.close()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


@pytest.fixture
async def client(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, pool=pool)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


@dataclass
class LiveServer:
    url: str
    database_url: str

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/graphql"


def _run_server(settings: Settings) -> tuple[uvicorn.Server, threading.Thread, str]:
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, lifespan="on",
                            **uvicorn_options(settings))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the test server did not start")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the test server did not start within 60 s")
        threading.Event().wait(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture
async def live_server(database_url: str) -> AsyncIterator[LiveServer]:
    """A real uvicorn server (own thread and event loop) on a fresh database with demo data."""
    async with seeded_server(database_url) as server:
        yield server


@contextlib.asynccontextmanager
async def seeded_server(database_url: str, **overrides: Any) -> AsyncIterator[LiveServer]:
    from gql.seed import seed

    seeding = await create_pool(database_url, min_size=1, max_size=4)
    await seed(seeding, orders=12, customers=4, seed=7, concurrency=4)
    await settled_end(seeding)  # the server's subscriptions start after the demo data
    await seeding.close()
    async with serving(database_url, **overrides) as server:
        yield server


@contextlib.asynccontextmanager
async def serving(database_url: str, **overrides: Any) -> AsyncIterator[LiveServer]:
    """A real server with non-default settings, on the test's database, as the server's role."""
    server, thread, url = await asyncio.to_thread(
        _run_server, Settings(database_url=as_role(database_url, APP_ROLE), **overrides))
    try:
        yield LiveServer(url=url, database_url=database_url)
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)


def new_id() -> uuid.UUID:
    return uuid.uuid4()
