"""The NATS JetStream relay against a real nats-server: each event once, in log order, also
when the relay is killed and when two processes run the same consumer."""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import asyncpg
import nats
import pytest
from nats.js import JetStreamContext

from gql.store.connection import APP_ROLE, as_role
from tests import factories
from tests.outbound import NATS_URL, Relay, logged, position_of, relays, writer

pytestmark = pytest.mark.slow


@pytest.fixture
async def jetstream() -> AsyncIterator[JetStreamContext]:
    try:
        nc = await nats.connect(NATS_URL, connect_timeout=3, allow_reconnect=False)
    except Exception as exc:
        pytest.fail(f"no NATS server with JetStream at {NATS_URL} ({exc}); scripts/test starts one")
    yield nc.jetstream()
    await nc.close()


@pytest.fixture
async def stream(jetstream: JetStreamContext) -> AsyncIterator[tuple[str, str]]:
    """A stream name and subject template of this test's own (the server is shared)."""
    tag = uuid.uuid4().hex[:12]
    yield f"OGTEST_{tag}", f"ogtest.{tag}.{{type}}"
    with contextlib.suppress(Exception):  # never created, when the test failed early
        await jetstream.delete_stream(f"OGTEST_{tag}")


async def stored(js: JetStreamContext, stream: str) -> list[tuple[uuid.UUID, uuid.UUID, int]]:
    """Every message of the stream, in its order: (Nats-Msg-Id, order id, stream version)."""
    info = await js.stream_info(stream)
    found = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(stream, seq)
        headers = msg.headers or {}
        found.append((uuid.UUID(headers["Nats-Msg-Id"]), uuid.UUID(headers["Ordergraph-Order-Id"]),
                      int(headers["Ordergraph-Stream-Version"])))
    return found


async def caught_up(pool: asyncpg.Pool, name: str, seconds: float = 60) -> None:
    end = await factories.settled_end(pool)
    async with asyncio.timeout(seconds):
        while await position_of(pool, name) < end:  # noqa: ASYNC110 (polls the database)
            await asyncio.sleep(0.05)


def nats_relay(database_url: str, stream: tuple[str, str], name: str, *extra: str) -> Relay:
    return Relay(database_url, "nats", "--url", NATS_URL, "--stream", stream[0],
                 "--subject", stream[1], "--consumer", name, "--batch", "50", *extra)


async def test_relay_nats_killed_three_times_stores_each_event_once_in_log_order(
        pool: asyncpg.Pool, database_url: str, jetstream: JetStreamContext,
        stream: tuple[str, str]) -> None:
    """8 writers append while the relay is kill -9'd three times at random moments: the
    stream holds exactly the log's events, each once, in the log's order."""
    customer_id = await factories.customer(pool)
    stop = asyncio.Event()
    writers = [asyncio.create_task(writer(pool, customer_id, stop)) for _ in range(8)]
    rng = random.Random(3)
    started: list[Relay] = []
    async with relays(started):  # the list: relays started in the block are killed too
        for _ in range(3):
            relay = await nats_relay(database_url, stream, "killed").start()
            started.append(relay)
            await asyncio.sleep(1.0 + rng.random() * 1.5)
            assert relay.running, relay.output()
            await relay.kill()
        stop.set()
        assert sum(await asyncio.gather(*writers)) > 100
        last = await nats_relay(database_url, stream, "killed").start()
        started.append(last)
        await caught_up(pool, "killed")
    log = await logged(pool)
    assert await stored(jetstream, stream[0]) == log  # every event once, in the log's order
    versions: dict[uuid.UUID, list[int]] = {}
    for _, order_id, version in log:
        versions.setdefault(order_id, []).append(version)
    assert all(v == list(range(1, len(v) + 1)) for v in versions.values())


async def test_relay_nats_two_processes_of_one_consumer_publish_each_event_once(
        pool: asyncpg.Pool, database_url: str, jetstream: JetStreamContext,
        stream: tuple[str, str]) -> None:
    """Two relays of one consumer: one delivers, the other waits; killing the active one
    hands over within the takeover interval and nothing is lost or stored twice."""
    customer_id = await factories.customer(pool)
    stop = asyncio.Event()
    writers = [asyncio.create_task(writer(pool, customer_id, stop)) for _ in range(4)]
    first = await nats_relay(database_url, stream, "pair").start()
    second = await nats_relay(database_url, stream, "pair").start()
    async with relays(first, second):
        holders: list[asyncpg.Record] = []
        async with asyncio.timeout(30):  # both processes start (slowly on a busy machine)
            while len(holders) != 1 or await pool.fetchval(
                    "select count(*) from pg_stat_activity "
                    "where application_name like 'ordergraph-relay nats %:%' "
                    "and application_name not like '% reader'") != 2:
                await asyncio.sleep(0.1)
                holders = await pool.fetch(
                    "select a.application_name, a.pid from pg_locks l "
                    "join pg_stat_activity a using (pid) "
                    "join stream_consumers c on l.objid = c.consumer_id::oid "
                    "where l.locktype = 'advisory' and l.granted and l.classid = 28519::oid "
                    "and c.name = 'pair'")
        await asyncio.sleep(1.0)
        holders = await pool.fetch(
            "select a.application_name, a.pid from pg_locks l join pg_stat_activity a using (pid) "
            "join stream_consumers c on l.objid = c.consumer_id::oid "
            "where l.locktype = 'advisory' and l.granted and l.classid = 28519::oid "
            "and c.name = 'pair'")
        assert len(holders) == 1, holders  # one delivers, the other waits
        pids = {first.process.pid: first, second.process.pid: second}  # type: ignore[union-attr]
        active = next(r for pid, r in pids.items() if holders[0]["application_name"].endswith(f":{pid}"))
        standby = second if active is first else first
        moved = await position_of(pool, "pair")
        await active.kill()
        async with asyncio.timeout(10):  # the takeover interval is 1 s (plus a busy machine)
            while await position_of(pool, "pair") == moved:  # noqa: ASYNC110 (polls the database)
                await asyncio.sleep(0.05)
        assert standby.running
        stop.set()
        await asyncio.gather(*writers)
        await caught_up(pool, "pair")
    assert await stored(jetstream, stream[0]) == await logged(pool)


async def test_relay_nats_consumer_filter_and_commands(
        pool: asyncpg.Pool, database_url: str, jetstream: JetStreamContext,
        stream: tuple[str, str]) -> None:
    """A filtered consumer publishes only its types; `consumers list` shows it caught up;
    `reset` refuses while it runs, then moves it back and it publishes again (dropped by
    JetStream as duplicates); `delete` forgets it."""
    for _ in range(3):
        await factories.order_in(pool, factories.OrderStatus.PAID)
    relay = await nats_relay(database_url, stream, "paid", "--types",
                             "PAYMENT_CAPTURED,ORDER_PLACED").start()
    async with relays(relay):
        await caught_up(pool, "paid")
        types = {r[0] for r in await pool.fetch(
            "select event_type from order_events e join (select unnest($1::uuid[]) id) s "
            "on s.id = e.event_id", [m[0] for m in await stored(jetstream, stream[0])])}
        assert types == {"OrderPlaced", "PaymentCaptured"}
        assert len(await stored(jetstream, stream[0])) == 6
        listed = cli(database_url, "consumers", "list")
        assert "paid  nats  ORDER_PLACED,PAYMENT_CAPTURED" in listed.stdout
        assert "lag 0 events" in listed.stdout and "running in ordergraph-relay nats" in listed.stdout
        refused = cli(database_url, "consumers", "reset", "paid", "--to", "start")
        assert refused.returncode == 1
        assert refused.stderr.strip() == "ordergraph: error: consumer paid is running; stop its relay first"
    moved = cli(database_url, "consumers", "reset", "paid", "--to", "start")
    assert moved.returncode == 0, moved.stderr
    assert await position_of(pool, "paid") == factories.Position(0, 0)
    again = await nats_relay(database_url, stream, "paid", "--types",
                             "PAYMENT_CAPTURED,ORDER_PLACED").start()
    async with relays(again):
        await caught_up(pool, "paid")
    assert len(await stored(jetstream, stream[0])) == 6  # the repeats were dropped
    assert cli(database_url, "consumers", "delete", "paid").returncode == 0
    assert await pool.fetchval("select count(*) from stream_consumers") == 0


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gql", *args, "--database-url",
                           as_role(database_url, APP_ROLE)], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize(("args", "message"), [
    (("consumers", "reset", "nobody", "--to", "start"), "no consumer named nobody"),
    (("consumers", "reset", "x", "--to", "yesterday"), "is neither a position"),
    (("relay", "nats", "--stream", "S", "--consumer", "c", "--subject", "a.{kind}"),
     "the placeholders are {type} and {order}"),
    (("relay", "nats", "--stream", "S", "--consumer", "no spaces"), "a consumer's name is"),
    (("relay", "nats", "--stream", "S", "--consumer", "c", "--types", "NOPE"),
     "unknown event type NOPE"),
    (("relay", "webhook", "--url", "http://127.0.0.1:9/", "--secret", "nope", "--consumer", "c"),
     "must start with whsec_"),
])
async def test_relay_commands_refuse_bad_input_in_one_line(
        pool: asyncpg.Pool, database_url: str, args: tuple[str, ...], message: str) -> None:
    done = await asyncio.to_thread(cli, database_url, *args)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ordergraph: error:") and message in lines[0], lines
    assert await pool.fetchval("select count(*) from stream_consumers") == 0


async def test_relay_nats_beside_the_server_delivers_and_reports_its_lag(
        pool: asyncpg.Pool, database_url: str, jetstream: JetStreamContext,
        stream: tuple[str, str]) -> None:
    """A relay named by the settings runs in the server's process, woken by the live hub;
    /metrics and /readyz report its lag."""
    import httpx

    from tests.conftest import serving

    async with serving(database_url, relay_nats_url=NATS_URL, relay_nats_stream=stream[0],
                       relay_nats_subject=stream[1], relay_nats_consumer="beside") as server:
        for _ in range(3):
            await factories.order_in(pool, factories.OrderStatus.PAID)
        await caught_up(pool, "beside", 20)
        async with httpx.AsyncClient(base_url=server.url) as http:
            ready = (await http.get("/readyz")).json()
            metrics = (await http.get("/metrics")).text
    assert ready["consumers"]["beside"] == {"lag_events": 0, "lag_seconds": 0.0, "running": True,
                                            "parked": 0, "stopped": None}
    assert 'ordergraph_consumer_lag_events{consumer="beside"} 0.0' in metrics
    assert 'ordergraph_consumer_lag_seconds{consumer="beside"} 0.0' in metrics
    assert await stored(jetstream, stream[0]) == await logged(pool)
