"""Orders, customers and events: the object types that refer to each other.

An order lists its events and each event names its order, so both live here, built from
read-model and log rows; the value types they hold are in gql/schema/parts.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import strawberry

from gql.catalogue import CATALOGUE
from gql.errors import CustomerNotFound, OrderNotFound
from gql.schema.context import Info
from gql.schema.enums import CODES, EventOrder, EventType, TimeAxis
from gql.schema.fields import (
    ACTOR,
    CODE_FORMS,
    CUSTOMER,
    EVENT,
    ID,
    ITEMS,
    MONEY,
    NUMBER,
    ORDER,
    ORDER_CURSOR,
    PAYLOAD,
    PLAIN,
    POSITION,
    SHIPPED_ITEMS,
    TIMELINE_CURSOR,
    Field,
    Form,
    values,
)
from gql.schema.node import Node, node_id
from gql.schema.pagination import (
    ORDERS_PAGE,
    Connection,
    connection,
    decode_cursor,
    page_size,
)
from gql.schema.parts import Actor, OrderItem, OrderState, ShippedItem, items, read_model_type
from gql.schema.scalars import JSON, UUID, DateTime, Decimal
from gql.store import reads


async def _customer(self: Order, info: Info) -> Customer:
    row = await info.context.loaders.customers.load(self.customer_id)
    if row is None:
        raise CustomerNotFound(f"customer {self.customer_id} does not exist")
    return Customer.from_row(row)


async def _events(
    self: Order,
    info: Info,
    first: int | None = None,
    after: str | None = None,
    types: list[EventType] | None = None,
    order_by: EventOrder = EventOrder.STREAM_VERSION,
) -> Connection[OrderEvent]:
    cap = info.context.settings.max_page_size
    size = page_size(first, cap, cap)
    after_version = decode_cursor(after, "v", int)[0] if after else None
    key = (self.id, size + 1, after_version, tuple(types) if types else None, order_by)
    rows = await info.context.loaders.order_events.load(key)
    return connection(rows, size, event_from_row, TIMELINE_CURSOR.value, after=after,
                      count=lambda: reads.count_timeline(info.context.pool, self.id, types))


async def _state_at(
    self: Order,
    info: Info,
    as_of: DateTime | None = None,
    version: int | None = None,
    axis: TimeAxis = TimeAxis.OCCURRED,
) -> OrderState:
    row = await reads.state_at(info.context.pool, self.id, version=version, as_of=as_of, axis=axis)
    return OrderState.from_row(row)


def _order_node_id(self: Order) -> strawberry.ID:
    return node_id("Order", self.id)


def _from_row(cls: type[Order], row: Mapping[str, Any]) -> Order:
    order = values(ORDER, row)
    return cls(**{**order, "items": items(order["items"])}, customer_id=row["customer_id"])


def _order_class() -> type:
    """`Order`: a field per read-model column the declarations show (gql/catalogue.py), and
    the edges that read more than its row."""
    shown = [f for f in CATALOGUE.read_model if f.graphql]
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "__annotations__": {
            **{field.attribute: read_model_type(f) for f, field in zip(shown, ORDER, strict=True)},
            "customer_id": strawberry.Private[uuid.UUID],
        },
        **{field.attribute: strawberry.field(description=f.description or None)
           for f, field in zip(shown, ORDER, strict=True)},
        "from_row": classmethod(_from_row),
        "node_id": strawberry.field(resolver=_order_node_id,
                                    description="The order's global id (see Node)."),
        "customer": strawberry.field(resolver=_customer),
        "events": strawberry.field(
            resolver=_events,
            description="The order's timeline: its events, in stream order by default."),
        "state_at": strawberry.field(
            resolver=_state_at,
            description="The order's state after the events up to a version and/or a time."),
    }
    return strawberry.type(type("Order", (Node,), namespace),
                           description="An order as its read model holds it now.")


Order = _order_class()


@strawberry.type(description="Someone who places orders.")
class Customer(Node):
    id: UUID
    name: str = strawberry.field(
        description="Sealed at rest; reads \"(erased)\" once the customer is forgotten.")
    email: str = strawberry.field(
        description="Sealed at rest; reads \"(erased)\" once the customer is forgotten.")
    forgotten_at: DateTime | None = strawberry.field(
        description="When forgetCustomer erased the name and e-mail; null while they are kept.")

    @strawberry.field(description="The customer's global id (see Node).")
    def node_id(self) -> strawberry.ID:
        return node_id("Customer", self.id)

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
    return connection(rows, size, Order.from_row, ORDER_CURSOR.value, after=after,
                      count=lambda: reads.count_orders(info.context.pool,
                                                       viewer=info.context.viewer, **filters))


@strawberry.interface(description="A fact recorded in an order's stream; never changed.")
class OrderEvent(Node):
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
    trace_id: str | None = strawberry.field(description=(
        "The OpenTelemetry trace id (32 hex digits) of the request that appended the event, "
        "when the server traced it; null otherwise."))

    @strawberry.field(description="The event's global id (see Node), named after its type.")
    def node_id(self) -> strawberry.ID:
        return node_id(type(self).__name__, self.id)

    @strawberry.field
    async def order(self, info: Info) -> Order:
        row = await info.context.loaders.orders.load(self.order_id)
        if row is None:
            raise OrderNotFound(f"order {self.order_id} does not exist")
        return Order.from_row(row)


def _payload_field(field: Field, description: str) -> Any:
    """A resolver reading the event's own data, as PAYLOAD describes it."""
    annotation, lines = _FORMS[field.form]

    def resolve(self: OrderEvent) -> Any:
        value = field.value(self.payload)
        return [lines(item) for item in value] if lines else value

    resolve.__annotations__["return"] = annotation
    return strawberry.field(resolver=resolve, description=description or None)


# The GraphQL type of each form a payload key may take (and how its lines are built).
_FORMS: dict[Form, tuple[Any, Any]] = {
    PLAIN: (str, None), ID: (UUID, None), NUMBER: (int, None), MONEY: (Decimal, None),
    ITEMS: (list[OrderItem], OrderItem.from_json),
    SHIPPED_ITEMS: (list[ShippedItem], ShippedItem.from_json),
    **{form: (CODES[name], None) for name, form in CODE_FORMS.items()},
}


def _event_class(event_type: EventType) -> type[OrderEvent]:
    """The object type of one event type: the interface plus its payload's fields."""
    declared = CATALOGUE.event(event_type.value)
    namespace: dict[str, Any] = {f.attribute: _payload_field(f, declared.datum(f.name).description)
                                 for f in PAYLOAD[event_type]}
    namespace["__module__"] = __name__
    return strawberry.type(type(event_type.value, (OrderEvent,), namespace),  # type: ignore[return-value]
                           description=declared.description)


EVENT_CLASSES: dict[str, type[OrderEvent]] = {t.value: _event_class(t) for t in EventType}


def position_text(row: Mapping[str, Any]) -> str:
    """The event's globalPosition text (its cursor in the log)."""
    return POSITION.value(row)


def event_from_row(row: Mapping[str, Any]) -> OrderEvent:
    actor = Actor(**values(ACTOR, row)) if row["actor_type"] else None
    return EVENT_CLASSES[row["event_type"]](**values(EVENT, row), actor=actor)
