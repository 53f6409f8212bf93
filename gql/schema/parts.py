"""The parts orders and events are made of: value types with no identity and no resolvers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import strawberry

from gql import declaration as kinds
from gql.catalogue import CATALOGUE
from gql.declaration import ReadModelField
from gql.schema.enums import OrderStatus
from gql.schema.fields import ITEM, SHIPPED_ITEM, STATE, values
from gql.schema.scalars import UUID, DateTime, Decimal


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


def items(raw: list[dict[str, Any]]) -> list[OrderItem]:
    return [OrderItem.from_json(item) for item in raw]


@strawberry.type(description="A quantity of a sku that left the warehouse.")
class ShippedItem:
    sku: str
    quantity: int

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> ShippedItem:
        return cls(**values(SHIPPED_ITEM, item))


# The GraphQL type of each kind of read-model field.
READ_MODEL_TYPES: dict[str, Any] = {
    "id": UUID, kinds.TEXT: str, kinds.MONEY: Decimal, kinds.ITEMS: list[OrderItem],
    "status": OrderStatus, "time": DateTime, "version": int,
}


def read_model_type(field: ReadModelField) -> Any:
    """The GraphQL type of a read-model field: nullable where its column is (status aside:
    every order has one, only OrderState's is null before OrderPlaced)."""
    kind = READ_MODEL_TYPES[field.kind]
    nullable = field.kind != "status" and "not null" not in field.sql_type \
        and "primary key" not in field.sql_type
    return kind | None if nullable else kind


def _from_row(cls: type[OrderState], row: Mapping[str, Any] | None) -> OrderState:
    state = values(STATE, row or {})
    return cls(**{**state, "items": items(state["items"])})


def _state_class() -> type:
    """`OrderState`: the read model's fields the declarations keep in the state (`in_state`);
    its status is null before OrderPlaced."""
    kept = [f for f in CATALOGUE.read_model if f.graphql and f.in_state]
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "__annotations__": {
            field.attribute: (READ_MODEL_TYPES[f.kind] | None if f.kind == "status"
                              else read_model_type(f))
            for f, field in zip(kept, STATE, strict=True)},
        **{field.attribute: strawberry.field(description=f.description or None)
           for f, field in zip(kept, STATE, strict=True)},
        "from_row": classmethod(_from_row),
    }
    return strawberry.type(type("OrderState", (), namespace),
                           description="An order's state derived from its events up to some point.")


OrderState = _state_class()
