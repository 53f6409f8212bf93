"""The demo shop: orders that move through every status, by the roles that move them."""

from __future__ import annotations

import asyncio
import random

import asyncpg

from gql.demo import Shop
from gql.seed import seed
from gql.store.connection import APP_ROLE, as_role, create_pool

FOLD_DIFFERS = """
select count(*) from (select * from orders_current except
    select (og_fold(e order by e.stream_version)).* from order_events e group by e.order_id) d
"""


async def test_the_demo_shop_moves_orders_through_every_status(database_url: str,
                                                               pool: asyncpg.Pool) -> None:
    await seed(pool, orders=5, customers=5, seed=2)
    before = await pool.fetchval("select max(global_position) from order_events")
    customers = [r[0] for r in await pool.fetch("select customer_id from customers")]
    # as the server's role, with the claims of each step's role (the database checks them)
    server = await create_pool(as_role(database_url, APP_ROLE), min_size=1, max_size=8)
    shop = Shop(server, customers, random.Random(5), pace=0.01)
    running = asyncio.create_task(shop.run(rate=40))
    await asyncio.sleep(4)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    await server.close()
    made = await pool.fetch("select event_type, actor_type, actor_id, status, occurred_at, "
                            "recorded_at from order_events where global_position > $1", before)
    statuses = {r["status"] for r in made}
    assert statuses >= {"PLACED", "PAYMENT_AUTHORIZED", "PAID", "SHIPPED", "CANCELLED"}
    assert {r["event_type"] for r in made} >= {"OrderPlaced", "PaymentAuthorized", "PaymentCaptured",
                                               "OrderShipped", "OrderCancelled", "RefundIssued"}
    roles = {(r["event_type"], r["actor_type"]) for r in made}
    assert ("OrderPlaced", "customer") in roles and ("OrderShipped", "service") in roles
    assert all(abs((r["recorded_at"] - r["occurred_at"]).total_seconds()) < 5 for r in made)
    assert await pool.fetchval(FOLD_DIFFERS) == 0
