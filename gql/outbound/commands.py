"""`ordergraph relay nats|webhook` (a consumer as its own process) and `ordergraph consumers …`
(list, reset, delete, parked, replay)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import click
from rich.console import Console

from gql.database import database_url as resolve_database
from gql.database import default_data_dir
from gql.errors import ConsumerRefused, DomainError
from gql.events import ORIGIN, EventType, Position

T = TypeVar("T")
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

database_option = click.option(
    "--database-url", envvar="DATABASE_URL", default=None, metavar="URL",
    help="PostgreSQL to use [env DATABASE_URL]; default: the embedded one in ORDERGRAPH_DATA_DIR.")
consumer_option = click.option(
    "--consumer", "name", required=True, metavar="NAME",
    help="The durable consumer: its position is kept in PostgreSQL under this name.")
types_option = click.option(
    "--types", default=None, metavar="TYPE,…",
    help="Only these event types, comma-separated (e.g. ORDER_PLACED,ORDER_SHIPPED); "
         "default: every type.")
from_option = click.option(
    "--from", "start", type=click.Choice(["start", "end"]), default="start", show_default=True,
    help="Where a new consumer begins: the log's first event, or the events after now.")
batch_option = click.option(
    "--batch", type=click.IntRange(1, 10_000), default=500, show_default=True,
    help="Events read and handed to the sink at a time.")


def run_with_database(url: str | None, job: Callable[[str], Awaitable[T]]) -> T:
    """`job(url)` on a database at this release's schema, as the server's role when embedded."""
    from gql.store.connection import APP_ROLE, as_role, connect
    from gql.store.migrations import prepare

    async def prepared(resolved: str) -> T:
        conn = await connect(resolved)
        try:
            await prepare(conn, upgrade=url is None)
        finally:
            await conn.close()
        return await job(resolved if url else as_role(resolved, APP_ROLE))

    with resolve_database(url, default_data_dir()) as resolved:
        try:
            return asyncio.run(prepared(resolved))
        except ConsumerRefused as exc:
            raise click.ClickException(str(exc)) from None


def parse_types(types: str | None) -> list[str] | None:
    try:
        return sorted({EventType[t.strip()].value for t in types.split(",")}) if types else None
    except KeyError as exc:
        raise click.BadParameter(f"unknown event type {exc.args[0]}", param_hint="--types") from None


def parse_name(name: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", name):
        raise click.BadParameter("a consumer's name is letters, digits, '_', '.' and '-' "
                                 "(at most 100, starting with a letter or digit)",
                                 param_hint="--consumer")
    return name


async def _start_position(url: str, start: str) -> Position:
    if start == "start":
        return ORIGIN
    from gql.store import reads
    from gql.store.connection import connect

    conn = await connect(url)
    try:
        return await reads.last_safe_position(conn)
    finally:
        await conn.close()


def _run_relay(database_url: str | None, name: str, types: list[str] | None, start: str,
               batch: int, make_sink: Callable[[], Any], banner: str) -> None:
    from gql.outbound.consumer import ConsumerRunner, Stopped

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from gql import traces

    traces.start()  # spans per delivery when OTEL_* names an exporter

    async def job(url: str) -> None:
        runner = ConsumerRunner(url, name, make_sink(), types=types,
                                start=await _start_position(url, start), batch=batch)
        err.print(banner)
        await runner.run()

    try:
        run_with_database(database_url, job)
    except Stopped as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        traces.shutdown()


@click.group()
def relay() -> None:
    """Run a durable consumer as its own process, delivering the log to a sink."""


@relay.command("nats")
@click.option("--url", envvar="ORDERGRAPH_RELAY_NATS_URL", default="nats://127.0.0.1:4222",
              show_default=True, help="NATS server [env ORDERGRAPH_RELAY_NATS_URL].")
@click.option("--stream", required=True, help="The JetStream stream (created when missing).")
@click.option("--subject", default="orders.{type}", show_default=True,
              help="Subject per event; {type} is the event type (OrderPlaced), {order} its order.")
@consumer_option
@types_option
@from_option
@batch_option
@click.option("--ack-timeout", type=click.FloatRange(0.1, 600), default=5.0, show_default=True,
              help="Seconds to wait for JetStream's acks of a batch.")
@database_option
def relay_nats(url: str, stream: str, subject: str, name: str, types: str | None, start: str,
               batch: int, ack_timeout: float, database_url: str | None) -> None:
    """Publish every event to NATS JetStream (Nats-Msg-Id = event id), in the log's order."""
    from gql.errors import ConfigurationError
    from gql.outbound.jetstream import JetStreamSink, check_subject

    try:
        check_subject(subject)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--subject") from None
    _run_relay(database_url, parse_name(name), parse_types(types), start, batch,
               lambda: JetStreamSink(url, stream, subject, ack_timeout=ack_timeout),
               f"relaying consumer {name} to NATS {url}, stream {stream}, subject {subject}")


@relay.command("webhook")
@click.option("--url", required=True, envvar="ORDERGRAPH_WEBHOOK_URL",
              help="Where to POST each event [env ORDERGRAPH_WEBHOOK_URL].")
@click.option("--secret", required=True, envvar="ORDERGRAPH_WEBHOOK_SECRET", metavar="whsec_…",
              help="The Standard Webhooks signing secret [env ORDERGRAPH_WEBHOOK_SECRET].")
@consumer_option
@types_option
@from_option
@click.option("--max-attempts", type=click.IntRange(1, 100), default=8, show_default=True,
              help="Attempts per event before it is parked.")
@click.option("--backoff", type=click.FloatRange(0.001, 3600), default=1.0, show_default=True,
              help="Seconds before the first retry; doubled after each failure.")
@click.option("--max-backoff", type=click.FloatRange(0.001, 86400), default=300.0,
              show_default=True, help="The longest wait between two attempts, in seconds.")
@click.option("--timeout", type=click.FloatRange(0.1, 600), default=10.0, show_default=True,
              help="Seconds a receiver has to answer one POST.")
@click.option("--batch", type=click.IntRange(1, 10_000), default=50, show_default=True,
              help="Events read at a time (each is POSTed on its own, in order).")
@click.option("--on-failure", type=click.Choice(["park", "stop"]), default="park",
              show_default=True,
              help="After the last attempt the event is parked; then go on, or stop there.")
@database_option
def relay_webhook(url: str, secret: str, name: str, types: str | None, start: str,
                  max_attempts: int, backoff: float, max_backoff: float, timeout: float,
                  batch: int, on_failure: str, database_url: str | None) -> None:
    """POST every event to a URL, signed as Standard Webhooks say (webhook-id = event id)."""
    from gql.errors import ConfigurationError
    from gql.outbound.webhooks import Retry, WebhookSink

    try:
        sink = WebhookSink(url, secret, retry=Retry(max_attempts, backoff, max_backoff),
                           timeout=timeout, stop_on_failure=on_failure == "stop")
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc)) from None
    _run_relay(database_url, parse_name(name), parse_types(types), start, batch, lambda: sink,
               f"relaying consumer {name} to {url} (on failure: {on_failure})")


@click.group()
def consumers() -> None:
    """List, move and delete durable consumers; list and replay their parked events."""


def _pool_job(database_url: str | None, work: Callable[[Any], Awaitable[T]]) -> T:
    from gql.store.connection import create_pool

    async def job(url: str) -> T:
        pool = await create_pool(url, min_size=1, max_size=2)
        try:
            return await work(pool)
        finally:
            await pool.close()

    return run_with_database(database_url, job)


@consumers.command("list")
@database_option
def consumers_list(database_url: str | None) -> None:
    """Every consumer: its position, lag (events, seconds), parked events and who runs it."""
    from gql.store.consumers import list_consumers

    rows = _pool_job(database_url, list_consumers)
    if not rows:
        out.print("no consumers")
        return
    for r in rows:
        types = ",".join(EventType(t).name for t in r["types"]) if r["types"] else "every type"
        state = (f"stopped: {r['stopped']}" if r["stopped"]
                 else f"running in {r['holder']}" if r["holder"] else "idle")
        out.print(f"{r['name']}  {r['sink']}  {types}  position {r['position']}  "
                  f"delivered {r['delivered']}  lag {r['lag_events']} events / "
                  f"{r['lag_seconds']:.1f} s  parked {r['parked']}  {state}", markup=False)


def parse_target(text: str) -> Position | datetime:
    """A globalPosition, `start`, or an ISO 8601 time with an offset."""
    if text in ("start", "0"):
        return ORIGIN
    try:
        return Position.decode(text, "--to")
    except DomainError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise click.BadParameter(
            f"{text!r} is neither a position (0000000000000a1b-0000000000012c4f), `start`, nor "
            "a time with an offset (2025-01-31T12:00:00+00:00)", param_hint="--to")
    return when


@consumers.command("reset")
@click.argument("name")
@click.option("--to", "target", required=True, metavar="POSITION|TIME|start",
              help="A globalPosition (deliver what follows it), `start`, or a time: deliver "
                   "every event recorded since.")
@database_option
def consumers_reset(name: str, target: str, database_url: str | None) -> None:
    """Move an idle consumer's position (its relay must be stopped)."""
    from gql.store.consumers import reset

    to = parse_target(target)
    moved = _pool_job(database_url, lambda pool: reset(pool, name, to))
    out.print(f"consumer {name} now delivers what follows {moved.encode()}")


@consumers.command("delete")
@click.argument("name")
@database_option
def consumers_delete(name: str, database_url: str | None) -> None:
    """Delete an idle consumer, its position and its parked events."""
    from gql.store.consumers import delete

    _pool_job(database_url, lambda pool: delete(pool, name))
    out.print(f"deleted consumer {name}")


@consumers.command("parked")
@click.argument("name")
@database_option
def consumers_parked(name: str, database_url: str | None) -> None:
    """The events a consumer's sink gave up on, in log order."""
    from gql.store.consumers import list_parked

    rows = _pool_job(database_url, lambda pool: list_parked(pool, name))
    for r in rows:
        mark = "  (to replay)" if r["replay"] else ""
        out.print(f"{r['event_id']}  {r['position']}  {r['event_type']}  {r['attempts']} attempts  "
                  f"{r['parked_at'].isoformat(timespec='seconds')}  {r['last_error']}{mark}",
                  markup=False)
    err.print(f"{len(rows)} parked events")


@consumers.command("replay")
@click.argument("name")
@click.option("--event", "event_ids", multiple=True, type=click.UUID,
              help="Only this parked event (repeatable); default: every parked event.")
@database_option
def consumers_replay(name: str, event_ids: tuple[uuid.UUID, ...], database_url: str | None) -> None:
    """Have the consumer's relay deliver its parked events again, before what follows."""
    from gql.store.consumers import mark_replay

    marked = _pool_job(database_url, lambda pool: mark_replay(pool, name, list(event_ids) or None))
    out.print(f"{marked} parked events of {name} will be delivered again by its relay")
