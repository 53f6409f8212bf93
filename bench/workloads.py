"""The workloads every contender runs: GraphQL documents (ours, PostGraphile) and the raw SQL.

Each contender asks for the same rows and columns:
  Q1  one order (ids vary per request) with its customer and its whole timeline;
  Q2  the 50 most recently active orders with customer and every event;
  Q3  a 50-order page filtered by status (the status varies per request) with customer names;
  Q4  Q1 as Apollo Client sends it: `__typename` in every selection set, an operationName,
      typed fragments on the event interface and `stateAt(version: 2)` (PostGraphile: the
      nearest equivalent, without stateAt and typed events);
  Q5  the board's first screen as the web app sends it (web/src/app/queries.ts, boardScreen):
      the first 20 orders of each of the five statuses with the count of each (PostGraphile:
      its `totalCount` on the same five pages);
  W1  placeOrder then addItemToOrder on the new order (two appends per request).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

STATUSES = ("PLACED", "PAYMENT_AUTHORIZED", "PAID", "SHIPPED", "CANCELLED")
READS = ("Q1", "Q2", "Q3", "Q4", "Q5")
BY_ORDER_ID = ("Q1", "Q4")  # reads of one order, by an id that varies per request
WRITES = ("W1",)
DESCRIPTIONS = {
    "Q1": "one order by id (ids vary) with customer and timeline",
    "Q2": "orders(first: 50) with customer and every event",
    "Q3": "status-filtered page of 50 (status varies) with customer names",
    "Q4": "Q1 as Apollo Client sends it (__typename everywhere, typed fragments, stateAt)",
    "Q5": "the board's first screen: five status columns of 20 orders, each with its count",
    "W1": "placeOrder + addItemToOrder (2 appends per request)",
}

_OURS_ORDER = """id status currency totalAmount version placedAt lastEventAt
    items { sku quantity unitPrice }
    customer { id name email }
    events { nodes { id streamVersion type occurredAt recordedAt actor { type id } payload } }"""
_PGL_ORDER = """orderId status currency totalAmount version placedAt lastEventAt items
    customerByCustomerId { customerId name email }
    events(orderBy: STREAM_VERSION_ASC) {
      nodes { eventId streamVersion eventType occurredAt recordedAt actorType actorId payload } }"""
_PGL_RECENT = "orderBy: [LAST_EVENT_AT_DESC, ORDER_ID_DESC]"

_CARD = "id status currency totalAmount refundedAmount lastEventAt customer { id name } items { quantity }"
_PGL_CARD = ("orderId status currency totalAmount refundedAmount lastEventAt "
             "customerByCustomerId { customerId name } items")

OURS = {
    "Q1": "query Q1($id: UUID!) { order(id: $id) { %s } }" % _OURS_ORDER,
    "Q2": "query Q2 { orders(first: 50) { nodes { %s } } }" % _OURS_ORDER,
    "Q3": """query Q3($status: OrderStatus!) { orders(first: 50, status: [$status]) {
        nodes { id status totalAmount lastEventAt customer { name } } } }""",
    "Q4": """query OrderDetail($id: UUID!) { order(id: $id) { __typename id status currency
        totalAmount version placedAt lastEventAt items { __typename sku quantity unitPrice }
        customer { __typename id name email }
        events { __typename nodes { __typename id streamVersion type occurredAt recordedAt
            actor { __typename type id } payload
            ... on OrderShipped { carrier trackingNumber }
            ... on PaymentAuthorized { amount paymentProvider } } }
        stateAt(version: 2) { __typename status totalAmount } } }""",
    "W1": """mutation W1($order: UUID!, $customer: UUID!) {
        placeOrder(input: {orderId: $order, customerId: $customer, currency: "EUR",
                           items: [{sku: "MUG-STONEWARE", quantity: 1, unitPrice: "14.00"}]}) {
            event { id streamVersion } order { version } }
        addItemToOrder(input: {orderId: $order, sku: "TEA-SENCHA-100G", quantity: 2,
                               unitPrice: "8.90"}) {
            event { id streamVersion } order { version totalAmount } } }""",
}

OURS["Q5"] = "query Board($first: Int!, $customerId: UUID) { logPosition %s }" % " ".join(
    f"{s}: orders(first: $first, status: [{s}], customerId: $customerId) "
    f"{{ nodes {{ {_CARD} }} pageInfo {{ hasNextPage endCursor }} totalCount }}" for s in STATUSES)

POSTGRAPHILE = {
    "Q1": "query Q1($id: UUID!) { ordersCurrentByOrderId(orderId: $id) { %s } }" % _PGL_ORDER,
    "Q2": "query Q2 { allOrdersCurrents(first: 50, %s) { nodes { %s } } }" % (_PGL_RECENT, _PGL_ORDER),
    "Q4": """query OrderDetail($id: UUID!) { ordersCurrentByOrderId(orderId: $id) { __typename
        orderId status currency totalAmount version placedAt lastEventAt items
        customerByCustomerId { __typename customerId name email }
        events(orderBy: STREAM_VERSION_ASC) { __typename nodes { __typename eventId streamVersion
            eventType occurredAt recordedAt actorType actorId payload } } } }""",
    "Q3": """query Q3($status: String!) { allOrdersCurrents(first: 50, condition: {status: $status}, %s) {
        nodes { orderId status totalAmount lastEventAt customerByCustomerId { name } } } }"""
    % _PGL_RECENT,
    # og_append (schema.sql) exposed as a mutation: the same database work as our append path.
    # Its `event` output cannot be selected (PostGraphile has no codec for the xid8 column), so
    # the order is read back through the payload's `query` field, as ours reads it back.
    "W1": """mutation W1($order: UUID!, $e1: UUID!, $e2: UUID!, $placed: JSON!, $added: JSON!) {
        a: ogAppend(input: {pEventId: $e1, pOrderId: $order, pEventType: "OrderPlaced",
                            pPayload: $placed}) {
            result { deduplicated } query { ordersCurrentByOrderId(orderId: $order) { version } } }
        b: ogAppend(input: {pEventId: $e2, pOrderId: $order, pEventType: "ItemAddedToOrder",
                            pPayload: $added}) {
            result { deduplicated }
            query { ordersCurrentByOrderId(orderId: $order) { version totalAmount } } } }""",
}

POSTGRAPHILE["Q5"] = "query Board($first: Int!) { %s }" % " ".join(
    f"{s}: allOrdersCurrents(first: $first, condition: {{status: \"{s}\"}}, {_PGL_RECENT}) "
    f"{{ nodes {{ {_PGL_CARD} }} pageInfo {{ hasNextPage endCursor }} totalCount }}" for s in STATUSES)

PLACED_ITEMS = [{"sku": "MUG-STONEWARE", "quantity": 1, "unitPrice": "14.00"}]
ADDED_ITEM = {"sku": "TEA-SENCHA-100G", "quantity": 2, "unitPrice": "8.90"}

# The raw limit: one statement per read, rows decoded by asyncpg, no HTTP, no GraphQL.
_RAW_COLUMNS = """o.order_id, o.status, o.currency, o.total_amount, o.version, o.placed_at,
    o.last_event_at, o.items, c.customer_id, c.name, c.email, e.event_id, e.stream_version,
    e.event_type, e.occurred_at, e.recorded_at, e.actor_type, e.actor_id, e.payload"""
# each order's timeline through the (order_id, stream_version) index, already in order
_RAW_TIMELINE = """left join lateral (
    select event_id, stream_version, event_type, occurred_at, recorded_at, actor_type, actor_id, payload
    from order_events x where x.order_id = o.order_id order by x.stream_version) e on true"""
RAW_SQL = {
    "Q1": f"""
select {_RAW_COLUMNS}
from orders_current o
join customers c on c.customer_id = o.customer_id
{_RAW_TIMELINE}
where o.order_id = $1""",
    "Q2": f"""
select {_RAW_COLUMNS}
from (select * from orders_current order by last_event_at desc, order_id desc limit 50) o
join customers c on c.customer_id = o.customer_id
{_RAW_TIMELINE}
order by o.last_event_at desc, o.order_id desc""",
    "Q3": """
select o.order_id, o.status, o.total_amount, o.last_event_at, c.name
from orders_current o join customers c on c.customer_id = o.customer_id
where o.status = $1
order by o.last_event_at desc, o.order_id desc
limit 50""",
}

RAW_SQL["Q4"] = RAW_SQL["Q1"]  # the same rows; the extra fields are computed from them
# each status's count and first page (the count of one status: its index, read whole)
RAW_SQL["Q5"] = """
select s.status, (select count(*) from orders_current c where c.status = s.status) as total,
       o.order_id, o.currency, o.total_amount, o.refunded_amount, o.last_event_at, o.items,
       cu.customer_id, cu.name
from unnest(array['%s']) with ordinality s(status, n)
cross join lateral (select * from orders_current x where x.status = s.status
                    order by x.last_event_at desc, x.order_id desc limit 21) o
join customers cu on cu.customer_id = o.customer_id
order by s.n, o.last_event_at desc, o.order_id desc""" % "', '".join(STATUSES)

# The same documents built by PostgreSQL and fetched as one text value, not parsed: what a
# server that compiles GraphQL to SQL forwards. Same rows, same order, same fields as ours.
_JSON_ORDER = """json_build_object('id', o.order_id, 'status', o.status, 'currency', o.currency,
    'totalAmount', o.total_amount::text, 'version', o.version, 'placedAt', o.placed_at,
    'lastEventAt', o.last_event_at, 'items', o.items,
    'customer', json_build_object('id', c.customer_id, 'name', c.name, 'email', c.email),
    'events', json_build_object('nodes', (
        select coalesce(json_agg(json_build_object('id', x.event_id, 'streamVersion', x.stream_version,
            'type', x.event_type, 'occurredAt', x.occurred_at, 'recordedAt', x.recorded_at,
            'actor', json_build_object('type', x.actor_type, 'id', x.actor_id), 'payload', x.payload)
            order by x.stream_version), '[]')
        from order_events x where x.order_id = o.order_id)))"""
_JSON_RECENT = "(select * from orders_current order by last_event_at desc, order_id desc limit 50)"
RAW_JSON_SQL = {
    "Q1": f"""
select json_build_object('data', json_build_object('order', {_JSON_ORDER}))::text
from orders_current o join customers c on c.customer_id = o.customer_id
where o.order_id = $1""",
    "Q2": f"""
select json_build_object('data', json_build_object('orders', json_build_object('nodes',
    coalesce(json_agg({_JSON_ORDER} order by o.last_event_at desc, o.order_id desc), '[]'))))::text
from {_JSON_RECENT} o join customers c on c.customer_id = o.customer_id""",
    "Q3": """
select json_build_object('data', json_build_object('orders', json_build_object('nodes',
    coalesce(json_agg(json_build_object('id', o.order_id, 'status', o.status,
        'totalAmount', o.total_amount::text, 'lastEventAt', o.last_event_at,
        'customer', json_build_object('name', c.name))
        order by o.last_event_at desc, o.order_id desc), '[]'))))::text
from (select * from orders_current where status = $1
      order by last_event_at desc, order_id desc limit 50) o
join customers c on c.customer_id = o.customer_id""",
}

RAW_JSON_SQL["Q4"] = RAW_JSON_SQL["Q1"]
RAW_JSON_SQL["Q5"] = """
select json_build_object('data', json_build_object(%s))::text""" % ", ".join(f"""
    '{s}', (select json_build_object(
        'nodes', coalesce(json_agg(json_build_object('id', p.order_id, 'status', p.status,
            'currency', p.currency, 'totalAmount', p.total_amount::text,
            'refundedAmount', p.refunded_amount::text, 'lastEventAt', p.last_event_at,
            'customer', json_build_object('id', cu.customer_id, 'name', cu.name),
            'items', p.items) order by p.last_event_at desc, p.order_id desc)
            filter (where p.n <= 20), '[]'),
        'pageInfo', json_build_object('hasNextPage', count(*) > 20),
        'totalCount', (select count(*) from orders_current c where c.status = '{s}'))
      from (select x.*, row_number() over (order by x.last_event_at desc, x.order_id desc) n
            from (select * from orders_current where status = '{s}'
                  order by last_event_at desc, order_id desc limit 21) x) p
      join customers cu on cu.customer_id = p.customer_id)""" for s in STATUSES)

# Placeholders the load generator replaces with a fresh UUID per request (see wrk.lua).
_ORDER, _E1, _E2 = "__UUID_order__", "__UUID_e1__", "__UUID_e2__"


def _body(query: str, variables: dict[str, Any]) -> str:
    return orjson.dumps({"query": query, "variables": variables}).decode()


def request_bodies(contender: str, workload: str, order_ids: Sequence[uuid.UUID],
                   customer_ids: Sequence[uuid.UUID], count: int = 4000, seed: int = 11) -> list[str]:
    """JSON bodies for one HTTP contender, one per line of the load generator's input file."""
    rng = random.Random(seed)  # the same sequence of ids for every contender
    docs = OURS if contender == "ours" else POSTGRAPHILE
    query = " ".join(docs[workload].split())
    if workload in BY_ORDER_ID:
        named = {"operationName": "OrderDetail"} if workload == "Q4" else {}
        return [orjson.dumps({"query": query, "variables": {"id": str(rng.choice(order_ids))},
                              **named}).decode() for _ in range(count)]
    if workload == "Q2":
        return [_body(query, {})]
    if workload == "Q5":
        return [_body(query, {"first": 20, "customerId": None} if contender == "ours"
                      else {"first": 20})]
    if workload == "Q3":
        return [_body(query, {"status": rng.choice(STATUSES)}) for _ in range(count)]
    customers = [str(rng.choice(customer_ids)) for _ in range(min(count, 500))]
    if contender == "ours":
        return [_body(query, {"order": _ORDER, "customer": c}) for c in customers]
    return [_body(query, {"order": _ORDER, "e1": _E1, "e2": _E2, "added": ADDED_ITEM,
                          "placed": {"customerId": c, "currency": "EUR", "items": PLACED_ITEMS}})
            for c in customers]
