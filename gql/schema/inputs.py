"""Mutation inputs: each names its mutation and carries the event metadata."""

from __future__ import annotations

import dataclasses
import decimal
import enum
import uuid
from typing import Any

import strawberry

from gql.errors import BadUserInput
from gql.events import Actor, EventType, NewEvent
from gql.identity import Grants, Identity
from gql.schema.enums import CancellationReason
from gql.schema.scalars import UUID, DateTime, Decimal, money


@strawberry.input(description="Who causes the event, e.g. { type: \"user\", id: \"u-42\" }.")
class ActorInput:
    type: str
    id: str


@strawberry.input(description="What every append may say about itself.")
class EventMetadata:
    event_id: UUID | None = strawberry.field(
        default=None, description="Idempotency key; generated when absent.")
    expected_version: int | None = strawberry.field(
        default=None, description="Optimistic concurrency: the stream version you last saw.")
    occurred_at: DateTime | None = strawberry.field(
        default=None, description="Business time (default: now); may lie in the past.")
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    actor: ActorInput | None = None


_METADATA = {f.name for f in dataclasses.fields(EventMetadata)} | {"order_id"}


@strawberry.input
class OrderItemInput:
    sku: str
    quantity: int
    unit_price: Decimal


@strawberry.input
class ShippedItemInput:
    sku: str
    quantity: int


@strawberry.input
class PlaceOrderInput(EventMetadata):
    customer_id: UUID
    currency: str
    order_id: UUID | None = strawberry.field(default=None, description="Generated when absent.")
    items: list[OrderItemInput] = strawberry.field(default_factory=list)


@strawberry.input
class AddItemToOrderInput(EventMetadata):
    order_id: UUID
    sku: str
    quantity: int
    unit_price: Decimal


@strawberry.input
class RemoveItemFromOrderInput(EventMetadata):
    order_id: UUID
    sku: str
    quantity: int


@strawberry.input
class AuthorizePaymentInput(EventMetadata):
    order_id: UUID
    amount: Decimal
    payment_provider: str
    authorization_id: str


@strawberry.input
class CapturePaymentInput(EventMetadata):
    order_id: UUID
    amount: Decimal


@strawberry.input
class ReversePaymentCaptureInput(EventMetadata):
    order_id: UUID
    amount: Decimal
    reason: str


@strawberry.input
class ShipOrderInput(EventMetadata):
    order_id: UUID
    carrier: str
    tracking_number: str
    shipped_items: list[ShippedItemInput] | None = strawberry.field(
        default=None, description="Default: every item of the order.")


@strawberry.input
class CancelOrderInput(EventMetadata):
    order_id: UUID
    reason: str
    reason_code: CancellationReason = strawberry.field(
        default=CancellationReason.OTHER, description="The reason as a code (default OTHER).")


@strawberry.input
class RegisterCustomerInput:
    name: str
    email: str
    customer_id: UUID | None = strawberry.field(default=None, description="Generated when absent.")


_NEW_STREAMS = uuid.UUID("6f1d2c3b-8e4a-4f5b-9c6d-7e8f9a0b1c2d")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _plain(value: Any) -> Any:
    """Input values as they are stored in the payload: money as normalised strings."""
    if isinstance(value, decimal.Decimal):
        return money(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value):
        return {_camel(f.name): _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def no_nul(value: Any, field: str = "") -> None:
    """PostgreSQL text cannot hold NUL characters: a client's string with one is refused."""
    if isinstance(value, str):
        if "\x00" in value:
            raise BadUserInput(f"{field} must not contain NUL characters", field=field)
    elif isinstance(value, dict):
        for key, item in value.items():
            no_nul(item, f"{field}.{key}" if field else key)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            no_nul(item, f"{field}[{n}]")


def new_event(event_type: EventType, data: EventMetadata, grants: Grants,
              identity: Identity) -> NewEvent:
    """The event a mutation input asks for: its own fields are the payload; the actor is the
    caller's (FORBIDDEN when its role may not append this type or name another actor)."""
    grants.check_append(identity, event_type)
    supplied = Actor(data.actor.type, data.actor.id) if data.actor else None
    actor = grants.actor(identity, supplied)
    payload = {
        _camel(f.name): _plain(getattr(data, f.name))
        for f in dataclasses.fields(data)
        if f.name not in _METADATA and getattr(data, f.name) is not None
    }
    no_nul(payload)
    if data.actor is not None:
        no_nul({"type": data.actor.type, "id": data.actor.id}, "actor")
    event_id = data.event_id or uuid.uuid4()
    # a retried placeOrder without orderId must name the same new stream
    order_id = getattr(data, "order_id", None) or uuid.uuid5(_NEW_STREAMS, str(event_id))
    return NewEvent(
        order_id=order_id, type=event_type, payload=payload,
        event_id=event_id, expected_version=data.expected_version,
        occurred_at=data.occurred_at, correlation_id=data.correlation_id,
        causation_id=data.causation_id,
        actor=actor,
    )
