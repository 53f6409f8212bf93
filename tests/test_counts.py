"""Counts and statistics equal the database under every combination of filters and roles."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import asyncpg

from gql.config import Settings
from gql.identity import Identity
from gql.schema import build_schema
from gql.seed import seed
from gql.store.tallies import compact_tallies
from tests.equivalence import answer_both

DOCUMENT = """query($status: [OrderStatus!], $customerId: UUID, $after: DateTime, $before: DateTime) {
  orders(status: $status, customerId: $customerId, placedAfter: $after, placedBefore: $before) {
    totalCount }
  orderStatistics(status: $status, customerId: $customerId, placedAfter: $after,
                  placedBefore: $before) {
    count byStatus { status count } byCurrency { currency count totalAmount capturedAmount } } }"""
# the oracle: plain statements over the read model
ORDERS = """
select status, currency, total_amount, captured_amount from orders_current
where ($1::text[] is null or status = any($1)) and ($2::uuid is null or customer_id = $2)
  and ($3::timestamptz is null or placed_at > $3) and ($4::timestamptz is null or placed_at < $4)
  and ($5::uuid is null or customer_id = $5)
"""


def _expected(rows: list[asyncpg.Record]) -> dict[str, Any]:
    def by(key: str) -> list[Any]:
        return sorted({r[key] for r in rows})

    return {"orders": {"totalCount": len(rows)}, "orderStatistics": {
        "count": len(rows),
        "byStatus": [{"status": s, "count": sum(r["status"] == s for r in rows)} for s in by("status")],
        "byCurrency": [{"currency": c, "count": sum(r["currency"] == c for r in rows),
                        "totalAmount": str(sum((r["total_amount"] for r in rows if r["currency"] == c),
                                               Decimal(0))),
                        "capturedAmount": str(sum((r["captured_amount"] for r in rows
                                                   if r["currency"] == c), Decimal(0)))}
                       for c in by("currency")]}}


async def test_counts_equal_the_database_under_every_filter_and_role(
        pool: asyncpg.Pool, settings: Settings) -> None:
    await seed(pool, orders=40, customers=4, seed=3, concurrency=4)
    await compact_tallies(pool)  # some changes folded, more to come
    await seed(pool, orders=10, customers=2, seed=4, concurrency=2)
    customers = [r[0] for r in await pool.fetch(
        "select customer_id from orders_current group by 1 order by count(*) desc limit 2")]
    middle = await pool.fetchval("select placed_at from orders_current order by placed_at "
                                 "offset 20 limit 1")
    schema = build_schema(settings)
    roles = [(Identity("staff", "s"), None),
             *((Identity("customer", "c", customer_id=c), c) for c in customers)]
    checked = 0
    for status, customer, after, before, (identity, viewer) in itertools.product(
            (None, ["PAID"], ["PLACED", "CANCELLED"]), (None, customers[0]), (None, middle),
            (None, middle), roles):
        variables = {"status": status, "customerId": str(customer) if customer else None,
                     "after": after.isoformat() if after else None,
                     "before": before.isoformat() if before else None}
        answers = await answer_both(schema, pool, settings, DOCUMENT, variables, identity)
        rows = await pool.fetch(ORDERS, status, customer, after, before, viewer)
        assert answers.compiled == answers.resolvers["data"] == _expected(rows), variables
        checked += 1
    assert checked == 72
