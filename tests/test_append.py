"""The append path and the database's own rules: every row of the SPEC state table."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from gql import errors
from gql.catalogue import CATALOGUE
from gql.events import EventType, OrderStatus
from tests.factories import (
    ALLOWED,
    TOTAL,
    allows,
    append,
    customer,
    order_for,
    order_in,
    payload_for,
    snapshot,
)

E, S = EventType, OrderStatus
CASES = [(event_type, status) for event_type in EventType for status in [None, *OrderStatus]]


def _id(case: Any) -> str:
    return case.name if case is not None else "NEW"


async def _order(pool: asyncpg.Pool, status: OrderStatus | None,
                 event_type: EventType = E.ORDER_PLACED) -> tuple[uuid.UUID, uuid.UUID]:
    """An order in `status` (None: no order yet) meant to take `event_type`."""
    customer_id = await customer(pool)
    if status is None:
        return uuid.uuid4(), customer_id
    return await order_for(pool, event_type, status, customer_id), customer_id


async def _allowed(pool: asyncpg.Pool, event_type: EventType, status: OrderStatus | None,
                   order_id: uuid.UUID) -> bool:
    return status in ALLOWED[event_type] and (status is None or await allows(pool, event_type, order_id))


def _expected_error(event_type: EventType, status: OrderStatus | None) -> type[Exception]:
    if status is None:
        return errors.OrderNotFound
    if CATALOGUE.event(event_type.value).starts_stream:
        return errors.OrderAlreadyExists
    return errors.InvalidTransition


async def _status(pool: asyncpg.Pool, order_id: uuid.UUID) -> str | None:
    return await pool.fetchval("select status from orders_current where order_id = $1", order_id)


@pytest.mark.parametrize(("event_type", "status"), CASES, ids=_id)
async def test_append_path_follows_state_table(
    pool: asyncpg.Pool, event_type: EventType, status: OrderStatus | None
) -> None:
    order_id, customer_id = await _order(pool, status, event_type)
    before = await snapshot(pool)
    allowed = ALLOWED[event_type]
    if await _allowed(pool, event_type, status, order_id):
        version = await pool.fetchval("select version from orders_current where order_id = $1",
                                      order_id)
        result = await append(pool, order_id, event_type, payload_for(event_type, customer_id))
        assert result.event["stream_version"] == (version or 0) + 1
        assert await _status(pool, order_id) == allowed[status].value
    else:
        with pytest.raises(_expected_error(event_type, status)) as refused:
            await append(pool, order_id, event_type, payload_for(event_type, customer_id))
        if refused.type is errors.InvalidTransition:
            assert refused.value.extensions == {"status": status.name,  # type: ignore[union-attr]
                                                "eventType": event_type.name}
        assert await snapshot(pool) == before


RAW_INSERT = """
insert into order_events (event_id, order_id, event_type, payload) values ($1, $2, $3, $4)
"""


@pytest.mark.parametrize(("event_type", "status"), CASES, ids=_id)
async def test_raw_sql_insert_follows_state_table(
    pool: asyncpg.Pool, event_type: EventType, status: OrderStatus | None
) -> None:
    order_id, customer_id = await _order(pool, status, event_type)
    before = await snapshot(pool)
    insert = (RAW_INSERT, uuid.uuid4(), order_id, event_type.value,
              payload_for(event_type, customer_id))
    allowed = ALLOWED[event_type]
    if await _allowed(pool, event_type, status, order_id):
        await pool.execute(*insert)
        assert await _status(pool, order_id) == allowed[status].value
    else:
        with pytest.raises(asyncpg.RaiseError) as refused:
            await pool.execute(*insert)
        expected = {errors.OrderNotFound: "order_not_found",
                    errors.OrderAlreadyExists: "order_already_exists",
                    errors.InvalidTransition: "invalid_transition"}
        assert refused.value.constraint_name == expected[_expected_error(event_type, status)]
        assert await snapshot(pool) == before


TRANSITIONS = "select event_type, from_status, to_status from order_transitions order by 1, 2"
STORED_STATUS = "select status from order_events where event_id = $1"


async def test_raw_sql_insert_stores_the_status_of_every_transition(pool: asyncpg.Pool) -> None:
    """Each row of the state machine's table, as data: the event stores the status it leads to."""
    transitions = await pool.fetch(TRANSITIONS)
    assert len(transitions) >= len(EventType)
    for row in transitions:
        before = S(row["from_status"]) if row["from_status"] else None
        order_id, customer_id = await _order(pool, before, E(row["event_type"]))
        event_id = uuid.uuid4()
        await pool.execute(RAW_INSERT, event_id, order_id, row["event_type"],
                           payload_for(E(row["event_type"]), customer_id))
        assert await pool.fetchval(STORED_STATUS, event_id) == row["to_status"], dict(row)


@pytest.mark.parametrize("forged", ["SHIPPED", "NOT_A_STATUS"])
async def test_raw_sql_cannot_forge_the_stored_status(pool: asyncpg.Pool, forged: str) -> None:
    order_id, customer_id = await _order(pool, OrderStatus.PLACED)
    event_id = uuid.uuid4()
    await pool.execute(
        "insert into order_events (event_id, order_id, event_type, payload, status)"
        " values ($1, $2, 'ItemAddedToOrder', $3, $4)",
        event_id, order_id, payload_for(E.ITEM_ADDED_TO_ORDER, customer_id), forged)
    assert await pool.fetchval(STORED_STATUS, event_id) == "PLACED"
    assert await _status(pool, order_id) == "PLACED"


async def test_raw_sql_cannot_forge_positions_or_versions(pool: asyncpg.Pool) -> None:
    order_id = await order_in(pool, OrderStatus.PLACED)
    with pytest.raises(asyncpg.RaiseError) as refused:
        await pool.execute(
            "insert into order_events (event_id, order_id, event_type, stream_version, payload)"
            " values ($1, $2, 'OrderCancelled', 5, $3)",
            uuid.uuid4(), order_id, {"reason": "x", "reasonCode": "OTHER"})
    assert refused.value.constraint_name == "wrong_expected_version"
    await pool.execute(
        "insert into order_events (event_id, order_id, event_type, global_position, payload)"
        " values ($1, $2, 'OrderCancelled', -1, $3)", uuid.uuid4(), order_id, {"reason": "x"})
    positions = await pool.fetch("select global_position from order_events where order_id = $1",
                                 order_id)
    assert all(row["global_position"] > 0 for row in positions)


@pytest.mark.parametrize("statement", [
    "update order_events set payload = '{}'",
    "delete from order_events",
    "truncate order_events",
    "update order_events set event_type = 'OrderCancelled' where false",
])
async def test_log_refuses_update_delete_truncate(pool: asyncpg.Pool, statement: str) -> None:
    await order_in(pool, OrderStatus.PAID)
    before = await snapshot(pool)
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pool.execute(statement)
    assert await snapshot(pool) == before


async def test_expected_version_mismatch_reports_current_version(pool: asyncpg.Pool) -> None:
    order_id = await order_in(pool, OrderStatus.PAYMENT_AUTHORIZED)
    before = await snapshot(pool)
    with pytest.raises(errors.WrongExpectedVersion) as refused:
        await append(pool, order_id, EventType.ORDER_CANCELLED, {"reason": "x", "reasonCode": "OTHER"},
                     expected_version=1)
    assert refused.value.extensions["currentVersion"] == 2
    assert await snapshot(pool) == before
    result = await append(pool, order_id, EventType.ORDER_CANCELLED, {"reason": "x", "reasonCode": "OTHER"},
                          expected_version=2)
    assert result.event["stream_version"] == 3


async def test_same_event_id_and_content_is_deduplicated_even_when_final(
    pool: asyncpg.Pool,
) -> None:
    customer_id = await customer(pool)
    order_id = uuid.uuid4()
    placed = payload_for(EventType.ORDER_PLACED, customer_id)
    event_id = uuid.uuid4()
    first = await append(pool, order_id, EventType.ORDER_PLACED, placed, event_id=event_id)
    await append(pool, order_id, EventType.ORDER_CANCELLED, {"reason": "x", "reasonCode": "OTHER"})
    before = await snapshot(pool)
    again = await append(pool, order_id, EventType.ORDER_PLACED, placed, event_id=event_id)
    assert again.deduplicated and not first.deduplicated
    assert again.event["event_id"] == event_id
    assert again.event["global_position"] == first.event["global_position"]
    assert await snapshot(pool) == before


@pytest.mark.parametrize("change", ["payload", "type", "order"])
async def test_same_event_id_with_other_content_conflicts(pool: asyncpg.Pool, change: str) -> None:
    order_id = await order_in(pool, OrderStatus.PLACED)
    other_order = await order_in(pool, OrderStatus.PLACED)
    event_id = uuid.uuid4()
    await append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
                 {"sku": "X", "quantity": 1, "unitPrice": "1.00"}, event_id=event_id)
    before = await snapshot(pool)
    retry: dict[str, Any] = {
        "payload": (order_id, EventType.ITEM_ADDED_TO_ORDER,
                    {"sku": "X", "quantity": 2, "unitPrice": "1.00"}),
        "type": (order_id, EventType.ORDER_CANCELLED, {"reason": "x", "reasonCode": "OTHER"}),
        "order": (other_order, EventType.ITEM_ADDED_TO_ORDER,
                  {"sku": "X", "quantity": 1, "unitPrice": "1.00"}),
    }[change]
    with pytest.raises(errors.IdempotencyConflict):
        await append(pool, *retry, event_id=event_id)
    assert await snapshot(pool) == before


async def test_authorization_id_retry_is_deduplicated(pool: asyncpg.Pool) -> None:
    order_id = await order_in(pool, OrderStatus.PLACED)
    data = payload_for(EventType.PAYMENT_AUTHORIZED)
    first = await append(pool, order_id, EventType.PAYMENT_AUTHORIZED, data)
    before = await snapshot(pool)
    again = await append(pool, order_id, EventType.PAYMENT_AUTHORIZED, data)  # new event id
    assert again.deduplicated
    assert again.event["event_id"] == first.event["event_id"]
    assert await snapshot(pool) == before


@pytest.mark.parametrize("change", ["other order", "other amount"])
async def test_authorization_id_reuse_conflicts(pool: asyncpg.Pool, change: str) -> None:
    order_id = await order_in(pool, OrderStatus.PLACED)
    data = payload_for(EventType.PAYMENT_AUTHORIZED)
    await append(pool, order_id, EventType.PAYMENT_AUTHORIZED, data)
    target = await order_in(pool, OrderStatus.PLACED) if change == "other order" else order_id
    amount = TOTAL if change == "other order" else "99.00"
    before = await snapshot(pool)
    with pytest.raises(errors.IdempotencyConflict) as refused:
        await append(pool, target, EventType.PAYMENT_AUTHORIZED, {**data, "amount": amount})
    assert refused.value.extensions["field"] == "authorizationId"
    assert await snapshot(pool) == before


BAD_INPUT: list[tuple[EventType, dict[str, Any], str]] = [
    (E.ITEM_ADDED_TO_ORDER, {"sku": "A", "quantity": 0, "unitPrice": "1.00"}, "quantity"),
    (E.ITEM_ADDED_TO_ORDER, {"sku": "A", "quantity": -3, "unitPrice": "1.00"}, "quantity"),
    (E.ITEM_ADDED_TO_ORDER, {"sku": "A", "quantity": 1.5, "unitPrice": "1.00"}, "quantity"),
    (E.ITEM_ADDED_TO_ORDER, {"sku": "A", "quantity": 1, "unitPrice": "-1.00"}, "unitPrice"),
    (E.ITEM_ADDED_TO_ORDER, {"sku": "A", "quantity": 1, "unitPrice": "abc"}, "unitPrice"),
    (E.ITEM_ADDED_TO_ORDER, {"sku": "", "quantity": 1, "unitPrice": "1.00"}, "sku"),
    (E.ITEM_ADDED_TO_ORDER, {"sku": "SKU-1", "quantity": 1, "unitPrice": "9.99"}, "unitPrice"),
    (E.ITEM_REMOVED_FROM_ORDER, {"sku": "SKU-1", "quantity": 3}, "quantity"),
    (E.ITEM_REMOVED_FROM_ORDER, {"sku": "NOPE", "quantity": 1}, "quantity"),
    (E.PAYMENT_AUTHORIZED, {"amount": "24.99", "paymentProvider": "p", "authorizationId": "a1"},
     "amount"),
    (E.PAYMENT_AUTHORIZED, {"amount": "25.00", "paymentProvider": "", "authorizationId": "a2"},
     "paymentProvider"),
    (E.ORDER_CANCELLED, {"reason": "x" * 201}, "reason"),
    (E.ORDER_CANCELLED, {}, "reason"),
]


@pytest.mark.parametrize(("event_type", "data", "field"), BAD_INPUT,
                         ids=[f"{e.name}-{f}-{i}" for i, (e, _, f) in enumerate(BAD_INPUT)])
async def test_bad_input_is_refused_with_its_field(
    pool: asyncpg.Pool, event_type: EventType, data: dict[str, Any], field: str
) -> None:
    order_id = await order_in(pool, OrderStatus.PLACED)
    before = await snapshot(pool)
    with pytest.raises(errors.BadUserInput) as refused:
        await append(pool, order_id, event_type, data)
    assert refused.value.extensions["field"] == field
    assert await snapshot(pool) == before


@pytest.mark.parametrize(("data", "field"), [
    ({"currency": "EURO", "items": []}, "currency"),
    ({"currency": "eu", "items": []}, "currency"),
    ({"currency": "EUR", "items": [{"sku": "A", "quantity": 0, "unitPrice": "1"}]},
     "items[0].quantity"),
    ({"currency": "EUR", "items": "many"}, "items"),
])
async def test_bad_order_placement_is_refused(
    pool: asyncpg.Pool, data: dict[str, Any], field: str
) -> None:
    customer_id = await customer(pool)
    before = await snapshot(pool)
    with pytest.raises(errors.BadUserInput) as refused:
        await append(pool, uuid.uuid4(), EventType.ORDER_PLACED,
                     {"customerId": str(customer_id), **data})
    assert refused.value.extensions["field"] == field
    assert await snapshot(pool) == before


async def test_unknown_customer_is_refused(pool: asyncpg.Pool) -> None:
    before = await snapshot(pool)
    with pytest.raises(errors.CustomerNotFound):
        await append(pool, uuid.uuid4(), EventType.ORDER_PLACED,
                     payload_for(EventType.ORDER_PLACED, uuid.uuid4()))
    assert await snapshot(pool) == before


async def test_payload_over_64kb_is_refused(pool: asyncpg.Pool) -> None:
    customer_id = await customer(pool)
    items = [{"sku": f"SKU-{n:05d}-{'x' * 60}", "quantity": 1, "unitPrice": "1.00"}
             for n in range(900)]
    before = await snapshot(pool)
    with pytest.raises(errors.BadUserInput) as refused:
        await append(pool, uuid.uuid4(), EventType.ORDER_PLACED,
                     {"customerId": str(customer_id), "currency": "EUR", "items": items})
    assert refused.value.extensions["field"] == "payload"
    assert await snapshot(pool) == before


async def test_text_with_quotes_and_sql_is_stored_verbatim(pool: asyncpg.Pool) -> None:
    order_id = await order_in(pool, OrderStatus.PLACED)
    sku = "Robert'); DROP TABLE order_events; -- \"quoted\""
    await append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
                 {"sku": sku, "quantity": 1, "unitPrice": "1.00"})
    items = await pool.fetchval("select items from orders_current where order_id = $1", order_id)
    assert sku in [item["sku"] for item in items]
    assert await pool.fetchval("select count(*) from order_events") == 2


async def test_shipping_defaults_to_every_item(pool: asyncpg.Pool) -> None:
    order_id = await order_in(pool, OrderStatus.PAID)
    result = await append(pool, order_id, EventType.ORDER_SHIPPED,
                          {"carrier": "UPS", "trackingNumber": "1Z"})
    assert result.event["payload"]["shippedItems"] == [{"sku": "SKU-1", "quantity": 2}]


async def test_read_model_tracks_amounts_through_reversal(pool: asyncpg.Pool) -> None:
    order_id = await order_in(pool, OrderStatus.PAID)
    await append(pool, order_id, EventType.PAYMENT_CAPTURE_REVERSED,
                 {"amount": TOTAL, "reason": "chargeback"})
    row = await pool.fetchrow("select * from orders_current where order_id = $1", order_id)
    assert (row["status"], str(row["authorized_amount"]), str(row["captured_amount"])) == (
        "PAYMENT_AUTHORIZED", TOTAL, "0.00")
