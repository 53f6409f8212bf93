"""Signed webhooks against a real HTTP receiver that fails, drops connections, or always fails."""

from __future__ import annotations

import asyncio
import base64
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from tests import factories
from tests.outbound import Relay, logged, position_of, relays, writer
from tests.test_relay_nats import caught_up, cli

pytestmark = pytest.mark.slow
SECRET = "whsec_" + base64.b64encode(b"ordergraph-test-secret-32-bytes!").decode()


@dataclass
class Receiver:
    """An HTTP/1.1 server that answers 500 to `fail` of the POSTs and drops the connection
    of `drop` of them (before answering), else 204; it keeps what it confirmed."""

    fail: float = 0.0
    drop: float = 0.0
    url: str = ""
    confirmed: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    attempts: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request := await reader.readline():
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                assert request.startswith(b"POST ")
                self.attempts += 1
                luck = self.rng.random()
                if luck < self.drop:
                    writer.transport.abort()  # no answer at all
                    return
                status = b"500 Internal Server Error" if luck < self.drop + self.fail else b"204 No Content"
                if status.startswith(b"204"):
                    self.confirmed.append((headers["webhook-id"], headers, body))
                writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    server = await asyncio.start_server(found.handle, "127.0.0.1", 0)
    found.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hooks"
    async with server:
        yield found


def webhook_relay(database_url: str, url: str, name: str, *extra: str) -> Relay:
    return Relay(database_url, "webhook", "--url", url, "--secret", SECRET, "--consumer", name,
                 "--backoff", "0.01", "--max-backoff", "0.05", "--timeout", "2", *extra)


async def test_relay_webhook_with_a_flaky_receiver_delivers_every_event_signed(
        pool: asyncpg.Pool, database_url: str, receiver: Receiver) -> None:
    """30 % of POSTs fail and some connections drop: after deduplication by webhook-id the
    receiver has every event once, each signature verifies with the reference library, and
    the body is the event's JSON."""
    receiver.fail, receiver.drop = 0.3, 0.05
    customer_id = await factories.customer(pool)
    stop = asyncio.Event()
    writers = [asyncio.create_task(writer(pool, customer_id, stop)) for _ in range(4)]
    relay = await webhook_relay(database_url, receiver.url, "hooks", "--max-attempts", "30").start()
    async with relays(relay):
        await asyncio.sleep(3)
        stop.set()
        await asyncio.gather(*writers)
        await caught_up(pool, "hooks")
    events = await logged(pool)
    first: dict[str, bytes] = {}
    verifier = Webhook(SECRET)
    for message_id, headers, body in receiver.confirmed:
        verifier.verify(body, headers)  # raises when the signature or the timestamp is wrong
        first.setdefault(message_id, body)
        assert orjson.loads(body)["event_id"] == message_id
    assert [uuid.UUID(m) for m in first] == [e[0] for e in events]  # each once, in log order
    assert receiver.attempts > len(receiver.confirmed)  # failures happened and were retried
    assert await pool.fetchval("select count(*) from consumer_parked") == 0


async def test_relay_webhook_parks_what_always_fails_and_replay_delivers_it(
        pool: asyncpg.Pool, database_url: str, receiver: Receiver) -> None:
    receiver.fail = 1.0
    for _ in range(2):
        await factories.order_in(pool, factories.OrderStatus.PLACED)
    relay = await webhook_relay(database_url, receiver.url, "parking", "--max-attempts", "3").start()
    async with relays(relay):
        await caught_up(pool, "parking")
        events = await logged(pool)
        assert receiver.confirmed == [] and receiver.attempts == 3 * len(events)
        parked = await asyncio.to_thread(cli, database_url, "consumers", "parked", "parking")
        assert parked.returncode == 0, parked.stderr
        lines = parked.stdout.strip().splitlines()
        assert [line.split()[0] for line in lines] == [str(e[0]) for e in events]
        assert all("3 attempts" in line and "HTTP 500" in line for line in lines)
        receiver.fail = 0.0
        replay = await asyncio.to_thread(cli, database_url, "consumers", "replay", "parking")
        assert replay.stdout.strip() == (
            f"{len(events)} parked events of parking will be delivered again by its relay")
        async with asyncio.timeout(10):
            while await pool.fetchval("select count(*) from consumer_parked"):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    assert [uuid.UUID(m) for m, _, _ in receiver.confirmed] == [e[0] for e in events]


async def test_relay_webhook_on_failure_stop_parks_the_event_and_stops(
        pool: asyncpg.Pool, database_url: str, receiver: Receiver) -> None:
    receiver.fail = 1.0
    await factories.order_in(pool, factories.OrderStatus.PAID)
    relay = await webhook_relay(database_url, receiver.url, "halt", "--max-attempts", "2",
                                "--on-failure", "stop").start()
    async with relays(relay):
        assert relay.process is not None
        async with asyncio.timeout(20):
            code = await relay.process.wait()
    assert code == 1
    assert "consumer halt stopped at an event it could not deliver" in relay.output()
    first = (await logged(pool))[0][0]
    assert await pool.fetchval("select event_id from consumer_parked") == first
    assert await position_of(pool, "halt") > factories.Position(0, 0)
    assert "stopped: HTTP 500" in (await asyncio.to_thread(cli, database_url, "consumers", "list")).stdout
