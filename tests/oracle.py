"""What a read document should answer, worked out with plain queries written here.

The oracle of the SDL walk (tests/test_field_plans.py): it shares no SQL with the page
functions of schema.sql that both executors call, so a filter those ignore, or one the
compiler drops, shows as a difference. It evaluates the small part of GraphQL the walk
writes: the root fields, an order's customer, timeline and state, a customer's orders, an
event's order; objects answer their identifying fields, connections their `nodes` and
`pageInfo { hasNextPage }`.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
from graphql import FieldNode, InlineFragmentNode, OperationDefinitionNode, SelectionSetNode, parse

from gql.events import Position
from gql.schema.node import decode_node_id
from gql.schema.pagination import decode_cursor, encode_cursor
from gql.schema.scalars import iso
from gql.store import personal

Row = asyncpg.Record
ORDER_PAGE, EVENT_PAGE, TIMELINE_PAGE = 20, 50, 100


async def answer(db: asyncpg.Pool, document: str) -> dict[str, Any]:
    operation = next(d for d in parse(document).definitions if isinstance(d, OperationDefinitionNode))
    return await _select(db, "Query", None, operation.selection_set)


def _arguments(node: FieldNode) -> dict[str, Any]:
    """Literal arguments only: the walk writes its values into the document."""
    def value(v: Any) -> Any:
        kind = v.kind
        if kind == "list_value":
            return [value(x) for x in v.values]
        if kind == "int_value":
            return int(v.value)
        if kind == "null_value":
            return None
        return v.value  # strings and enum names
    return {a.name.value: value(a.value) for a in node.arguments or ()}


async def _select(db: asyncpg.Pool, type_name: str, row: Row | None,
                  selection: SelectionSetNode | None) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for node in selection.selections if selection else ():
        if isinstance(node, InlineFragmentNode):
            condition = node.type_condition.name.value
            if condition in (type_name, "Node") or (condition == "OrderEvent" and type_name not in (
                    "Order", "Customer")):
                result.update(await _select(db, type_name, row, node.selection_set))
            continue
        assert isinstance(node, FieldNode)
        key = node.alias.value if node.alias else node.name.value
        result[key] = await _field(db, type_name, row, node)
    return result


async def _field(db: asyncpg.Pool, owner: str, row: Row | None, node: FieldNode) -> Any:
    name, args = node.name.value, _arguments(node)
    if name == "__typename":
        return owner
    if owner == "Query":
        return await _root(db, name, args, node)
    if name == "id":
        return str(row[{"Order": "order_id", "Customer": "customer_id"}.get(owner, "event_id")])
    if name == "nodeId":
        return encode_cursor(owner, row[{"Order": "order_id", "Customer": "customer_id"}.get(
            owner, "event_id")])
    if owner == "OrderState":
        return row[name] if name in ("version", "status") else await _field(db, "Order", row["now"], node)
    if not node.selection_set or name in ("items", "shippedItems", "actor"):
        return _scalar(owner, row, name, node)
    if name == "customer":
        found = await _customer(db, row["customer_id"])
        return await _select(db, "Customer", found, node.selection_set)
    if name == "order":
        found = await db.fetchrow("select * from orders_current where order_id = $1", row["order_id"])
        return await _select(db, "Order", found, node.selection_set)
    if owner == "Customer" and name == "orders":
        return await _orders(db, {**args, "customerId": str(row["customer_id"])}, node)
    if name == "events":
        return await _timeline(db, row["order_id"], args, node)
    if name == "stateAt":
        return await _state(db, row["order_id"], args, node)
    raise AssertionError(f"the oracle does not know {owner}.{name}")


async def _root(db: asyncpg.Pool, name: str, args: dict[str, Any], node: FieldNode) -> Any:
    if name == "order":
        found = await db.fetchrow("select * from orders_current where order_id = $1", uuid.UUID(args["id"]))
        return await _select(db, "Order", found, node.selection_set) if found else None
    if name == "customer":
        found = await _customer(db, uuid.UUID(args["id"]))
        return await _select(db, "Customer", found, node.selection_set) if found else None
    if name == "event":
        found = await db.fetchrow("select * from order_events where event_id = $1", uuid.UUID(args["id"]))
        return await _select(db, found["event_type"], found, node.selection_set) if found else None
    if name == "orders":
        return await _orders(db, args, node)
    if name == "orderStatistics":
        return await _statistics(db, args, node)
    if name == "node":
        return await _node(db, args["nodeId"], node)
    if name == "logPosition":
        last = await db.fetchrow("select log_xid, global_position from order_events "
                                 "order by log_xid desc, global_position desc limit 1")
        return Position(int(str(last["log_xid"])), last["global_position"]).encode()
    if name == "nodes":
        return [await _node(db, text, node) for text in args["nodeIds"]]
    if name == "events":
        return await _log(db, args, node)
    raise AssertionError(f"the oracle does not know Query.{name}")


async def _customer(db: asyncpg.Pool, id: uuid.UUID) -> dict[str, Any] | None:
    """A customer with its name and e-mail opened with its key (ERASED without one)."""
    found = await db.fetchrow("select c.*, k.key from customers c left join customer_keys k "
                              "using (customer_id) where c.customer_id = $1", id)
    if found is None:
        return None
    opened = {f: personal.ERASED if found["key"] is None
              else personal.unseal(found["key"], id, f, found[f]) for f in ("name", "email")}
    return {**dict(found), **opened}


async def _node(db: asyncpg.Pool, text: str, node: FieldNode) -> dict[str, Any] | None:
    kind, id = decode_node_id(text)
    table, key = {"Order": ("orders_current", "order_id"),
                  "Customer": ("customers", "customer_id")}.get(kind, ("order_events", "event_id"))
    found = (await _customer(db, id) if kind == "Customer"
             else await db.fetchrow(f"select * from {table} where {key} = $1", id))
    if found is None or (table == "order_events" and found["event_type"] != kind):
        return None
    return await _select(db, kind, found, node.selection_set)


async def _page(db: asyncpg.Pool, rows: list[Row], size: int, node: FieldNode,
                type_of: Any, total: int) -> dict[str, Any]:
    """A page of `rows` (those after the cursor), and `total`: all of them, cursor aside."""
    result: dict[str, Any] = {}
    for part in node.selection_set.selections if node.selection_set else ():
        assert isinstance(part, FieldNode)
        key = part.alias.value if part.alias else part.name.value
        if part.name.value == "nodes":
            result[key] = [await _select(db, type_of(r), r, part.selection_set) for r in rows[:size]]
        elif part.name.value == "pageInfo":
            result[key] = {"hasNextPage": len(rows) > size}
        elif part.name.value == "totalCount":
            result[key] = total
        elif part.name.value == "__typename":
            result[key] = node.name.value
        else:
            raise AssertionError(f"the oracle does not know {part.name.value} of a connection")
    return result


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


async def _orders(db: asyncpg.Pool, args: dict[str, Any], node: FieldNode) -> dict[str, Any]:
    size = args.get("first") or ORDER_PAGE
    at, after = decode_cursor(args["after"], "o", datetime, uuid.UUID) if args.get("after") else (None, None)
    everything = await _orders_of(db, args)
    rows = [r for r in everything if at is None or (r["last_event_at"], r["order_id"]) < (at, after)]
    return await _page(db, rows[:size + 1], size, node, lambda r: "Order", len(everything))


async def _orders_of(db: asyncpg.Pool, args: dict[str, Any]) -> list[Row]:
    """Every order the filters select, most recently active first."""
    customer = uuid.UUID(args["customerId"]) if args.get("customerId") else None
    return await db.fetch(
        "select * from orders_current"
        " where ($1::text[] is null or status = any($1)) and ($2::uuid is null or customer_id = $2)"
        "   and ($3::timestamptz is null or placed_at > $3) and ($4::timestamptz is null or placed_at < $4)"
        " order by last_event_at desc, order_id desc",
        args.get("status"), customer, _time(args.get("placedAfter")), _time(args.get("placedBefore")))


async def _statistics(db: asyncpg.Pool, args: dict[str, Any], node: FieldNode) -> dict[str, Any]:
    orders = await _orders_of(db, args)
    statuses = sorted({o["status"] for o in orders})
    currencies = sorted({o["currency"] for o in orders})
    facts = {
        "count": len(orders),
        "byStatus": [{"status": s, "count": sum(1 for o in orders if o["status"] == s)}
                     for s in statuses],
        "byCurrency": [{"currency": c, "count": sum(1 for o in orders if o["currency"] == c),
                        **{name: str(sum((o[_snake(name)] for o in orders if o["currency"] == c),
                                         Decimal(0)))
                           for name in ("totalAmount", "authorizedAmount", "capturedAmount",
                                        "refundedAmount")}}
                       for c in currencies],
    }
    return _pick(facts, node.selection_set)


def _pick(value: Any, selection: SelectionSetNode | None) -> Any:
    """The selected keys of plain values (aliases aside)."""
    if selection is None:
        return value
    if isinstance(value, list):
        return [_pick(v, selection) for v in value]
    return {f.name.value: _pick(value[f.name.value], f.selection_set)
            for f in selection.selections if isinstance(f, FieldNode)}


async def _log(db: asyncpg.Pool, args: dict[str, Any], node: FieldNode) -> dict[str, Any]:
    size = args.get("first") or EVENT_PAGE
    start = Position.decode(args["after"]) if args.get("after") else Position(0, 0)
    types = [_stored(t) for t in args["types"]] if args.get("types") else None
    everything = await db.fetch(
        "select * from order_events"
        " where ($1::text[] is null or event_type = any($1)) and ($2::uuid is null or order_id = $2)"
        "   and ($3::uuid is null or correlation_id = $3)"
        "   and ($4::timestamptz is null or occurred_at > $4)"
        "   and ($5::timestamptz is null or occurred_at < $5)"
        " order by log_xid, global_position",
        types, uuid.UUID(args["orderId"]) if args.get("orderId") else None,
        uuid.UUID(args["correlationId"]) if args.get("correlationId") else None,
        _time(args.get("occurredAfter")), _time(args.get("occurredBefore")))
    rows = [r for r in everything
            if (int(str(r["log_xid"])), r["global_position"]) > (start.xid, start.seq)]
    return await _page(db, rows[:size + 1], size, node, lambda r: r["event_type"], len(everything))


def _stored(constant: str) -> str:
    """ORDER_PLACED → OrderPlaced."""
    return "".join(word.capitalize() for word in constant.split("_"))


async def _timeline(db: asyncpg.Pool, order_id: uuid.UUID, args: dict[str, Any],
                    node: FieldNode) -> dict[str, Any]:
    size = args.get("first") or TIMELINE_PAGE
    key = {"OCCURRED_AT": "occurred_at", "RECORDED_AT": "recorded_at"}.get(args.get("orderBy") or "")
    rows = await db.fetch("select * from order_events where order_id = $1 order by stream_version", order_id)
    if args.get("types"):
        rows = [r for r in rows if r["event_type"] in {_stored(t) for t in args["types"]}]
    total = len(rows)
    if key:
        rows.sort(key=lambda r: (r[key], r["stream_version"]))
    if args.get("after"):
        after = decode_cursor(args["after"], "v", int)[0]
        mark = await db.fetchrow("select * from order_events where order_id = $1 and stream_version = $2",
                                 order_id, after)
        rows = [r for r in rows if ((r[key], r["stream_version"]) if key else r["stream_version"])
                > ((mark[key], mark["stream_version"]) if key else mark["stream_version"])]
    return await _page(db, rows[:size + 1], size, node, lambda r: r["event_type"], total)


async def _state(db: asyncpg.Pool, order_id: uuid.UUID, args: dict[str, Any],
                 node: FieldNode) -> dict[str, Any]:
    """The events up to `version` and/or `asOf`: how many, and the status the last of them
    stored when it was appended."""
    axis = "recorded_at" if args.get("axis") == "RECORDED" else "occurred_at"
    rows = await db.fetch(
        f"select stream_version, status from order_events where order_id = $1"
        f" and ($2::bigint is null or stream_version <= $2)"
        f" and ($3::timestamptz is null or {axis} <= $3) order by stream_version",
        order_id, args.get("version"), _time(args.get("asOf")))
    assert [r["stream_version"] for r in rows] == list(range(1, len(rows) + 1)), \
        "the oracle knows states of a stream's first events only"
    now = await db.fetchrow("select * from orders_current where order_id = $1", order_id)
    # the amounts of a state are known here only for the whole stream: the read model's
    state = {"version": len(rows), "status": rows[-1]["status"] if rows else None,
             "now": now if len(rows) == now["version"] else None}
    return await _select(db, "OrderState", state, node.selection_set)  # type: ignore[arg-type]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _plain(value: Any) -> Any:
    """A value as the API writes it."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _lines(lines: list[dict[str, Any]], node: FieldNode) -> list[dict[str, Any]]:
    """Item lines as the API shows them: a line's total is its quantity times its price."""
    shown = []
    for line in lines:
        full = {**line, "lineTotal": str(line["quantity"] * Decimal(line["unitPrice"]))} \
            if "unitPrice" in line else line
        shown.append({(f.alias.value if f.alias else f.name.value): full[f.name.value]
                      for f in node.selection_set.selections if isinstance(f, FieldNode)})
    return shown


def _scalar(owner: str, row: Row, name: str, node: FieldNode) -> Any:
    """A plain field: its column (named as the field), or for an event its data's key."""
    if name == "type":
        return re.sub(r"(?<!^)([A-Z])", r"_\1", row["event_type"]).upper()
    if name == "globalPosition":
        return Position(row["log_xid"], row["global_position"]).encode()
    if name == "actor":
        return None if not row["actor_type"] else {
            f.name.value: row[f"actor_{f.name.value}"] for f in node.selection_set.selections
            if isinstance(f, FieldNode)}
    column = _snake(name)
    if owner in ("Order", "Customer") or column in set(row.keys()):
        value = row[column]
    else:
        value = row["payload"].get(name)
    if name in ("items", "shippedItems"):
        return _lines(value or [], node)
    return _plain(value)
