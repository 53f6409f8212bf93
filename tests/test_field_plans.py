"""Every field and argument is rendered by its plan or declined: never answered without it."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
import strawberry
from graphql import (
    GraphQLEnumType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    build_schema,
    get_named_type,
)
from strawberry.schema.config import StrawberryConfig

from gql.config import Settings
from gql.http.app import create_app
from gql.identity import OPEN, Grants
from gql.schema import build_schema as build_ordergraph_schema
from gql.schema import plans
from gql.schema.compiled import FieldPlan, PlanError, Unsupported
from gql.schema.context import Info
from gql.schema.enums import OrderStatus
from gql.schema.fastpath import FastPath
from gql.schema.node import node_id
from gql.schema.pagination import Connection, encode_cursor
from gql.schema.plans import verify_plans
from gql.schema.queries import Query
from gql.schema.scalars import SCALARS, UUID, DateTime
from gql.schema.types import EVENT_CLASSES, Order, list_orders
from gql.seed import seed
from tests import oracle
from tests.equivalence import answer_both, compile_document

SETTINGS = Settings(database_url="")


@pytest.fixture
async def samples(pool: asyncpg.Pool) -> dict[str, Any]:
    """Argument values that select something in a small seeded database."""
    await seed(pool, orders=12, customers=3, seed=5)
    row = await pool.fetchrow(
        "select o.order_id, o.customer_id, o.last_event_at, e.event_id, e.correlation_id, e.event_type, "
        "e.log_xid, e.global_position from orders_current o join order_events e using (order_id) "
        "where o.version > 2 order by o.order_id, e.stream_version limit 1")
    from gql.events import Position

    # the middle of the data: a time filter there selects some rows, never all or none
    middle = await pool.fetchrow(
        "select (select placed_at from orders_current order by placed_at offset 6 limit 1) placed,"
        " (select occurred_at from order_events order by occurred_at"
        "  offset (select count(*) / 2 from order_events) limit 1) occurred")
    return {
        "placed": middle["placed"].isoformat(), "occurred": middle["occurred"].isoformat(),
        "order": str(row["order_id"]), "customer": str(row["customer_id"]),
        "event_type": row["event_type"],
        "event": str(row["event_id"]), "correlation": str(row["correlation_id"]),
        "orders_after": encode_cursor("o", row["last_event_at"], row["order_id"]),
        "log_after": Position(row["log_xid"], row["global_position"]).encode(),
        "timeline_after": encode_cursor("v", 1),
    }


def _literal(owner: str, field: str, arg: str, arg_type: Any, samples: dict[str, Any]) -> str:
    """A valid value for one argument, as GraphQL source."""
    named = get_named_type(arg_type)
    if arg == "after":
        kind = {"events": "log_after" if owner == "Query" else "timeline_after"}.get(
            field, "orders_after")
        return f'"{samples[kind]}"'
    if isinstance(named, GraphQLEnumType):
        value = list(named.values)[-1]
        return f"[{value}]" if _is_list(arg_type) else value
    by_name = {"id": samples.get(field, samples["order"]), "orderId": samples["order"],
               "customerId": samples["customer"], "correlationId": samples["correlation"]}
    if arg == "nodeId":
        return f'"{node_id("Order", uuid.UUID(samples["order"]))}"'
    if arg == "nodeIds":
        return '["%s", "%s", "%s"]' % (node_id("Order", uuid.UUID(samples["order"])),
                                       node_id("Customer", uuid.UUID(samples["customer"])),
                                       node_id(samples["event_type"], uuid.UUID(samples["event"])))
    if named.name == "UUID":
        return f'"{by_name[arg]}"'
    if named.name == "DateTime":
        return '"%s"' % {"placedAfter": samples["placed"], "placedBefore": samples["placed"],
                         "occurredAfter": samples["occurred"], "occurredBefore": samples["occurred"],
                         }.get(arg, "2030-01-01T00:00:00+00:00")
    if named.name == "Int":
        return "2"
    raise AssertionError(f"no sample for {owner}.{field}({arg})")


def _is_list(arg_type: Any) -> bool:
    while isinstance(arg_type, GraphQLNonNull):
        arg_type = arg_type.of_type
    return isinstance(arg_type, GraphQLList)


def _leaf(named: Any) -> str:
    """What a document selects of a field's value: real data the oracle can check."""
    if isinstance(named, GraphQLScalarType | GraphQLEnumType):
        return ""
    if named.name.endswith("Connection"):
        return "{ nodes { id } pageInfo { hasNextPage } totalCount }"
    if named.name.endswith("Edge"):
        return "{ cursor node { id } }"
    return {"OrderState": "{ version status }", "OrderItem": "{ sku quantity unitPrice lineTotal }",
            "OrderStatistics": "{ count byStatus { status count } "
                               "byCurrency { currency count totalAmount capturedAmount } }",
            "StatusCount": "{ status count }", "CurrencyTotals": "{ currency count totalAmount }",
            "Node": "{ nodeId }",
            "ShippedItem": "{ sku quantity }", "Actor": "{ type id }",
            "PageInfo": "{ hasNextPage }"}.get(named.name, "{ id }")


def _walk(schema: Any, samples: dict[str, Any]) -> list[tuple[str, str]]:
    """(what is covered, document) for every field and argument reachable from Query."""
    documents: list[tuple[str, str]] = []
    seen: set[str] = set()
    queue: list[tuple[Any, str, str]] = [(schema.query_type, "{ ", " }")]
    while queue:
        owner, opening, closing = queue.pop(0)
        if owner.name in seen:
            continue
        seen.add(owner.name)
        if isinstance(owner, GraphQLInterfaceType):
            for concrete in schema.get_implementations(owner).objects:
                queue.append((concrete, f"{opening}... on {concrete.name} {{ ", f" }}{closing}"))
        for name, field in owner.fields.items():
            named = get_named_type(field.type)
            required = {a: t for a, t in field.args.items() if isinstance(t.type, GraphQLNonNull)}

            def call(args: dict[str, Any], name: str = name, owner: Any = owner) -> str:
                if not args:
                    return name
                given = ", ".join(f"{a}: {_literal(owner.name, name, a, t.type, samples)}"
                                  for a, t in args.items())
                return f"{name}({given})"

            documents.append((f"{owner.name}.{name}", f"{opening}{call(required)} {_leaf(named)}{closing}"))
            for arg, definition in field.args.items():
                if arg not in required:
                    documents.append((f"{owner.name}.{name}({arg})", f"{opening}"
                                      f"{call({**required, arg: definition})} {_leaf(named)}{closing}"))
            if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
                queue.append((named, f"{opening}{call(required)} {{ ", f" }}{closing}"))
    return documents


def _is_edge(covered: str) -> bool:
    """Relay's edges and page cursors: opaque text the oracle does not write."""
    return covered.split(".")[0].endswith(("Edge", "PageInfo")) or covered.endswith(
        (".edges", ".pageInfo", "Connection.nodes"))


async def test_field_plans_cover_the_query_surface(pool: asyncpg.Pool,
                                                   samples: dict[str, Any]) -> None:
    """Each field and argument, one document each: the same JSON on both paths, or declined."""
    schema = build_ordergraph_schema(SETTINGS)
    compiled, declined = [], []
    for covered, document in _walk(schema._schema, samples):
        answers = await answer_both(schema, pool, SETTINGS, "query " + document)
        assert answers.comparable, (document, answers.resolvers)
        if answers.compiled is None:
            declined.append(f"{covered}: {answers.reason}")
            continue
        assert answers.compiled == answers.resolvers["data"], document
        if not _is_edge(covered):
            assert answers.compiled == await oracle.answer(pool, "query " + document), document
        compiled.append(covered)
    total = len(compiled) + len(declined)
    print(f"\ncompiled {len(compiled)} / {total} fields and arguments; declined: {declined}")
    assert not declined, declined


@strawberry.type(name="Query")
class ScratchQuery(Query):
    """Query with one more argument on `orders`, as a change to the schema would add it."""

    @strawberry.field
    async def orders(self, info: Info, first: int | None = 20,
                     only_paid: bool = False) -> Connection[Order]:
        return await list_orders(info, first=first, after=None,
                                 statuses=["PAID"] if only_paid else None)


async def test_a_new_argument_is_declined_not_ignored(pool: asyncpg.Pool,
                                                      samples: dict[str, Any]) -> None:
    """The trap: an argument the plans do not read must never be answered without it."""
    scratch = strawberry.Schema(query=ScratchQuery, types=list(EVENT_CLASSES.values()),
                                config=StrawberryConfig(auto_camel_case=True, scalar_map=SCALARS))
    for query in ("{ orders(first: 50, onlyPaid: true) { nodes { status } } }",
                  "{ orders(first: 50) { nodes { status } } }"):
        answers = await answer_both(scratch, pool, SETTINGS, query)
        assert answers.compiled is None, "compiled without the new argument"
        assert "arguments" in answers.reason
    paid = await answer_both(scratch, pool, SETTINGS,
                                       "{ orders(first: 50, onlyPaid: true) { nodes { status } } }")
    assert {n["status"] for n in paid.resolvers["data"]["orders"]["nodes"]} == {"PAID"}
    # the real schema compiles the same document
    real = await answer_both(build_ordergraph_schema(SETTINGS), pool, SETTINGS,
                             "{ orders(first: 50) { nodes { status } } }")
    assert real.compiled == real.resolvers["data"]


@strawberry.type(name="Query")
class CurrencyQuery(Query):
    """Query whose `orders` takes one more filter, as a change to the schema would add it."""

    @strawberry.field
    async def orders(self, info: Info, first: int | None = 20, after: str | None = None,
                     status: list[OrderStatus] | None = None, customer_id: UUID | None = None,
                     placed_after: DateTime | None = None, placed_before: DateTime | None = None,
                     currency: str | None = None) -> Connection[Order]:
        raise NotImplementedError


def _orders_plan_with(monkeypatch: pytest.MonkeyPatch, render: Any) -> Any:
    """The schema with `orders(currency:)`, and a plan for it that declares the argument."""
    original = plans._query

    def query(c: Any) -> Any:
        table = dict(original(c))
        declared = table["orders"]
        table["orders"] = FieldPlan(render(declared.render), declared.args | {"currency"})
        return table

    monkeypatch.setattr(plans, "_query", query)
    return strawberry.Schema(query=CurrencyQuery, types=list(EVENT_CLASSES.values()),
                             config=StrawberryConfig(auto_camel_case=True, scalar_map=SCALARS))._schema


def test_a_declared_argument_the_plan_never_reads_fails_the_schema(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The silent failure: a filter declared on the plan but forgotten in its SQL."""
    extended = _orders_plan_with(monkeypatch, lambda render: render)
    with pytest.raises(PlanError, match=r"Query\.orders never reads \['currency'\]"):
        verify_plans(extended, SETTINGS)


def test_a_plan_reading_an_argument_it_does_not_declare_fails_the_schema(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The typo: `a["curency"]` reads nothing, silently, unless reads are strict."""
    def misspelled(render: Any) -> Any:
        def render_with(nodes: Any, args: Any) -> str:
            args.param(lambda a: a["curency"], "text")
            return render(nodes, args)
        return render_with

    extended = _orders_plan_with(monkeypatch, misspelled)
    with pytest.raises(PlanError, match="curency"):
        verify_plans(extended, SETTINGS)


def test_a_new_field_is_declined() -> None:
    sdl = build_ordergraph_schema(SETTINGS).as_str()
    extended = build_schema(sdl.replace("type Customer {", "type Customer {\n  vip: Boolean!", 1))
    with pytest.raises(Unsupported, match=r"Customer\.vip"):
        compile_document(extended, '{ customer(id: "%s") { vip } }' % uuid.uuid4(), {}, SETTINGS)


async def test_introspection_is_declined_quietly_once(
    database_url: str, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(Settings(database_url=database_url), pool=pool)
    query = "{ __schema { queryType { name } } orders(first: 1) { nodes { id } } }"
    with caplog.at_level(logging.INFO):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://localhost") as client:
            answers = [await client.post("/graphql", json={"query": query}) for _ in range(3)]
    assert all(a.json()["data"]["__schema"]["queryType"]["name"] == "Query" for a in answers)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    fast = FastPath(build_ordergraph_schema(SETTINGS), SETTINGS)
    fast.remember(query, None)
    assert fast.compile(query, None, {}, mutations=False, grants=Grants({}, frozenset()),
                        identity=OPEN) is None
    assert fast.declined(query, None)  # decided once: later requests skip the compiler

