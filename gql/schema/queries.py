"""Query: orders and customers from the read models, events from the log."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import strawberry

from gql.events import EventType, OrderStatus, Position
from gql.schema.context import Info
from gql.schema.node import Node, decode_node_id
from gql.schema.pagination import EVENTS_PAGE, ORDERS_PAGE, Connection, connection, page_size
from gql.schema.scalars import UUID, DateTime
from gql.schema.statistics import OrderStatistics, statistics
from gql.schema.types import (
    EVENT_CLASSES,
    Customer,
    Order,
    OrderEvent,
    event_from_row,
    list_orders,
    position_text,
)
from gql.store import reads


async def _nodes(info: Info, node_ids: list[strawberry.ID]) -> list[Node | None]:
    """The objects of nodeIds, through the loaders and finders every root uses (so scoped)."""
    decoded = [decode_node_id(text) for text in node_ids]

    async def one(kind: str, id: uuid.UUID) -> Node | None:
        if kind == "Order":
            row = await info.context.loaders.orders.load(id)
            return Order.from_row(row) if row else None
        if kind == "Customer":
            row = await info.context.loaders.customers.load(id)
            return Customer.from_row(row) if row else None
        if kind in EVENT_CLASSES:
            row = await reads.find_event(info.context.pool, id, info.context.viewer)
            return event_from_row(row) if row and row["event_type"] == kind else None
        return None

    return list(await asyncio.gather(*(one(kind, id) for kind, id in decoded)))


@strawberry.type
class Query:
    @strawberry.field(description="One order by id, or null.")
    async def order(self, info: Info, id: UUID) -> Order | None:
        row = await info.context.loaders.orders.load(id)
        return Order.from_row(row) if row else None

    @strawberry.field(description="Orders, most recently active first (lastEventAt, then id).")
    async def orders(
        self,
        info: Info,
        first: int | None = ORDERS_PAGE,
        after: str | None = None,
        status: list[OrderStatus] | None = None,
        customer_id: UUID | None = None,
        placed_after: DateTime | None = None,
        placed_before: DateTime | None = None,
    ) -> Connection[Order]:
        return await list_orders(
            info, first=first, after=after,
            statuses=[s.value for s in status] if status else None,
            customer_id=customer_id, placed_after=placed_after, placed_before=placed_before,
        )

    @strawberry.field(description="One event by id, or null.")
    async def event(self, info: Info, id: UUID) -> OrderEvent | None:
        row = await reads.find_event(info.context.pool, id, info.context.viewer)
        return event_from_row(row) if row else None

    @strawberry.field(description="The whole log in its global order; `after` is a globalPosition.")
    async def events(
        self,
        info: Info,
        first: int | None = EVENTS_PAGE,
        after: str | None = None,
        types: list[EventType] | None = None,
        order_id: UUID | None = None,
        correlation_id: UUID | None = None,
        occurred_after: DateTime | None = None,
        occurred_before: DateTime | None = None,
    ) -> Connection[OrderEvent]:
        size = page_size(first, EVENTS_PAGE, info.context.settings.max_page_size)
        filters: dict[str, Any] = {
            "types": types, "order_id": order_id, "correlation_id": correlation_id,
            "occurred_after": occurred_after, "occurred_before": occurred_before,
            "viewer": info.context.viewer}
        rows = await reads.list_events(
            info.context.pool, limit=size + 1, after=Position.decode(after) if after else None,
            **filters)
        return connection(rows, size, event_from_row, position_text, after=after,
                          count=lambda: reads.count_events(info.context.pool, **filters))

    @strawberry.field(description="Orders under the same filters (and scope) as `orders`, "
                      "counted by status and counted and summed by currency.")
    async def order_statistics(
        self,
        info: Info,
        status: list[OrderStatus] | None = None,
        customer_id: UUID | None = None,
        placed_after: DateTime | None = None,
        placed_before: DateTime | None = None,
    ) -> OrderStatistics:
        rows = await reads.order_statistics(
            info.context.pool, statuses=[s.value for s in status] if status else None,
            customer_id=customer_id, placed_after=placed_after, placed_before=placed_before,
            viewer=info.context.viewer)
        return statistics(rows)

    @strawberry.field(description=(
        "The log's end as readers may safely see it now (a globalPosition): subscribe "
        "`after:` it to follow, without a gap, what happens after what this request read."))
    async def log_position(self, info: Info) -> str:
        return (await reads.last_safe_position(info.context.pool)).encode()

    @strawberry.field(description="The object a nodeId names, or null (Relay's refetch).")
    async def node(self, info: Info, node_id: strawberry.ID) -> Node | None:
        return (await _nodes(info, [node_id]))[0]

    @strawberry.field(description="The objects nodeIds name, in their order; null for an id "
                      "that names none.")
    async def nodes(self, info: Info, node_ids: list[strawberry.ID]) -> list[Node | None]:
        return await _nodes(info, node_ids)

    @strawberry.field(description="One customer by id, or null.")
    async def customer(self, info: Info, id: UUID) -> Customer | None:
        row = await info.context.loaders.customers.load(id)
        return Customer.from_row(row) if row else None


