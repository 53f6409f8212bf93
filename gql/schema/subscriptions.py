"""Subscription: live events and status changes, fed by the process's live hub."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import strawberry
from graphql import ExecutionResult
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gql.errors import DomainError, LiveUnavailable, OrderNotFound, ServiceUnavailable
from gql.events import Position
from gql.live import Delivery, EventFilter, position_of
from gql.metrics import DELIVERED
from gql.schema.context import Info
from gql.schema.enums import EventType, OrderStatus
from gql.schema.fields import STATUS_CHANGE, values
from gql.schema.livepath import CompiledSelection, LivePath, frozen
from gql.schema.scalars import UUID
from gql.schema.types import Order, OrderEvent, event_from_row
from gql.store import Row
from gql.store.outage import is_outage

SHARE_SECONDS = 1.0  # how long one event's result may serve other identical subscriptions
SHARE_ENTRIES = 4096
_RECENT: weakref.WeakKeyDictionary[Any, OrderedDict[tuple[Any, ...], tuple[float, Any, Any]]] = (
    weakref.WeakKeyDictionary())


class Rendered:
    """The payloads the live hub renders for one compiled subscription, as JSON text.

    The resolver yields this with the first rendered event (`pending`); the WebSocket
    handler (gql/http/websocket.py) then sends each payload as its protocol's frame as it
    arrives, with no GraphQL execution per event. It hands control back at an event without
    a payload (`stopped`: the resolvers execute that one), at the end of the stream (both
    None) or at a failure (`error`: reported as the resolvers report it).
    """

    __slots__ = ("deliveries", "error", "pending", "stopped")

    def __init__(self, deliveries: AsyncIterator[Delivery]) -> None:
        self.deliveries = deliveries
        self.pending: Delivery | None = None
        self.stopped: Delivery | None = None
        self.error: Exception | None = None


class EventExecutor(StrawberryGraphQLCoreExecutionContext):
    """Executes subscription events with fresh loaders, once per identical operation.

    Over a WebSocket the context is built once per connection; loaders kept there would serve
    the rows of the first event to every later one, so each event gets new ones. Subscribers
    with the same document and variables get the same result for the same event (no field
    depends on who asks), so it is computed once and shared for a moment: the fan-out costs
    one execution per distinct operation, not one per subscriber. A payload the hub already
    rendered is not executed at all.
    """

    def build_per_event_executor(self, payload: Any) -> Any:
        if isinstance(payload, Rendered):
            return _Shared(ExecutionResult(payload, None))
        key = self._share_key(payload)
        found = _recent(self.schema).get(key) if key is not None else None
        if found is not None and time.monotonic() - found[0] <= SHARE_SECONDS:
            return _Shared(found[1])  # no copy of the executor, no context: nothing to run
        executor = super().build_per_event_executor(payload)
        fresh = getattr(self.context_value, "fresh", None)
        if fresh is not None:
            executor.context_value = fresh()
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        result = super().execute_operation(serially)
        key = self._share_key(self.root_value)
        if key is not None:
            if self.is_awaitable(result):  # shared by a task no single subscription can cancel
                result = asyncio.ensure_future(result)
            # the operation stays alive while its id is part of a key
            _remember(_recent(self.schema), key, (time.monotonic(), result, self.operation))
        return _Shared(result).execute_operation()

    def _share_key(self, payload: Any) -> tuple[Any, ...] | None:
        if isinstance(payload, OrderStatusChange):
            event = ("status", payload.event.id)
        elif isinstance(payload, OrderEvent):
            event = ("event", payload.id)
        else:
            return None
        operation = self._operation_key()
        return (*operation, *event) if operation is not None else None

    def _operation_key(self) -> tuple[Any, ...] | None:
        """The operation and its variables, frozen once per subscription (copies inherit it)."""
        try:
            return self.__dict__["_operation_key_value"]
        except KeyError:
            pass
        try:
            variables = frozen(self.variable_values.coerced)
            key: tuple[Any, ...] | None = (id(self.operation), variables)
            hash(key)
        except (AttributeError, TypeError):
            key = None
        self.__dict__["_operation_key_value"] = key
        return key


class _Shared:
    """Stands in for a per-event executor: the result is another subscription's."""

    def __init__(self, result: Any) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None) -> Any:
        if isinstance(self.result, asyncio.Future):
            return asyncio.shield(self.result)
        return self.result


def _recent(schema: Any) -> OrderedDict[tuple[Any, ...], tuple[float, Any, Any]]:
    """Recent results of one schema (so one app, one event loop)."""
    return _RECENT.setdefault(schema, OrderedDict())


def _remember(recent: OrderedDict[Any, Any], key: tuple[Any, ...], entry: tuple[float, Any, Any]) -> None:
    recent.pop(key, None)
    recent[key] = entry  # newest last, so the oldest go first
    while len(recent) > SHARE_ENTRIES or entry[0] - next(iter(recent.values()))[0] > SHARE_SECONDS:
        recent.popitem(last=False)


async def _current_order(root: OrderStatusChange, info: Info) -> Order:
    row = await info.context.loaders.orders.load(root.event.order_id)
    if row is None:
        raise OrderNotFound(f"order {root.event.order_id} does not exist")
    return Order.from_row(row)


@strawberry.type(description="An order moved from one status to another.")
class OrderStatusChange:
    order: Order = strawberry.field(resolver=_current_order, description="The order as it is now.")
    previous_status: OrderStatus | None = strawberry.field(description="Null for a new order.")
    status: OrderStatus
    event: OrderEvent = strawberry.field(description="The event that changed the status.")


_LIVE_PATHS: weakref.WeakKeyDictionary[Any, LivePath] = weakref.WeakKeyDictionary()


async def _follow(info: Info, event_filter: EventFilter, after: Position | None,
                  selection: CompiledSelection | None) -> AsyncIterator[Delivery]:
    """The hub's events for this operation; unexpected failures are masked, not leaked."""
    live = info.context.live
    if live is None:
        raise LiveUnavailable("live updates are not running on this server")
    try:
        async for delivery in live.follow(event_filter, after=after, connection=_connection(info),
                                          selection=selection):
            DELIVERED.inc()
            info.context.last_position = position_of(delivery.row)
            yield delivery
    except DomainError:
        raise
    except Exception as exc:
        if is_outage(exc):  # logged once per outage by the hub's DatabaseHealth
            live.health.failed(exc)
            raise ServiceUnavailable("the database is unavailable; subscribe again shortly "
                                     "with `after:` the last position you saw") from None
        # errors from a subscription's source stream carry no path; make sure the error
        # mask treats them as internal, whatever their type
        raise RuntimeError("subscription failed") from exc


async def _payloads(info: Info, event_filter: EventFilter, after: Position | None,
                    payload: Callable[[Row], Any]) -> AsyncIterator[Any]:
    """What a subscription resolver yields: the `payload` of each event for the resolvers,
    or, when the document compiles and the connection sends rendered frames, `Rendered`."""
    selection = (_LIVE_PATHS.setdefault(info.schema, LivePath()).selection(info)
                 if info.context.sends_rendered else None)
    deliveries = _follow(info, event_filter, after, selection)
    rendered = Rendered(deliveries)
    try:
        # the first event read here: the hub counts (and caps) the subscriber before the
        # operation yields anything, on both paths
        pending = await anext(deliveries, None)
        while pending is not None:
            if pending.data is None:
                yield payload(pending.row)
                pending = await anext(deliveries, None)
                continue
            rendered.pending, rendered.stopped = pending, None
            yield rendered
            if rendered.error is not None:
                raise rendered.error
            pending = rendered.stopped
    finally:
        await deliveries.aclose()


def _status_change(row: Row) -> OrderStatusChange:
    return OrderStatusChange(**values(STATUS_CHANGE, row), event=_event(row))


_EVENTS: OrderedDict[int, tuple[Row, OrderEvent]] = OrderedDict()


def _event(row: Row) -> OrderEvent:
    """The GraphQL event of a row; subscriptions given the same row share one object."""
    found = _EVENTS.get(id(row))
    if found is not None and found[0] is row:
        return found[1]
    event = event_from_row(row)
    _EVENTS[id(row)] = (row, event)  # holding the row keeps its id from being reused
    if len(_EVENTS) > SHARE_ENTRIES:
        _EVENTS.popitem(last=False)
    return event


def _connection(info: Info) -> int | None:
    request = info.context.request
    return id(request) if request is not None else None


@strawberry.type
class Subscription:
    @strawberry.subscription(description=(
        "Events in the log's order: with `after` (a globalPosition), every event recorded "
        "after it first, then live ones, with no gap and no duplicate."))
    async def order_events(
        self,
        info: Info,
        order_id: UUID | None = None,
        types: list[EventType] | None = None,
        after: str | None = None,
    ) -> AsyncGenerator[OrderEvent, None]:
        start = Position.decode(after) if after is not None else None
        start = info.context.resume_after or start  # a reconnecting SSE client's Last-Event-ID
        event_filter = EventFilter(order_id=order_id, types=frozenset(types) if types else None,
                                   viewer=info.context.viewer)
        async for payload in _payloads(info, event_filter, start, _event):
            yield payload

    @strawberry.subscription(description=(
        "Fires when an order's status changes (not for item events). With `after` (a "
        "globalPosition), every change recorded after it first, then live ones."))
    async def order_status_changed(
        self,
        info: Info,
        order_id: UUID | None = None,
        statuses: list[OrderStatus] | None = None,
        after: str | None = None,
    ) -> AsyncGenerator[OrderStatusChange, None]:
        start = Position.decode(after) if after is not None else None
        event_filter = EventFilter(order_id=order_id, status_changes=True,
                                   statuses=frozenset(statuses) if statuses else None,
                                   viewer=info.context.viewer)
        start = info.context.resume_after or start  # a reconnecting SSE client's Last-Event-ID
        async for payload in _payloads(info, event_filter, start, _status_change):
            yield payload
