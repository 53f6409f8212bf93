"""Orders, customers and their parts, built from read-model rows."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from gql.errors import CustomerNotFound
from gql.schema.context import Info
from gql.schema.enums import EventOrder, EventType, OrderStatus, TimeAxis
from gql.schema.fields import CUSTOMER, ITEM, ORDER, ORDER_CURSOR, STATE, TIMELINE_CURSOR, values
from gql.schema.pagination import (
    ORDERS_PAGE,
    Connection,
    connection,
    decode_cursor,
    page_size,
)
from gql.schema.scalars import UUID, DateTime, Decimal
from gql.store import reads

if TYPE_CHECKING:
    from gql.schema.event_types import OrderEvent

OrderEventRef = Annotated["OrderEvent", strawberry.lazy("gql.schema.event_types")]


@strawberry.type(description="Who caused an event.")
class Actor:
    type: str
    id: str


@strawberry.type(description="One line of an order: a sku at a unit price.")
class OrderItem:
    sku: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> OrderItem:
        return cls(**values(ITEM, item))


def _items(raw: list[dict[str, Any]]) -> list[OrderItem]:
    return [OrderItem.from_json(item) for item in raw]


@strawberry.type(description="An order's state derived from its events up to some point.")
class OrderState:
    status: OrderStatus | None
    version: int
    total_amount: Decimal
    authorized_amount: Decimal
    captured_amount: Decimal
    items: list[OrderItem]

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | None) -> OrderState:
        state = values(STATE, row or {})
        return cls(**{**state, "items": _items(state["items"])})


@strawberry.type(description="An order as its read model holds it now.")
class Order:
    id: UUID
    status: OrderStatus
    currency: str
    total_amount: Decimal
    authorized_amount: Decimal
    captured_amount: Decimal
    items: list[OrderItem]
    version: int
    placed_at: DateTime
    last_event_at: DateTime
    customer_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Order:
        order = values(ORDER, row)
        return cls(**{**order, "items": _items(order["items"])}, customer_id=row["customer_id"])

    @strawberry.field
    async def customer(self, info: Info) -> Customer:
        row = await info.context.loaders.customers.load(self.customer_id)
        if row is None:
            raise CustomerNotFound(f"customer {self.customer_id} does not exist")
        return Customer.from_row(row)

    @strawberry.field(description="The order's timeline: its events, in stream order by default.")
    async def events(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        types: list[EventType] | None = None,
        order_by: EventOrder = EventOrder.STREAM_VERSION,
    ) -> Connection[OrderEventRef]:
        from gql.schema.event_types import event_from_row

        cap = info.context.settings.max_page_size
        size = page_size(first, cap, cap)
        after_version = decode_cursor(after, "v", int)[0] if after else None
        key = (self.id, size + 1, after_version, tuple(types) if types else None, order_by)
        rows = await info.context.loaders.order_events.load(key)
        return connection(rows, size, event_from_row,
                          TIMELINE_CURSOR.value, after=after)

    @strawberry.field(description="The order's state after the events up to a version and/or a time.")
    async def state_at(
        self,
        info: Info,
        as_of: DateTime | None = None,
        version: int | None = None,
        axis: TimeAxis = TimeAxis.OCCURRED,
    ) -> OrderState:
        row = await reads.state_at(info.context.pool, self.id, version=version, as_of=as_of,
                                   axis=axis)
        return OrderState.from_row(row)


@strawberry.type(description="Someone who places orders.")
class Customer:
    id: UUID
    name: str
    email: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Customer:
        return cls(**values(CUSTOMER, row))

    @strawberry.field(description="The customer's orders, most recently active first.")
    async def orders(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Order]:
        return await list_orders(info, first=first, after=after, customer_id=self.id)


async def list_orders(info: Info, *, first: int | None, after: str | None,
                      **filters: Any) -> Connection[Order]:
    settings = info.context.settings
    size = page_size(first, ORDERS_PAGE, settings.max_page_size)
    key = decode_cursor(after, "o", datetime, uuid.UUID) if after else None
    rows = await reads.list_orders(info.context.pool, limit=size + 1, after=key,
                                   viewer=info.context.viewer, **filters)
    return connection(rows, size, Order.from_row, ORDER_CURSOR.value, after=after)
