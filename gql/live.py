"""The live hub: reads the log once per doorbell and fans the events out to every subscription.

The log is the truth and notifications are only doorbells, so nothing is lost while the
listener reconnects: the next read starts where the last one ended. Each read sees only the
log's safe prefix (below the oldest running transaction), so events reach subscribers in the
log's order even when transactions commit out of order, and no event can appear behind one
already delivered. Queues are bounded: a subscriber that falls too far behind is ended with
SUBSCRIPTION_OVERFLOW and resumes from its last position.

A subscriber whose document compiled brings a `Selection`: the hub renders the events of each
read (and of each replay page) once per distinct selection, in one statement, and every
subscriber of that selection gets the same rendered payload. A render that fails leaves the
payload out, and the subscriber's resolvers answer those events instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from opentelemetry import trace

from gql import traces
from gql.config import Settings
from gql.errors import SubscriptionOverflow, TooManySubscriptions
from gql.events import EventType, OrderStatus, Position
from gql.listener import Listener
from gql.metrics import LOG_READS, RENDERED, SUBSCRIPTIONS
from gql.store import DATABASE_ERRORS, Pool, Row, reads
from gql.store.outage import DatabaseHealth, is_outage
from gql.waiting import stopped, until_set

log = logging.getLogger("ordergraph.live")

READ_PAGE = 500  # events per log read; a wake-up reads pages until it reaches the safe end
REPLAY_PAGE = 200  # events per page while a subscription replays from its cursor
# Committed events wait while an older transaction runs (any writer in the cluster, e.g. an
# autoanalyze or a customer registration, which rings no doorbell): re-read after 2 ms, then
# doubling up to 50 ms, so they leave at most that long after it ends.
HELD_RETRY = (0.002, 0.05)


def quiet_gc() -> None:
    """Keep full garbage collections out of the delivery path.

    A full collection visits every tracked object; with a thousand connections that is a few
    hundred thousand and pauses every delivery for tens of milliseconds (hundreds on a busy
    machine), several times a minute. What exists after startup (modules, the schema) is
    frozen out of collections, and a larger young generation lets the objects of in-flight
    deliveries die young instead of filling the old generation.
    """
    gc.collect()  # garbage frozen now would never be freed
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def position_of(row: Row) -> Position:
    return Position(row["log_xid"], row["global_position"])


class Selection(Protocol):
    """A compiled subscription payload: subscribers with equal keys get the same payloads."""

    key: Hashable

    async def render(self, pool: Pool, rows: Sequence[Row]) -> list[str | None]:
        """The `data` JSON text of each row's payload, in one statement (None: not rendered)."""
        ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event for subscribers: its log row and, for a compiled selection, its payload's
    `data` as JSON text (None: the resolvers execute the subscriber's document)."""

    row: Row
    data: str | None = None


async def traced_deliveries(events: AsyncIterator[Delivery]) -> AsyncIterator[Delivery]:
    """Each delivery in a span of the appending request's trace (the event's stored
    traceparent), linked to the subscription's own span (its WebSocket's or SSE request's);
    the span lasts until the subscriber has sent it."""
    subscription = trace.get_current_span().get_span_context()
    links = [traces.Link(subscription)] if subscription.is_valid else None
    async for delivery in events:
        row = delivery.row
        with traces.continuing("live deliver", row["trace_parent"], traces.SpanKind.CONSUMER,
                               links, ordergraph__event__id=str(row["event_id"]),
                               ordergraph__event__type=row["event_type"],
                               ordergraph__executor="resolvers" if delivery.data is None else "compiled"):
            yield delivery


@dataclass(frozen=True)
class EventFilter:
    """Which events a subscription wants; `status_changes` keeps only events that move the order."""

    order_id: uuid.UUID | None = None
    types: frozenset[EventType] | None = None
    status_changes: bool = False
    statuses: frozenset[OrderStatus] | None = None
    # the one customer whose events the subscriber may see (None: all), as og_sees reads
    viewer: uuid.UUID | None = None

    def matches(self, row: Row) -> bool:
        if self.viewer is not None and row["customer_id"] != self.viewer:
            return False
        if self.types is not None and EventType(row["event_type"]) not in self.types:
            return False
        if self.status_changes:
            if row["status"] == row["previous_status"]:
                return False
            if self.statuses is not None and OrderStatus(row["status"]) not in self.statuses:
                return False
        return True


class Subscriber:
    """One subscription's bounded queue; the hub offers, the subscriber takes."""

    def __init__(self, event_filter: EventFilter, capacity: int,
                 selection: Selection | None = None) -> None:
        self.filter = event_filter
        self.capacity = capacity
        self.selection = selection
        self.replaying = True  # while True, an overflow means "read the log again", not an error
        self.lagged = False
        self.overflowed = False
        self.closed = False
        self._queue: deque[Delivery] = deque()
        self._ready = asyncio.Event()

    def offer(self, delivery: Delivery) -> None:
        """Queue an event the filter matched (see `EventFilter.matches`)."""
        if self.overflowed or self.lagged:
            return
        if len(self._queue) >= self.capacity:
            if self.replaying:
                self._queue.clear()  # the replay re-reads these from the log
                self.lagged = True
            else:
                self.overflowed = True
                self._ready.set()
            return
        self._queue.append(delivery)
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def take(self) -> Delivery | None:
        """The next queued event; None once closed, or overflowed and drained."""
        while not self._queue:
            if self.overflowed or self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()


class LiveHub:
    """Fan-out for one process: a listener, one reader task, and every subscriber."""

    def __init__(self, pool: Pool, settings: Settings, health: DatabaseHealth | None = None) -> None:
        self.pool = pool
        self.settings = settings
        self.health = health or DatabaseHealth(pool)  # told of outages; logs them once
        self._own_health = health is None
        self.head = Position(0, 0)  # every event up to here has been offered to subscriptions
        self._stale = False  # doorbells were skipped while nobody subscribed: the head lags
        self.listener = Listener(settings.database_url, self.wake)
        self.health.on_back(self.listener.reconnect_now)  # and it rings for the catch-up
        self._wake = asyncio.Event()
        self._subscribers: dict[uuid.UUID | None, set[Subscriber]] = defaultdict(set)
        self._per_connection: dict[Hashable, int] = defaultdict(int)
        self._reader: asyncio.Task[None] | None = None
        # others in the process that read the log on the same doorbell (relays beside the server)
        self.doorbells: list[Callable[[], None]] = []

    @property
    def connected(self) -> bool:
        return self.listener.connected

    async def start(self) -> None:
        self.head = await reads.last_safe_position(self.pool)
        self._reader = asyncio.create_task(self._read_forever(), name="ordergraph-live")
        self.listener.start()

    async def stop(self) -> None:
        await self.listener.stop()
        if self._own_health:
            await self.health.stop()
        await stopped(self._reader)
        for subs in self._subscribers.values():
            for sub in subs:
                sub.close()

    def wake(self) -> None:
        self._wake.set()
        for ring in self.doorbells:
            ring()

    async def _read_forever(self) -> None:
        """Read on every doorbell, retry soon while events are held back, else poll for safety."""
        poll = self.settings.safety_poll_interval
        retry = 0.0  # while events are held back: seconds until the next read
        while True:
            await until_set(self._wake, retry or poll)
            self._wake.clear()
            if not self._subscribers:  # nobody to deliver to: the first subscriber catches up
                self._stale, retry = True, 0.0
                continue
            try:
                if traces.TRACER is None:
                    held = await self._read()
                else:  # one span per read of the log, its statements inside
                    with traces.TRACER.start_as_current_span("live read_log"):
                        held = await self._read()
            except Exception as exc:  # a failure must not stop every subscription of the process
                if is_outage(exc):  # the next doorbell or poll reads again from the head
                    self.health.failed(exc)
                elif isinstance(exc, DATABASE_ERRORS):
                    log.warning("reading the log failed: %s", exc)
                else:
                    log.exception("live fan-out failed")
                held = False
            retry = min(retry * 2 or HELD_RETRY[0], HELD_RETRY[1]) if held else 0.0

    async def _read(self) -> bool:
        """Offer every safe event after the head to its subscriptions; True when some are held."""
        while True:
            rows, held = await reads.read_log(self.pool, after=self.head, limit=READ_PAGE)
            LOG_READS.inc()
            await self._fan_out(rows)
            if held or len(rows) < READ_PAGE:
                return held

    async def _fan_out(self, rows: Sequence[Row]) -> None:
        """Offer each row to the subscribers it matches: the resolvers' at once, compiled
        selections once rendered (one statement per selection for all the rows it wants)."""
        everyone = self._subscribers.get(None, ())
        offers: list[tuple[Subscriber, int]] = []
        wanted: dict[Hashable, tuple[Selection, list[int]]] = {}
        for i, row in enumerate(rows):
            for subs in (everyone, self._subscribers.get(row["order_id"], ())):
                for sub in subs:
                    if not sub.filter.matches(row):
                        continue
                    offers.append((sub, i))
                    if sub.selection is not None:
                        indexes = wanted.setdefault(sub.selection.key, (sub.selection, []))[1]
                        if not indexes or indexes[-1] != i:
                            indexes.append(i)
        plain: dict[int, Delivery] = {}
        for sub, i in offers:
            if sub.selection is None:
                delivery = plain.get(i)
                if delivery is None:
                    delivery = plain[i] = Delivery(rows[i])
                sub.offer(delivery)
        rendered = await asyncio.gather(*(self._render(selection, [rows[i] for i in indexes], "live")
                                          for selection, indexes in wanted.values()))
        by_selection = {key: dict(zip(indexes, deliveries, strict=True))
                        for (key, (_, indexes)), deliveries in zip(wanted.items(), rendered, strict=True)}
        for sub, i in offers:
            if sub.selection is not None:
                sub.offer(by_selection[sub.selection.key][i])
        if rows:
            self.head = position_of(rows[-1])

    async def _render(self, selection: Selection, rows: Sequence[Row],
                      source: str) -> list[Delivery]:
        """The rows with their payloads; without them (the resolvers answer) if it fails."""
        try:
            texts = await selection.render(self.pool, rows)
        except Exception as exc:  # a failing render must not stop the fan-out of every subscriber
            if is_outage(exc):
                raise  # the resolvers would fail too: this read fails and is done again

            log.exception("rendering subscription payloads failed; the resolvers answer them")
            return [Delivery(row) for row in rows]
        RENDERED.labels(source).inc()
        return [Delivery(row, text) for row, text in zip(rows, texts, strict=True)]

    @contextlib.contextmanager
    def _slot(self, connection: Hashable | None) -> Iterator[None]:
        """One of the connection's subscriptions, counted before anything awaits, so that
        the cap refuses the subscriptions sent last, whatever the database's timing."""
        limit = self.settings.max_subscriptions_per_connection
        if connection is not None and self._per_connection.get(connection, 0) >= limit:
            raise TooManySubscriptions(
                f"a connection may hold at most {limit} subscriptions", limit=limit)
        self._per_connection[connection] += 1
        try:
            yield
        finally:
            self._per_connection[connection] -= 1
            if not self._per_connection[connection]:
                del self._per_connection[connection]

    @contextlib.contextmanager
    def _subscriber(self, event_filter: EventFilter,
                    selection: Selection | None) -> Iterator[Subscriber]:
        sub = Subscriber(event_filter, self.settings.subscription_queue_size, selection)
        self._subscribers[event_filter.order_id].add(sub)
        SUBSCRIPTIONS.inc()
        try:
            yield sub
        finally:
            SUBSCRIPTIONS.dec()
            self._subscribers[event_filter.order_id].discard(sub)
            if not self._subscribers[event_filter.order_id]:
                del self._subscribers[event_filter.order_id]

    async def follow(
        self, event_filter: EventFilter, *, after: Position | None = None,
        connection: Hashable | None = None, selection: Selection | None = None,
    ) -> AsyncIterator[Delivery]:
        """Events matching the filter: those after `after` from the log, then live ones,
        rendered for `selection` when there is one.

        Without `after`, only events the hub reads from now on. Replay and live events meet
        without a gap because the subscriber queues live events before the replay starts,
        and without a duplicate because nothing at or before the last yielded position passes.
        """
        with self._slot(connection):
            if self._stale:
                self.head = max(self.head, await reads.last_safe_position(self.pool))
                self._stale = False
            async with contextlib.aclosing(self._follow(event_filter, after, selection)) as events:
                if traces.TRACER is None:
                    async for delivery in events:
                        yield delivery
                else:
                    async with contextlib.aclosing(traced_deliveries(events)) as traced:
                        async for delivery in traced:
                            yield delivery

    async def _follow(self, event_filter: EventFilter, after: Position | None,
                      selection: Selection | None) -> AsyncIterator[Delivery]:
        with self._subscriber(event_filter, selection) as sub:
            self.wake()  # read what a skipped doorbell announced
            last = self.head if after is None else after
            sub.replaying = after is not None
            while sub.replaying:
                sub.lagged = False
                async for delivery in self._replay(event_filter, last, selection):
                    yield delivery
                    last = position_of(delivery.row)
                # every event offered during this pass is queued, unless the queue overflowed:
                # then it was dropped, and another pass reads it from the log
                sub.replaying = sub.lagged
            while (delivery := await sub.take()) is not None:
                position = position_of(delivery.row)
                if position > last:
                    yield delivery
                    last = position
            if sub.overflowed:
                raise SubscriptionOverflow(
                    f"the subscription fell more than {sub.capacity} events behind and was ended; "
                    "subscribe again with `after: lastPosition` to continue without a gap",
                    lastPosition=last.encode(), queueSize=sub.capacity)

    async def _replay(self, event_filter: EventFilter, after: Position,
                      selection: Selection | None) -> AsyncIterator[Delivery]:
        if event_filter.status_changes:
            async for delivery in self._replay_status_changes(event_filter, after, selection):
                yield delivery
            return
        types = sorted(event_filter.types, key=lambda t: t.value) if event_filter.types else None
        read = reads.list_status_events if event_filter.status_changes else reads.list_events
        while True:
            rows = await read(self.pool, limit=REPLAY_PAGE, after=after, types=types,
                              order_id=event_filter.order_id, viewer=event_filter.viewer)
            wanted = [row for row in rows if event_filter.matches(row)]
            page = ([Delivery(row) for row in wanted] if selection is None or not wanted
                    else await self._render(selection, wanted, "replay"))
            for delivery in page:
                yield delivery
            if len(rows) < REPLAY_PAGE:
                return
            after = position_of(rows[-1])

    async def _replay_status_changes(self, event_filter: EventFilter, after: Position,
                                     selection: Selection | None) -> AsyncIterator[Delivery]:
        """Status changes after a position (an SSE client's Last-Event-ID): the log read
        that gives each event the status before it, filtered as the live fan-out filters."""
        while True:
            rows, _ = await reads.read_log(self.pool, after=after, limit=REPLAY_PAGE)
            taken = [row for row in rows if event_filter.matches(row)
                     and event_filter.order_id in (None, row["order_id"])]
            page = ([Delivery(row) for row in taken] if selection is None or not taken
                    else await self._render(selection, taken, "replay"))
            for delivery in page:
                yield delivery
            if len(rows) < REPLAY_PAGE:
                return
            after = position_of(rows[-1])
