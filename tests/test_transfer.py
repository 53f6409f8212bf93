"""Export and import as users run them: real processes, real databases, files on disk."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from gql.seed import seed
from gql.store.connection import create_pool
from gql.store.customers import load_customers
from tests.factories import settled_end
from tests.test_cli import ROOT, _one_clean_line, run

# The log as the rules define it: what each event says, and the status it led to, in log
# order. Positions, transaction ids and recording times are the receiving database's own.
LOG = """
select md5(coalesce(string_agg(concat_ws('|', event_id, order_id, stream_version, event_type,
       occurred_at, correlation_id, causation_id, actor_type, actor_id, customer_id, payload,
       schema_version, status, trace_parent), ',' order by log_xid, global_position), ''))
from order_events
"""
READ_MODEL = """
select md5(coalesce(string_agg(concat_ws('|', order_id, customer_id, status, currency, total_amount,
       authorized_amount, captured_amount, items, version, placed_at, last_event_at), ','
       order by order_id), '')) from orders_current
"""
TRACED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
# customers as readers see them: sealed under keys of each database's own, opened to compare
CUSTOMER_IDS = "select customer_id from customers order by customer_id"


async def _seeded(url: str) -> None:
    pool = await create_pool(url, min_size=1, max_size=4)
    try:
        await seed(pool, orders=30, customers=6, seed=11, concurrency=4)
        order_id = await pool.fetchval(
            "select order_id from orders_current where status = 'PLACED' order by order_id limit 1")
        await pool.execute("insert into order_events (event_id, order_id, event_type, payload, "
                           "trace_parent) values ($1, $2, 'OrderCancelled', "
                           "'{\"reason\": \"out of stock\"}', $3)",  # an event of schema_version 1,
                           uuid.uuid4(), order_id, TRACED)  # appended in a trace
        # an export shows the log's safe prefix: on a shared server another database's open
        # transaction can hold its tail back for a moment
        await settled_end(pool)
    finally:
        await pool.close()


async def _state(url: str) -> tuple[str, str, str, int]:
    conn = await asyncpg.connect(url)
    try:
        ids = [r[0] for r in await conn.fetch(CUSTOMER_IDS)]
        shown = await load_customers(conn, ids, None)
        return (await conn.fetchval(LOG), await conn.fetchval(READ_MODEL),
                hashlib.md5(repr(shown).encode()).hexdigest(),
                await conn.fetchval("select count(*) from order_events"))
    finally:
        await conn.close()


def _item_added(like: dict[str, object], *, stream_version: int) -> dict[str, object]:
    """A new ItemAddedToOrder line on `like`'s order, valid while the order is PLACED."""
    return {**like, "event_id": str(uuid.uuid4()), "event_type": "ItemAddedToOrder",
            "stream_version": stream_version, "customer": None,
            "payload": {"sku": "GAP-1", "quantity": 1, "unitPrice": "1.00"}}


def _export(url: str, path: Path, *args: str) -> list[dict[str, object]]:
    result = run("export", "--database-url", url, "--output", str(path), *args)
    assert result.returncode == 0, result.stderr
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def test_transfer_round_trip_gives_the_same_log_and_read_models(
        database_url: str, second_database_url: str, tmp_path: Path) -> None:
    await _seeded(database_url)
    lines = _export(database_url, tmp_path / "log.ndjson")
    source = await _state(database_url)
    assert len(lines) == source[3] and lines[0]["event_type"] == "OrderPlaced"
    assert {"position", "global_position", "log_xid", "recorded_at", "payload"} <= set(lines[0])
    assert [e["trace_parent"] for e in lines if e["trace_parent"]] == [TRACED]  # kept, then compared
    assert "status" not in lines[0]  # derived by the receiving database's state machine
    imported = run("import", str(tmp_path / "log.ndjson"), "--database-url", second_database_url)
    assert imported.returncode == 0, imported.stderr
    assert f"appended {source[3]}, deduplicated 0, refused 0" in imported.stdout
    assert await _state(second_database_url) == source
    assert await _tallies_pages(second_database_url) <= 1  # folded and rewritten, not left behind
    # importing the same file again appends nothing
    again = run("import", str(tmp_path / "log.ndjson"), "--database-url", second_database_url)
    assert again.returncode == 0, again.stderr
    assert f"appended 0, deduplicated {source[3]}, refused 0" in again.stdout
    assert await _state(second_database_url) == source
    rebuilt = run("rebuild-projections", "--database-url", second_database_url)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "events/s; 0 rows differed from the live read model" in rebuilt.stdout
    assert await _tallies_pages(second_database_url) <= 1


async def _tallies_pages(url: str) -> int:
    """The pages of the tallies behind counts: every count reads them all."""
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(
            "select pg_relation_size('order_tallies') / current_setting('block_size')::int")
    finally:
        await conn.close()


async def test_transfer_import_recomputes_a_status_the_file_names(
        database_url: str, second_database_url: str, tmp_path: Path) -> None:
    await _seeded(database_url)
    lines = _export(database_url, tmp_path / "log.ndjson")
    (tmp_path / "forged.ndjson").write_bytes(
        b"".join(orjson.dumps({**e, "status": "SHIPPED"}) + b"\n" for e in lines))
    imported = run("import", str(tmp_path / "forged.ndjson"), "--database-url", second_database_url)
    assert imported.returncode == 0, imported.stderr
    assert await _state(second_database_url) == await _state(database_url)


async def test_transfer_export_resumes_after_a_position(database_url: str, tmp_path: Path) -> None:
    await _seeded(database_url)
    events = (await _state(database_url))[3]
    # the export shows the log's safe prefix: on a shared server another database's running
    # transaction can hold its tail back for a moment, so wait until it shows every event
    for _ in range(40):
        everything = _export(database_url, tmp_path / "all.ndjson")
        if len(everything) == events:
            break
        await asyncio.sleep(0.25)
    assert len(everything) == events
    middle = everything[len(everything) // 2 - 1]["position"]
    for _ in range(40):
        rest = _export(database_url, tmp_path / "rest.ndjson", "--after", str(middle))
        if len(rest) == len(everything) - len(everything) // 2:
            break
        await asyncio.sleep(0.25)
    assert rest == everything[len(everything) // 2:]
    shipped = _export(database_url, tmp_path / "shipped.ndjson", "--types", "ORDER_SHIPPED")
    assert shipped == [e for e in everything if e["event_type"] == "OrderShipped"]


async def test_transfer_import_reports_refused_lines_and_writes_nothing_of_them(
        database_url: str, second_database_url: str, tmp_path: Path) -> None:
    await _seeded(database_url)
    lines = _export(database_url, tmp_path / "log.ndjson")
    first = lines[0]
    other = "JPY" if first["payload"]["currency"] != "JPY" else "USD"  # other content, same id
    conflict = {**first, "payload": {**first["payload"], "currency": other}}
    skipped = _item_added(first, stream_version=9)
    unknown = {**_item_added(first, stream_version=2), "order_id": str(uuid.uuid4())}
    untraceable = {**_item_added(first, stream_version=2), "trace_parent": "00-not-a-trace"}
    rows = [first, "not json", conflict, skipped, unknown, {"event_type": "OrderPlaced"}, untraceable]
    (tmp_path / "mixed.ndjson").write_bytes(
        b"\n".join(r.encode() if isinstance(r, str) else orjson.dumps(r) for r in rows) + b"\n")
    result = run("import", str(tmp_path / "mixed.ndjson"), "--database-url", second_database_url)
    assert result.returncode == 1
    assert "appended 1, deduplicated 0, refused 6" in result.stdout
    reported = [line.split(":")[:2] for line in result.stderr.splitlines() if line.startswith("line ")]
    assert reported == [["line 2", " BAD_USER_INPUT"], ["line 3", " IDEMPOTENCY_CONFLICT"],
                        ["line 4", " WRONG_EXPECTED_VERSION"], ["line 5", " ORDER_NOT_FOUND"],
                        ["line 6", " BAD_USER_INPUT"], ["line 7", " BAD_USER_INPUT"]]
    assert "line 7: BAD_USER_INPUT: trace_parent must be a W3C traceparent" in result.stderr
    conn = await asyncpg.connect(second_database_url)
    try:
        stored = await conn.fetch("select event_id from order_events")
        assert [str(r[0]) for r in stored] == [first["event_id"]]
        assert await conn.fetchval("select count(*) from orders_current") == 1
    finally:
        await conn.close()


async def test_transfer_import_applies_the_rules_within_a_stream(
        database_url: str, second_database_url: str, tmp_path: Path) -> None:
    await _seeded(database_url)
    lines = _export(database_url, tmp_path / "log.ndjson")
    paid = next(e for e in lines if e["event_type"] == "PaymentAuthorized")
    stream = [e for e in lines if e["order_id"] == paid["order_id"]]
    upto = stream[: stream.index(paid)]
    wrong = {**paid, "payload": {**paid["payload"], "amount": "0.01"}}
    gap = _item_added(paid, stream_version=99)
    (tmp_path / "stream.ndjson").write_bytes(b"".join(orjson.dumps(e) + b"\n"
                                                      for e in [*upto, wrong, gap]))
    result = run("import", str(tmp_path / "stream.ndjson"), "--database-url", second_database_url)
    assert result.returncode == 1
    assert f"appended {len(upto)}, deduplicated 0, refused 2" in result.stdout
    assert f"line {len(upto) + 1}: BAD_USER_INPUT" in result.stderr
    assert f"line {len(upto) + 2}: WRONG_EXPECTED_VERSION" in result.stderr
    conn = await asyncpg.connect(second_database_url)
    try:
        assert await conn.fetchval("select version from orders_current") == len(upto)
    finally:
        await conn.close()


def test_transfer_bad_arguments_are_one_line(tmp_path: Path) -> None:
    url = "postgresql://nowhere/x"
    bad_after = run("export", "--after", "yesterday", "--database-url", url)
    assert bad_after.returncode == 2 and "after" in _one_clean_line(bad_after.stderr)
    bad_type = run("export", "--types", "ORDER_LOST", "--database-url", url)
    assert bad_type.returncode == 2 and "ORDER_LOST" in _one_clean_line(bad_type.stderr)
    missing = run("import", str(tmp_path / "nothing.ndjson"), "--database-url", url)
    assert missing.returncode == 2 and "nothing.ndjson" in _one_clean_line(missing.stderr)


async def test_transfer_failed_export_keeps_the_last_good_file(
        database_url: str, tmp_path: Path) -> None:
    await _seeded(database_url)
    good = tmp_path / "log.ndjson"
    lines = _export(database_url, good)
    kept = good.read_bytes()
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        nowhere = f"postgresql://postgres@127.0.0.1:{sock.getsockname()[1]}/x"
    failed = run("export", "--database-url", nowhere, "--output", str(good))
    assert failed.returncode == 1
    assert "cannot connect to the database" in _one_clean_line(failed.stderr)
    assert good.read_bytes() == kept and len(lines) > 30
    assert os.listdir(tmp_path) == ["log.ndjson"]  # no temporary file left behind


def _bad_lines(lines: list[dict[str, Any]]) -> tuple[list[bytes], dict[int, str]]:
    """The export with bad lines put in, and the code each bad line (by number) must get."""
    placed = next(e for e in lines if e["event_type"] == "OrderPlaced")
    rest = [e for e in lines if e["order_id"] != placed["order_id"]]
    nul_payload = {**placed, "payload": {**placed["payload"], "currency": "EU\u0000R"}}
    nul_actor = {**placed, "actor_id": "ann\u0000"}
    nul_customer = {**placed, "customer": {**placed["customer"], "name": "Ann\u0000 Lee"}}
    repeated = {**rest[0], "payload": {**rest[0]["payload"], "note": "x" * 100}}
    rows = [nul_payload, nul_actor, nul_customer, *rest[:1], repeated, *rest[1:]]
    expected = {1: "BAD_USER_INPUT", 2: "BAD_USER_INPUT", 3: "BAD_USER_INPUT",
                5: "IDEMPOTENCY_CONFLICT"}
    return [orjson.dumps(r) + b"\n" for r in rows], expected


def _refusals(stderr: str) -> dict[int, str]:
    found = {}
    for line in stderr.splitlines():
        if line.startswith("line "):
            number, code, message = line.split(": ", 2)
            assert message.strip(), line
            found[int(number.removeprefix("line "))] = code
    return found


@pytest.mark.parametrize("batch_size", ["1", "1000"])
async def test_transfer_import_refuses_bad_lines_one_by_one_at_any_batch_size(
        database_url: str, second_database_url: str, tmp_path: Path, batch_size: str) -> None:
    await _seeded(database_url)
    lines = _export(database_url, tmp_path / "log.ndjson")
    rows, expected = _bad_lines(lines)
    (tmp_path / "bad.ndjson").write_bytes(b"".join(rows))
    result = run("import", str(tmp_path / "bad.ndjson"), "--batch-size", batch_size,
                 "--database-url", second_database_url)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
    assert _refusals(result.stderr) == expected
    conflict = f"line 5: IDEMPOTENCY_CONFLICT: event {orjson.loads(rows[4])['event_id']} was "
    assert any(line.startswith(conflict) and line.endswith(" with different content")
               for line in result.stderr.splitlines()), result.stderr  # one line, unwrapped
    good = len(rows) - len(expected)
    assert f"appended {good}, deduplicated 0, refused {len(expected)}" in result.stdout
    conn = await asyncpg.connect(second_database_url)
    try:
        stored = {str(r[0]) for r in await conn.fetch("select event_id from order_events")}
    finally:
        await conn.close()
    placed = orjson.loads(rows[0])["order_id"]
    assert stored == {e["event_id"] for e in lines if e["order_id"] != placed}


async def test_transfer_import_reads_a_file_that_starts_with_a_byte_order_mark(
        database_url: str, second_database_url: str, tmp_path: Path) -> None:
    await _seeded(database_url)
    _export(database_url, tmp_path / "log.ndjson")
    (tmp_path / "bom.ndjson").write_bytes(b"\xef\xbb\xbf" + (tmp_path / "log.ndjson").read_bytes())
    result = run("import", str(tmp_path / "bom.ndjson"), "--database-url", second_database_url)
    assert result.returncode == 0, result.stderr
    assert await _state(second_database_url) == await _state(database_url)


def _import_peak_rss(path: Path, url: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """`ordergraph import` of `path`, and the largest resident size (KB) it reached."""
    wrapper = ("import atexit, resource, sys\n"
               "atexit.register(lambda: print('peak', resource.getrusage(resource.RUSAGE_SELF)"
               ".ru_maxrss, file=sys.stderr))\n"
               "from gql.cli import main\nmain(sys.argv[1:])\n")
    result = subprocess.run([sys.executable, "-c", wrapper, "import", str(path), "--database-url", url],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    peak = next(int(line.split()[1]) for line in result.stderr.splitlines() if line.startswith("peak "))
    return result, peak


async def test_transfer_import_refuses_an_overlong_line_without_reading_it_into_memory(
        database_url: str, second_database_url: str, tmp_path: Path) -> None:
    await _seeded(database_url)
    lines = _export(database_url, tmp_path / "log.ndjson")
    huge = orjson.dumps({**lines[0], "payload": {"blob": "x" * (96 * 1024 * 1024)}}) + b"\n"
    (tmp_path / "huge.ndjson").write_bytes(huge + (tmp_path / "log.ndjson").read_bytes())
    del huge
    small, small_peak = await asyncio.to_thread(_import_peak_rss, tmp_path / "log.ndjson",
                                                second_database_url)
    assert small.returncode == 0, small.stderr
    result, peak = await asyncio.to_thread(_import_peak_rss, tmp_path / "huge.ndjson",
                                           second_database_url)
    assert result.returncode == 1
    assert _refusals(result.stderr) == {1: "BAD_USER_INPUT"}
    assert "line 1: BAD_USER_INPUT: the line is longer than" in result.stderr
    assert f"appended 0, deduplicated {len(lines)}, refused 1" in result.stdout
    assert peak < small_peak + 24 * 1024, (peak, small_peak)  # KB: far below the 96 MB line
