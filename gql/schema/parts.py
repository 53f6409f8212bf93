"""The parts orders and events are made of: value types with no identity and no resolvers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import strawberry

from gql.schema.enums import OrderStatus
from gql.schema.fields import ITEM, SHIPPED_ITEM, STATE, values
from gql.schema.scalars import Decimal


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
        return cls(**{**state, "items": items(state["items"])})
