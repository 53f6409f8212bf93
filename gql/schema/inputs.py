"""Mutation inputs: each names its mutation and carries the event metadata."""

from __future__ import annotations

import dataclasses
import decimal
import enum
import uuid
from typing import Any

import strawberry

from gql import declaration as kinds
from gql.catalogue import CATALOGUE
from gql.declaration import EventDeclaration
from gql.errors import BadUserInput
from gql.events import Actor, EventType, NewEvent
from gql.identity import Grants, Identity
from gql.schema.enums import CODES
from gql.schema.fields import attribute
from gql.schema.scalars import UUID, DateTime, Decimal


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


@strawberry.input
class OrderItemInput:
    sku: str
    quantity: int
    unit_price: Decimal


@strawberry.input
class ShippedItemInput:
    sku: str
    quantity: int


# The GraphQL input type of each kind of event data.
_INPUT_TYPES: dict[str, Any] = {
    kinds.TEXT: str, kinds.MONEY: Decimal, kinds.QUANTITY: int, kinds.CURRENCY: str,
    kinds.CUSTOMER: UUID, kinds.ITEMS: list[OrderItemInput],
    kinds.SHIPPED_ITEMS: list[ShippedItemInput],
}


def _input_field(datum: kinds.Data) -> tuple[Any, Any]:
    """The annotation and the strawberry field of one datum in its mutation's input."""
    kind = CODES[datum.enum] if datum.kind == kinds.CODE else _INPUT_TYPES[datum.kind]
    description = datum.description or None
    if datum.input_default is not kinds.NO_DEFAULT:
        default = datum.input_default
        if isinstance(default, list):
            return kind, strawberry.field(default_factory=list, description=description)
        if datum.kind == kinds.CODE:
            default = CODES[datum.enum][default]
        return kind, strawberry.field(default=default, description=description)
    if datum.optional:
        return kind | None, strawberry.field(default=None, description=description)
    return kind, strawberry.field(description=description)


def _input_class(event: EventDeclaration) -> type[EventMetadata]:
    """`<Mutation>Input`: the event's data, the order it goes to, and the metadata."""
    fields: dict[str, tuple[Any, Any]] = {}
    if not event.starts_stream:
        fields["order_id"] = (UUID, strawberry.field(description="The order's id."))
    for datum in event.data:
        fields[attribute(datum.key)] = _input_field(datum)
    if event.starts_stream:
        fields["order_id"] = (UUID | None, strawberry.field(
            default=None, description="Generated when absent."))
    namespace: dict[str, Any] = {"__module__": __name__,
                                 "__annotations__": {k: a for k, (a, _) in fields.items()},
                                 **{k: f for k, (_, f) in fields.items()}}
    name = event.mutation[0].upper() + event.mutation[1:] + "Input"
    return strawberry.input(type(name, (EventMetadata,), namespace),  # type: ignore[return-value]
                            description=f"What {event.mutation} records as {event.name}.")


# Each append mutation's input type, by event type (as stored).
INPUTS: dict[str, type[EventMetadata]] = {e.name: _input_class(e) for e in CATALOGUE.events}


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
    """Input values as a payload holds them: money as the digits the client sent (the
    database writes them out with the currency's minor units)."""
    if isinstance(value, decimal.Decimal):
        return str(value)
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
    declared = CATALOGUE.event(event_type.value)
    payload = {
        datum.key: _plain(getattr(data, attribute(datum.key)))
        for datum in declared.data
        if getattr(data, attribute(datum.key)) is not None
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
