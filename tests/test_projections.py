"""Read models are a fold of the log: rebuilding them from the events changes nothing."""

from __future__ import annotations

import asyncpg

from gql.seed import seed
from gql.store.projections import rebuild_projections


async def _read_model(pool: asyncpg.Pool) -> list[tuple[object, ...]]:
    rows = await pool.fetch("select * from orders_current order by order_id")
    return [tuple(row.values()) for row in rows]


async def test_rebuild_after_seeding_2000_orders_equals_live_read_model(pool: asyncpg.Pool) -> None:
    result = await seed(pool, orders=2000, customers=300, seed=3)
    before = await _read_model(pool)
    assert len(before) == 2000
    reported: list[tuple[int, int]] = []
    async with pool.acquire() as conn:  # in ranges of ~1,000 events, reporting each
        rebuilt = await rebuild_projections(conn, progress=lambda *p: reported.append(p),
                                            events_per_range=1000)
    assert (rebuilt.orders, rebuilt.events, rebuilt.changed_rows) == (2000, result.events, 0)
    assert await _read_model(pool) == before
    done = [d for d, _ in reported]
    assert len(reported) > 5 and done == sorted(done) and reported[-1] == (result.events,) * 2


async def test_rebuild_repairs_a_tampered_read_model(pool: asyncpg.Pool) -> None:
    await seed(pool, orders=30, seed=4)
    before = await _read_model(pool)
    # three rows that really change, none of them the one deleted below
    await pool.execute("update orders_current set status = 'CANCELLED', total_amount = 0 "
                       "where order_id in (select order_id from orders_current "
                       "where status <> 'CANCELLED' order by order_id limit 3)")
    await pool.execute("delete from orders_current where order_id = "
                       "(select order_id from orders_current order by order_id desc limit 1)")
    async with pool.acquire() as conn:
        rebuilt = await rebuild_projections(conn)
    assert rebuilt.changed_rows >= 4
    assert await _read_model(pool) == before


async def test_seed_is_deterministic(pool: asyncpg.Pool, database_url: str) -> None:
    await seed(pool, orders=40, seed=11)
    first = await pool.fetch(
        "select event_id, order_id, stream_version, event_type, occurred_at, payload "
        "from order_events order by order_id, stream_version")
    types = {row["event_type"] for row in first}
    assert types == {"OrderPlaced", "ItemAddedToOrder", "ItemRemovedFromOrder",
                     "PaymentAuthorized", "PaymentCaptured", "PaymentCaptureReversed",
                     "OrderShipped", "OrderCancelled"}
    late = await pool.fetchval(
        "select count(*) from order_events e join order_events p on p.order_id = e.order_id "
        "and p.stream_version = e.stream_version - 1 where e.occurred_at < p.occurred_at")
    assert late > 0
    await pool.execute("alter table order_events disable trigger order_events_no_truncate")
    await pool.execute("truncate order_events, orders_current, customers cascade")
    await pool.execute("alter table order_events enable trigger order_events_no_truncate")
    await seed(pool, orders=40, seed=11)
    again = await pool.fetch(
        "select event_id, order_id, stream_version, event_type, occurred_at, payload "
        "from order_events order by order_id, stream_version")
    assert [tuple(r.values()) for r in again] == [tuple(r.values()) for r in first]
