"""Factories: customers and orders brought to a status through the real append path."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from gql.catalogue import CATALOGUE
from gql.events import EventType, NewEvent, OrderStatus, Position
from gql.identity import SYSTEM
from gql.store import reads
from gql.store.append import Appended, append_event, register_customer

UNIT_PRICE = "12.50"
QUANTITY = 2
TOTAL = "25.00"


async def customer(db: asyncpg.Pool, name: str = "Ada Lovelace") -> uuid.UUID:
    customer_id = uuid.uuid4()
    await register_customer(db, customer_id, name, f"{customer_id.hex[:12]}@example.com",
                            SYSTEM.claims())
    return customer_id


def payload_for(event_type: EventType, customer_id: uuid.UUID | None = None) -> dict[str, Any]:
    """Valid data for `event_type` on an order holding QUANTITY x UNIT_PRICE of SKU-1."""
    return {
        EventType.ORDER_PLACED: {"customerId": str(customer_id), "currency": "EUR",
                                 "items": [{"sku": "SKU-1", "quantity": QUANTITY,
                                            "unitPrice": UNIT_PRICE}]},
        EventType.ITEM_ADDED_TO_ORDER: {"sku": "SKU-2", "quantity": 1, "unitPrice": "3.00"},
        EventType.ITEM_REMOVED_FROM_ORDER: {"sku": "SKU-1", "quantity": 1},
        EventType.PAYMENT_AUTHORIZED: {"amount": TOTAL, "paymentProvider": "stripe",
                                       "authorizationId": f"auth-{uuid.uuid4().hex}"},
        EventType.PAYMENT_CAPTURED: {"amount": TOTAL},
        EventType.PAYMENT_CAPTURE_REVERSED: {"amount": TOTAL, "reason": "chargeback"},
        EventType.ORDER_SHIPPED: {"carrier": "DHL", "trackingNumber": "TRK1"},
        EventType.ORDER_CANCELLED: {"reason": "changed mind", "reasonCode": "CUSTOMER_REQUEST"},
        EventType.REFUND_ISSUED: {"amount": "5.00", "reason": "a mug arrived broken"},
        EventType.CUSTOMER_FORGOTTEN: {},
    }[event_type]


# The state machine, from the declarations (gql/catalogue.py), never restated here: for each
# event type, the statuses it may follow (None: a new stream) and the status it leads to.
ALLOWED: dict[EventType, dict[OrderStatus | None, OrderStatus]] = {
    EventType(e.name): {(OrderStatus(source) if source else None): OrderStatus(target)
                        for source, target in e.transitions()}
    for e in CATALOGUE.events}


def paths_to(status: OrderStatus) -> list[list[EventType]]:
    """The ways a new order reaches `status` through events that change its status, each
    status passed once, shortest first."""
    found: list[list[EventType]] = []
    frontier: list[tuple[OrderStatus | None, list[EventType], set[OrderStatus]]] = [(None, [], set())]
    while frontier:
        at, path, passed = frontier.pop(0)
        for event_type, moves in ALLOWED.items():
            target = moves.get(at)
            if target is None or target == at or target in passed:
                continue
            step = [*path, event_type]
            if target == status:
                found.append(step)
            else:
                frontier.append((target, step, {*passed, target}))
    return found


# The shortest way to each status.
PATHS: dict[OrderStatus, list[EventType]] = {s: paths_to(s)[0] for s in OrderStatus}


async def order_in(db: asyncpg.Pool, status: OrderStatus,
                   customer_id: uuid.UUID | None = None,
                   path: list[EventType] | None = None) -> uuid.UUID:
    customer_id = customer_id or await customer(db)
    order_id = uuid.uuid4()
    for event_type in path or PATHS[status]:
        await append(db, order_id, event_type, payload_for(event_type, customer_id))
    return order_id


async def allows(db: asyncpg.Pool, event_type: EventType, order_id: uuid.UUID) -> bool:
    """Whether the order meets the event type's declared condition beyond its status."""
    condition = CATALOGUE.event(event_type.value).allowed_while
    if condition is None:
        return True
    return bool(await db.fetchval(f"select {condition} from orders_current s where order_id = $1",
                                  order_id))


async def order_for(db: asyncpg.Pool, event_type: EventType, status: OrderStatus,
                    customer_id: uuid.UUID | None = None) -> uuid.UUID:
    """An order in `status` that `event_type` may follow if the state machine lets it: the
    shortest path there after which the type's declared condition holds."""
    customer_id = customer_id or await customer(db)
    if event_type == EventType.CUSTOMER_FORGOTTEN:
        # what forgetCustomer does before it records the fact: the customer's key destroyed
        await db.execute("delete from customer_keys where customer_id = $1", customer_id)
    for path in paths_to(status):
        order_id = await order_in(db, status, customer_id, path)
        if await allows(db, event_type, order_id):
            return order_id
    return order_id


async def append(db: asyncpg.Pool | asyncpg.Connection, order_id: uuid.UUID,
                 event_type: EventType, payload: dict[str, Any], **meta: Any) -> Appended:
    return await append_event(db, NewEvent(order_id=order_id, type=event_type,
                                           payload=payload, **meta), SYSTEM.claims())


async def snapshot(db: asyncpg.Pool) -> tuple[list[Any], list[Any]]:
    """Everything appends can change: the log and the read model."""
    events = await db.fetch("select * from order_events order by global_position")
    orders = await db.fetch("select * from orders_current order by order_id")
    return [tuple(r.values()) for r in events], [tuple(r.values()) for r in orders]


async def settled_end(db: asyncpg.Pool) -> Position:
    """The log's end once every event committed so far is in its safe prefix (what the live
    hub and the log pages read): on a shared server another session's open transaction holds
    that prefix back for a moment."""
    last = await db.fetchrow("select log_xid, global_position from order_events "
                             "order by log_xid desc, global_position desc limit 1")
    committed = Position(last["log_xid"], last["global_position"]) if last else Position(0, 0)
    async with asyncio.timeout(15):
        while (safe := await reads.last_safe_position(db)) < committed:  # noqa: ASYNC110 (polls the server)
            await asyncio.sleep(0.02)
    return safe
