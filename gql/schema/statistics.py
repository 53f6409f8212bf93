"""Order statistics for dashboards: counts by status, counts and sums by currency."""

from __future__ import annotations

import decimal
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import strawberry

from gql.catalogue import CATALOGUE
from gql.declaration import MONEY
from gql.schema.enums import OrderStatus
from gql.schema.fields import attribute
from gql.schema.scalars import Decimal

# The read model's amounts, summed per currency: (column, GraphQL name)
AMOUNTS = [(f.column, f.graphql) for f in CATALOGUE.read_model if f.kind == MONEY and f.graphql]


@strawberry.type(description="How many orders have one status.")
class StatusCount:
    status: OrderStatus
    count: int


def _currency_totals() -> type:
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "__annotations__": {"currency": str, "count": int,
                            **{attribute(name): Decimal for _, name in AMOUNTS}},
        **{attribute(name): strawberry.field(description=f"The sum of the orders' {name}.")
           for _, name in AMOUNTS},
    }
    return strawberry.type(type("CurrencyTotals", (), namespace),
                           description="The orders in one currency: how many, and their amounts.")


CurrencyTotals = _currency_totals()


@strawberry.type(description="Orders under the filters of `orders`, counted and summed.")
class OrderStatistics:
    count: int = strawberry.field(description="How many orders.")
    by_status: list[StatusCount] = strawberry.field(description="How many orders of each status, "
                                                    "by status name.")
    by_currency: list[CurrencyTotals] = strawberry.field(  # type: ignore[valid-type]
        description="Counts and sums of amounts per currency, by currency code.")


def statistics(rows: Sequence[Any]) -> OrderStatistics:
    """From og_order_statistics' rows: (status, currency, orders, each amount's sum)."""
    by_status: dict[str, int] = defaultdict(int)
    by_currency: dict[str, dict[str, Any]] = {}
    for row in rows:
        by_status[row["status"]] += row["orders"]
        totals = by_currency.setdefault(row["currency"], {
            "count": 0, **{attribute(name): decimal.Decimal(0) for _, name in AMOUNTS}})
        totals["count"] += row["orders"]
        for column, name in AMOUNTS:
            totals[attribute(name)] += row[column]
    return OrderStatistics(
        count=sum(by_status.values()),
        by_status=[StatusCount(status=OrderStatus(s), count=n) for s, n in sorted(by_status.items())],
        by_currency=[CurrencyTotals(currency=c, **t) for c, t in sorted(by_currency.items())])
