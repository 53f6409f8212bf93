"""The OrderEvent interface and one object type per event type, with typed data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import strawberry

from gql.errors import OrderNotFound
from gql.schema.context import Info
from gql.schema.enums import CancellationReason, EventType
from gql.schema.fields import (
    ACTOR,
    EVENT,
    ID,
    ITEMS,
    MONEY,
    NUMBER,
    PAYLOAD,
    PLAIN,
    POSITION,
    REASON_CODE,
    SHIPPED_ITEM,
    SHIPPED_ITEMS,
    Field,
    Form,
    values,
)
from gql.schema.scalars import JSON, UUID, DateTime, Decimal
from gql.schema.types import Actor, Order, OrderItem


@strawberry.type(description="A quantity of a sku that left the warehouse.")
class ShippedItem:
    sku: str
    quantity: int

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> ShippedItem:
        return cls(**values(SHIPPED_ITEM, item))


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


def _payload_field(field: Field) -> Any:
    """A resolver reading the event's own data, as PAYLOAD describes it."""
    annotation, lines = _FORMS[field.form]

    def resolve(self: OrderEvent) -> Any:
        value = field.value(self.payload)
        return [lines(item) for item in value] if lines else value

    resolve.__annotations__["return"] = annotation
    return strawberry.field(resolver=resolve)


# The GraphQL type of each form a payload key may take (and how its lines are built).
_FORMS: dict[Form, tuple[Any, Any]] = {
    PLAIN: (str, None), ID: (UUID, None), NUMBER: (int, None), MONEY: (Decimal, None),
    REASON_CODE: (CancellationReason, None),
    ITEMS: (list[OrderItem], OrderItem.from_json),
    SHIPPED_ITEMS: (list[ShippedItem], ShippedItem.from_json),
}


def _event_class(event_type: EventType) -> type[OrderEvent]:
    """The object type of one event type: the interface plus its payload's fields."""
    namespace = {f.attribute: _payload_field(f) for f in PAYLOAD[event_type]}
    namespace["__module__"] = __name__
    return strawberry.type(type(event_type.value, (OrderEvent,), namespace))  # type: ignore[return-value]


EVENT_CLASSES: dict[str, type[OrderEvent]] = {t.value: _event_class(t) for t in EventType}


def position_text(row: Mapping[str, Any]) -> str:
    """The event's globalPosition text (its cursor in the log)."""
    return POSITION.value(row)


def event_from_row(row: Mapping[str, Any]) -> OrderEvent:
    actor = Actor(**values(ACTOR, row)) if row["actor_type"] else None
    return EVENT_CLASSES[row["event_type"]](**values(EVENT, row), actor=actor)
