"""The OrderEvent interface and one object type per event type, with typed data."""

from __future__ import annotations

import decimal
from typing import Any

import asyncpg
import strawberry

from gql.errors import OrderNotFound
from gql.events import CancellationReason, Position
from gql.schema.context import Info
from gql.schema.enums import EventType
from gql.schema.scalars import JSON, UUID, DateTime, Decimal
from gql.schema.types import Actor, Order, OrderItem


@strawberry.type(description="A quantity of a sku that left the warehouse.")
class ShippedItem:
    sku: str
    quantity: int


@strawberry.interface(description="A fact recorded in an order's stream; never changed.")
class OrderEvent:
    id: UUID
    order_id: UUID
    stream_version: int
    global_position: str = strawberry.field(
        description="The event's place in the whole log; resume subscriptions and pages from it."
    )
    type: EventType
    occurred_at: DateTime = strawberry.field(description="Business time, from the producer.")
    recorded_at: DateTime = strawberry.field(description="When the log recorded the event.")
    correlation_id: UUID | None
    causation_id: UUID | None
    actor: Actor | None
    schema_version: int
    payload: JSON

    @strawberry.field
    async def order(self, info: Info) -> Order:
        row = await info.context.loaders.orders.load(self.order_id)
        if row is None:
            raise OrderNotFound(f"order {self.order_id} does not exist")
        return Order.from_row(row)


def _money(value: Any) -> Decimal:
    return decimal.Decimal(str(value))  # type: ignore[return-value]


@strawberry.type
class OrderPlaced(OrderEvent):
    @strawberry.field
    def customer_id(self) -> UUID:
        return self.payload["customerId"]

    @strawberry.field
    def currency(self) -> str:
        return self.payload["currency"]

    @strawberry.field
    def items(self) -> list[OrderItem]:
        return [OrderItem.from_json(item) for item in self.payload.get("items", [])]


@strawberry.type
class ItemAddedToOrder(OrderEvent):
    @strawberry.field
    def sku(self) -> str:
        return self.payload["sku"]

    @strawberry.field
    def quantity(self) -> int:
        return self.payload["quantity"]

    @strawberry.field
    def unit_price(self) -> Decimal:
        return _money(self.payload["unitPrice"])


@strawberry.type
class ItemRemovedFromOrder(OrderEvent):
    @strawberry.field
    def sku(self) -> str:
        return self.payload["sku"]

    @strawberry.field
    def quantity(self) -> int:
        return self.payload["quantity"]


@strawberry.type
class PaymentAuthorized(OrderEvent):
    @strawberry.field
    def amount(self) -> Decimal:
        return _money(self.payload["amount"])

    @strawberry.field
    def payment_provider(self) -> str:
        return self.payload["paymentProvider"]

    @strawberry.field
    def authorization_id(self) -> str:
        return self.payload["authorizationId"]


@strawberry.type
class PaymentCaptured(OrderEvent):
    @strawberry.field
    def amount(self) -> Decimal:
        return _money(self.payload["amount"])


@strawberry.type
class PaymentCaptureReversed(OrderEvent):
    @strawberry.field
    def amount(self) -> Decimal:
        return _money(self.payload["amount"])

    @strawberry.field
    def reason(self) -> str:
        return self.payload["reason"]


@strawberry.type
class OrderShipped(OrderEvent):
    @strawberry.field
    def carrier(self) -> str:
        return self.payload["carrier"]

    @strawberry.field
    def tracking_number(self) -> str:
        return self.payload["trackingNumber"]

    @strawberry.field
    def shipped_items(self) -> list[ShippedItem]:
        return [ShippedItem(sku=i["sku"], quantity=i["quantity"])
                for i in self.payload.get("shippedItems", [])]


@strawberry.type
class OrderCancelled(OrderEvent):
    @strawberry.field
    def reason(self) -> str:
        return self.payload["reason"]

    @strawberry.field(description="Since schema_version 2; older events get the code their "
                                  "reason names, else OTHER.")
    def reason_code(self) -> CancellationReason:
        return CancellationReason(self.payload["reasonCode"])


EVENT_CLASSES: dict[str, type[OrderEvent]] = {
    cls.__name__: cls
    for cls in (OrderPlaced, ItemAddedToOrder, ItemRemovedFromOrder, PaymentAuthorized,
                PaymentCaptured, PaymentCaptureReversed, OrderShipped, OrderCancelled)
}
assert set(EVENT_CLASSES) == {t.value for t in EventType}, "one GraphQL type per event type"


def position_of(row: asyncpg.Record) -> str:
    return Position(row["log_xid"], row["global_position"]).encode()


def event_from_row(row: asyncpg.Record) -> OrderEvent:
    actor = Actor(type=row["actor_type"], id=row["actor_id"]) if row["actor_type"] else None
    return EVENT_CLASSES[row["event_type"]](
        id=row["event_id"], order_id=row["order_id"], stream_version=row["stream_version"],
        global_position=position_of(row), type=EventType(row["event_type"]),
        occurred_at=row["occurred_at"], recorded_at=row["recorded_at"],
        correlation_id=row["correlation_id"], causation_id=row["causation_id"], actor=actor,
        schema_version=row["schema_version"], payload=row["payload"],
    )
