"""Query: orders and customers from the read models, events from the log."""

from __future__ import annotations

import strawberry

from gql.events import EventType, OrderStatus, Position
from gql.schema.context import Info
from gql.schema.pagination import EVENTS_PAGE, ORDERS_PAGE, Connection, connection, page_size
from gql.schema.scalars import UUID, DateTime
from gql.schema.types import (
    Customer,
    Order,
    OrderEvent,
    event_from_row,
    list_orders,
    position_text,
)
from gql.store import reads


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
        rows = await reads.list_events(
            info.context.pool, limit=size + 1,
            after=Position.decode(after) if after else None, types=types,
            order_id=order_id, correlation_id=correlation_id,
            occurred_after=occurred_after, occurred_before=occurred_before,
            viewer=info.context.viewer,
        )
        return connection(rows, size, event_from_row, position_text, after=after)

    @strawberry.field(description="One customer by id, or null.")
    async def customer(self, info: Info, id: UUID) -> Customer | None:
        row = await info.context.loaders.customers.load(id)
        return Customer.from_row(row) if row else None


