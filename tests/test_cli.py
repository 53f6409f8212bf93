"""The command line as users run it: real processes, real databases, one-line errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import psutil
import pytest

from gql.store.migrations import available

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gql", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=ROOT)


def _one_clean_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("ordergraph: error: ")
    return lines[0]


def test_cli_bad_flag_is_one_line_and_exit_2() -> None:
    result = run("serve", "--bogus")
    assert result.returncode == 2
    assert "--bogus" in _one_clean_line(result.stderr)


def test_cli_bad_value_is_one_line() -> None:
    result = run("seed", "--orders", "many", "--database-url", "postgresql://nowhere/x")
    assert result.returncode == 2
    assert "many" in _one_clean_line(result.stderr)


def test_cli_unreachable_database_is_one_line() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run("migrate", "--database-url", f"postgresql://postgres@127.0.0.1:{port}/x")
    assert result.returncode == 1
    line = _one_clean_line(result.stderr)
    assert "cannot connect to the database" in line
    assert f'database "x" on 127.0.0.1:{port}' in line  # migrate says where, also when it fails


def test_cli_database_url_from_environment(database_url: str) -> None:
    result = run("seed", "--orders", "3", env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert "seeded 1 customers, 3 orders" in result.stdout


async def _catalog(url: str) -> list[tuple[object, ...]]:
    """Everything migrate could change: definitions of our objects, and the reference data."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("""
            select 'column', table_name || '.' || column_name || ' ' || data_type
                   || coalesce(column_default, '') from information_schema.columns
            where table_schema = 'public'
            union all select 'function', p.proname || md5(p.prosrc) from pg_proc p
            join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'public'
            union all select 'index', indexdef from pg_indexes where schemaname = 'public'
            union all select 'trigger', tgname || tgrelid::regclass::text from pg_trigger
            where not tgisinternal
            union all select 'constraint', conname || pg_get_constraintdef(oid) from pg_constraint
            where connamespace = 'public'::regnamespace
            union all select 'transition', concat_ws(' ', event_type, from_status, to_status)
            from order_transitions
            union all select 'row counts', (select count(*) from order_events)::text
            order by 1, 2""")
        return [tuple(r.values()) for r in rows]
    finally:
        await conn.close()


async def test_migrate_twice_changes_nothing(database_url: str) -> None:
    assert run("seed", "--orders", "5", "--database-url", database_url).returncode == 0
    before = await _catalog(database_url)
    result = run("migrate", "--database-url", database_url)
    assert result.returncode == 0, result.stderr
    assert await _catalog(database_url) == before


@pytest.mark.parametrize("url", ["postgresql://", "postgresql://postgres@127.0.0.1:5432",
                                 "postgresql://127.0.0.1/?sslmode=disable"])
def test_migrate_refuses_a_url_without_a_database(url: str) -> None:
    result = run("migrate", "--database-url", url, env={"PGDATABASE": ""})
    assert result.returncode == 1 and result.stdout == ""
    assert "names no database" in _one_clean_line(result.stderr)


async def test_migrate_names_the_host_and_database_it_changed(
        empty_database_url: str, database_url: str) -> None:
    def where(url: str) -> str:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2] or parse_qs(parts.query)["host"][0]
        return f'database "{parts.path.lstrip("/")}" on {host}'

    latest = f"migration {len(available()):04d}"
    created = run("migrate", "--database-url", empty_database_url)
    assert created.returncode == 0, created.stderr
    assert created.stdout == f"created the schema in {where(empty_database_url)} ({latest})\n"
    current = run("migrate", "--database-url", database_url)
    assert current.returncode == 0, current.stderr
    assert current.stdout == f"{where(database_url)} is already up to date ({latest})\n"


def _postgres_processes(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == "postgres" and str(data_dir) in cmdline:
            found.append(proc)
    return found


@pytest.mark.slow
def test_embedded_database_starts_persists_and_stops(tmp_path: Path) -> None:
    env = {"ORDERGRAPH_DATA_DIR": str(tmp_path / "pg"), "DATABASE_URL": ""}
    first = run("seed", "--orders", "4", env=env)
    assert first.returncode == 0, first.stderr
    assert _postgres_processes(tmp_path / "pg") == []
    again = run("rebuild-projections", env=env)  # a restart on the same data
    assert again.returncode == 0, again.stderr
    assert "rebuilt 4 orders" in again.stdout
    assert _postgres_processes(tmp_path / "pg") == []


@pytest.mark.slow
def test_serve_stops_the_embedded_database_on_sigterm(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "ORDERGRAPH_DATA_DIR": str(tmp_path / "pg"), "DATABASE_URL": ""}
    server = subprocess.Popen([sys.executable, "-m", "gql", "serve", "--port", str(port)],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.2)
        assert _postgres_processes(tmp_path / "pg")
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert "Traceback" not in err
    assert f"http://127.0.0.1:{port}/graphql" in out
    assert _postgres_processes(tmp_path / "pg") == []


def _serve_embedded(data_dir: Path) -> tuple[subprocess.Popen[str], int]:
    """`ordergraph serve` on the embedded database in `data_dir`, once it answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "ORDERGRAPH_DATA_DIR": str(data_dir), "DATABASE_URL": ""}
    server = subprocess.Popen([sys.executable, "-m", "gql", "serve", "--port", str(port)],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server, port
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise AssertionError(f"serve did not come up: {server.communicate()[1]}")
        time.sleep(0.2)


@pytest.mark.slow
def test_a_killed_serve_does_not_keep_the_embedded_database_from_stopping(tmp_path: Path) -> None:
    try:
        server, _ = _serve_embedded(tmp_path / "pg")
        server.kill()  # kill -9: it never leaves the embedded server's list of users
        server.communicate(timeout=30)
        assert _postgres_processes(tmp_path / "pg")  # nobody stopped it: still running
        env = {"ORDERGRAPH_DATA_DIR": str(tmp_path / "pg"), "DATABASE_URL": ""}
        again = run("seed", "--orders", "2", env=env)  # joins it, and stops it when done
        assert again.returncode == 0, again.stderr
        assert _postgres_processes(tmp_path / "pg") == []
        server, _ = _serve_embedded(tmp_path / "pg")  # a later graceful stop stops it too
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
        assert _postgres_processes(tmp_path / "pg") == []
    finally:
        for leftover in _postgres_processes(tmp_path / "pg"):  # this test's, if it failed
            leftover.kill()


def test_schema_command_prints_the_committed_sdl() -> None:
    result = run("schema")
    assert result.returncode == 0, result.stderr
    committed = (ROOT / "schema.graphql").read_text()
    assert result.stdout == committed, (
        "the GraphQL contract changed: review it, then `ordergraph schema > schema.graphql`")
