"""Defence in depth: the log's guards hold for any session, and the server's role owns nothing
and can only read and append."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

import asyncpg
import orjson
import pytest

from gql.events import EventType, OrderStatus
from gql.store.connection import APP_ROLE, as_role, connect, create_pool, warn_if_superuser
from tests.factories import order_in, payload_for

COUNT = """select count(*), md5(coalesce(string_agg(e::text, '|' order by global_position), ''))
           from order_events e"""
INSERT = """insert into order_events (event_id, order_id, event_type, payload)
            values ($1, $2, $3, $4)"""


@pytest.fixture
async def app_conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect(as_role(database_url, APP_ROLE))
    yield conn
    await conn.close()


async def test_replica_mode_does_not_switch_the_guards_off(pool: asyncpg.Pool) -> None:
    order_id = await order_in(pool, OrderStatus.PLACED)
    before = await pool.fetchrow(COUNT)
    async with pool.acquire() as conn:  # a superuser session
        await conn.execute("set session_replication_role = replica")
        try:
            with pytest.raises(asyncpg.PostgresError) as deleted:
                await conn.execute("delete from order_events")
            assert deleted.value.constraint_name == "log_immutable"
            with pytest.raises(asyncpg.PostgresError) as truncated:
                await conn.execute("truncate order_events")
            assert truncated.value.constraint_name == "log_immutable"
            with pytest.raises(asyncpg.PostgresError) as shipped:
                await conn.execute(INSERT, uuid.uuid4(), order_id, EventType.ORDER_SHIPPED.value,
                                   payload_for(EventType.ORDER_SHIPPED))
            assert shipped.value.constraint_name == "invalid_transition"
        finally:
            await conn.execute("reset session_replication_role")
    assert await pool.fetchrow(COUNT) == before


async def test_the_server_role_cannot_change_the_log(pool: asyncpg.Pool,
                                                     app_conn: asyncpg.Connection) -> None:
    order_id = await order_in(pool, OrderStatus.PLACED)
    before = await pool.fetchrow(COUNT)
    for statement in ("delete from order_events", "update order_events set payload = '{}'",
                      "truncate order_events", "update orders_current set status = 'PAID'",
                      "delete from customers", "set session_replication_role = replica",
                      "alter table order_events disable trigger order_events_append"):
        with pytest.raises((asyncpg.InsufficientPrivilegeError, asyncpg.PostgresError)) as refused:
            await app_conn.execute(statement)
        assert isinstance(refused.value, asyncpg.InsufficientPrivilegeError) or \
            refused.value.sqlstate == "42501", (statement, refused.value)
    assert await pool.fetchrow(COUNT) == before
    # appending is what it may do, also with plain SQL, once it says for whom (the grants
    # apply, and so do the rules); without claims it may not append at all
    with pytest.raises(asyncpg.PostgresError) as unclaimed:
        await app_conn.execute(INSERT, uuid.uuid4(), order_id, EventType.ORDER_CANCELLED.value,
                               {"reason": "changed mind"})
    assert unclaimed.value.constraint_name == "forbidden"
    assert await pool.fetchrow(COUNT) == before
    async with app_conn.transaction():
        await app_conn.execute("select og_claim('admin', '', null, 'ops')")
        await app_conn.execute(INSERT, uuid.uuid4(), order_id, EventType.ORDER_CANCELLED.value,
                               {"reason": "changed mind"})
    assert await pool.fetchval("select status from orders_current where order_id = $1",
                               order_id) == "CANCELLED"


async def test_the_server_role_owns_nothing(app_conn: asyncpg.Connection) -> None:
    owned = await app_conn.fetchval("""
        select count(*) from pg_class where relowner = current_user::regrole
        union all select count(*) from pg_proc where proowner = current_user::regrole
        order by 1 desc limit 1""")
    assert owned == 0
    assert await app_conn.fetchval("select rolsuper from pg_roles where rolname = current_user") is False
    owners = await app_conn.fetch("""select distinct pg_get_userbyid(relowner) as owner from pg_class
        where relnamespace = current_schema()::regnamespace and relkind in ('r', 'S')""")
    assert [r["owner"] for r in owners] == ["ordergraph_owner"]


async def test_a_superuser_server_says_so_once(database_url: str, pool: asyncpg.Pool,
                                              caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ordergraph"):
        await warn_if_superuser(pool)
        app_pool = await create_pool(as_role(database_url, APP_ROLE), min_size=1, max_size=1)
        try:
            await warn_if_superuser(app_pool)
        finally:
            await app_pool.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "superuser" in warnings[0].getMessage() and "\n" not in warnings[0].getMessage()


async def test_plain_sql_writers_meet_the_money_and_date_rules(pool: asyncpg.Pool) -> None:
    order_id = await order_in(pool, OrderStatus.PLACED)
    before = await pool.fetchrow(COUNT)
    customer_id = await pool.fetchval("select customer_id from orders_current limit 1")
    cases = [
        (uuid.uuid4(), EventType.ORDER_PLACED, {"customerId": str(customer_id), "currency": "ZZZ"},
         "currency"),
        (order_id, EventType.ITEM_ADDED_TO_ORDER, {"sku": "A", "quantity": 1, "unitPrice": "1.125"},
         "unitPrice"),
        (order_id, EventType.ITEM_ADDED_TO_ORDER, {"sku": "A", "quantity": 1, "unitPrice": "1e2"},
         "unitPrice"),
    ]
    for stream, event_type, payload, field in cases:
        with pytest.raises(asyncpg.PostgresError) as refused:
            await pool.execute(INSERT, uuid.uuid4(), stream, event_type.value, payload)
        assert refused.value.constraint_name == "bad_user_input"
        assert orjson.loads(refused.value.detail)["field"] == field
    with pytest.raises(asyncpg.CheckViolationError) as ancient:
        await pool.execute("""insert into order_events (event_id, order_id, event_type, payload,
            occurred_at) values ($1, $2, 'OrderCancelled', '{"reason": "x"}', '0001-01-01Z')""",
                           uuid.uuid4(), order_id)
    assert ancient.value.constraint_name == "order_events_occurred_at_range"
    assert await pool.fetchrow(COUNT) == before
