"""Generated hostile traffic: thousands of generated queries and mutations, valid and not, with
generated variables, against a seeded database over real HTTP. No answer may be a 5xx or an
INTERNAL_SERVER_ERROR, and the log may only grow by the appends that were reported done."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import hypothesis_graphql
import hypothesis_graphql.nodes as nodes
import pytest
from graphql import is_non_null_type
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from gql.schema import build_schema, sdl
from gql.schema.mutations import APPEND_MUTATIONS
from tests.conftest import LiveServer

# hypothesis-graphql's strategies carry the whole schema; their repr is long, and never shown
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

# operations per run (fixed seed: the same ones every run): documents of known shape with
# generated variables, and documents hypothesis-graphql writes from the schema (valid and not,
# slower to generate)
WITH_VARIABLES, WRITTEN = 1550, 500
CONCURRENCY = 4
EDGE_TEXT = ["", " ", "\x00", "a\x00b", "ZZZ", "EUR", "JPY", "eur", "1e999", "1e2", " 1.00", "12.345",
             "-1", "0", "12.50", "123456789012345678901234567", "NaN", "Infinity",
             "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z",
             "2026-01-01T00:00:00", "2026-01-01T00:00:00+00:00", "ffffffffffffffff-ffffffffffffffff",
             "0000000000000000-0000000000000000", "bnw", "x" * 300, "💥", "' or 1=1 --"]
TEMPLATES = [
    """query($first: Int, $after: String, $status: [OrderStatus!], $customerId: UUID,
             $placedAfter: DateTime, $placedBefore: DateTime) {
      orders(first: $first, after: $after, status: $status, customerId: $customerId,
             placedAfter: $placedAfter, placedBefore: $placedBefore) {
        nodes { id status totalAmount events(first: $first) { nodes { id type } } }
        pageInfo { endCursor } } }""",
    """query($first: Int, $after: String, $types: [EventType!], $orderId: UUID,
             $occurredAfter: DateTime, $occurredBefore: DateTime) {
      events(first: $first, after: $after, types: $types, orderId: $orderId,
             occurredAfter: $occurredAfter, occurredBefore: $occurredBefore) {
        nodes { id globalPosition occurredAt } pageInfo { endCursor } } }""",
    """query($id: UUID!, $asOf: DateTime, $version: Int, $after: String, $first: Int) {
      order(id: $id) { stateAt(asOf: $asOf, version: $version) { status totalAmount }
        events(first: $first, after: $after) { edges { cursor node { id } } } } }""",
    """query($id: UUID!) { customer(id: $id) { name orders { nodes { id } } } event(id: $id) { id } }""",
    "mutation($input: RegisterCustomerInput!) { registerCustomer(input: $input) { id } }",
]
MUTATIONS = {name: f"""mutation($input: {name[0].upper() + name[1:]}Input!) {{
  {name}(input: $input) {{ deduplicated event {{ id }} order {{ id version }} }} }}"""
             for name in APPEND_MUTATIONS}
INPUT_KEYS = ["orderId", "customerId", "currency", "items", "sku", "quantity", "unitPrice",
              "amount", "paymentProvider", "authorizationId", "reason", "carrier",
              "trackingNumber", "shippedItems", "eventId", "expectedVersion", "occurredAt",
              "correlationId", "causationId", "actor", "name", "email"]
VARIABLE_KEYS = ["first", "after", "status", "types", "customerId", "orderId", "id", "asOf",
                 "version", "placedAfter", "placedBefore", "occurredAfter", "occurredBefore"]
FAILURE = re.compile(r"INTERNAL_SERVER_ERROR|Traceback|asyncpg")


Case = tuple[str, dict[str, Any] | None]


def _strategies(orders: list[str], customers: list[str],
                ) -> tuple[st.SearchStrategy[Case], st.SearchStrategy[Case]]:
    some_id = st.sampled_from(orders + customers) | st.uuids().map(str)
    scalar = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.integers(-3, 120)
              | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
              | st.sampled_from(EDGE_TEXT) | some_id)
    value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(st.sampled_from(INPUT_KEYS), inner, max_size=3), max_leaves=6)
    good = {"orderId": st.sampled_from(orders), "customerId": st.sampled_from(customers),
            "eventId": some_id,
            "currency": st.sampled_from(["EUR", "USD", "JPY", "KWD", "ZZZ"]),
            "sku": st.sampled_from(["MUG", "TEA", "MUG-STONEWARE"]), "quantity": st.integers(-1, 5),
            "unitPrice": st.sampled_from(["12.50", "0", "1.5", "8.90", "12.345"]),
            "paymentProvider": st.just("stripe"), "authorizationId": st.uuids().map(str),
            "carrier": st.just("DHL"), "trackingNumber": st.just("T-1"),
            "correlationId": st.uuids().map(str), "causationId": st.uuids().map(str),
            "expectedVersion": st.none() | st.integers(0, 4),
            "occurredAt": st.datetimes(min_value=datetime(2020, 1, 1)).map(lambda d: f"{d.isoformat()}Z"),
            "actor": st.just({"type": "user", "id": "u-1"}),
            "shippedItems": st.lists(st.fixed_dictionaries({"sku": st.sampled_from(["MUG", "TEA"]),
                                                            "quantity": st.integers(0, 2)}), max_size=2),
            "amount": st.sampled_from(["25.00", "14.00", "0"]), "reason": st.just("changed mind"),
            "items": st.lists(st.fixed_dictionaries({"sku": st.sampled_from(["MUG", "TEA"]),
                                                     "quantity": st.integers(0, 3),
                                                     "unitPrice": st.sampled_from(["1.00", "2.5"])}),
                              max_size=2),
            "name": st.just("Fuzz"), "email": st.uuids().map(lambda u: f"{u.hex[:10]}@example.com")}
    def field(name: str) -> st.SearchStrategy[Any]:  # mostly plausible, sometimes anything
        if name not in good:
            return value
        plausible = good[name]
        return st.integers(0, 24).flatmap(lambda n: value if n == 12 else plausible)

    def mutation(name: str) -> st.SearchStrategy[Case]:
        fields = build_schema()._schema.get_type(f"{name[0].upper() + name[1:]}Input").fields
        required = {k: field(k) for k, f in fields.items() if is_non_null_type(f.type)}
        optional = {k: field(k) for k, f in fields.items() if k not in required}
        extra = st.fixed_dictionaries({}, optional={k: value for k in INPUT_KEYS if k not in fields})
        plausible = st.fixed_dictionaries(required, optional=optional)
        inputs = st.one_of(plausible, plausible, plausible,
                           st.builds(lambda a, b: {**a, **b}, plausible, extra))
        return st.tuples(st.just(MUTATIONS[name]), inputs.map(lambda i: {"input": i}))

    arguments = st.fixed_dictionaries({}, optional={k: value for k in VARIABLE_KEYS})
    with_variables = st.one_of(
        st.tuples(st.sampled_from(TEMPLATES), arguments | st.none()),
        st.one_of(*(mutation(name) for name in MUTATIONS)))
    text = st.sampled_from(EDGE_TEXT).map(nodes.String)
    scalars = {"UUID": some_id.map(nodes.String) | text,
               "DateTime": st.datetimes().map(lambda d: nodes.String(d.isoformat() + "Z")) | text,
               "Decimal": st.decimals(allow_nan=False, allow_infinity=False).map(nodes.String) | text,
               "JSON": text}
    generated = st.one_of(*(hypothesis_graphql.from_schema(sdl(), custom_scalars=scalars, mode=mode)
                            for mode in (hypothesis_graphql.Mode.POSITIVE, hypothesis_graphql.Mode.NEGATIVE)))
    return with_variables, generated.map(lambda query: (str(query), None))


def generate(orders: list[str], customers: list[str]) -> list[Case]:
    """The (document, variables) pairs of a run, the same ones every run."""
    found: list[Case] = []
    for strategy, count in zip(_strategies(orders, customers), (WITH_VARIABLES, WRITTEN), strict=True):

        @seed(20261201)
        @settings(max_examples=count, database=None, phases=[Phase.generate], deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(strategy)
        def collect(case: Case) -> None:
            found.append(case)

        collect()
    return found


async def _metric(http: httpx.AsyncClient, outcome: str) -> float:
    text = (await http.get("/metrics")).text
    return sum(float(m[1]) for m in re.finditer(
        r'^ordergraph_appends_total\{[^}]*outcome="%s"[^}]*\} ([0-9.e+]+)$' % outcome, text, re.M))


async def test_generated_hostile_traffic(live_server: LiveServer) -> None:
    db = await asyncpg.connect(live_server.database_url)
    orders = [str(r[0]) for r in await db.fetch("select order_id from orders_current")]
    customers = [str(r[0]) for r in await db.fetch("select customer_id from customers")]
    log_before = await db.fetch("select event_id, md5(e::text) from order_events e")
    cases = await asyncio.to_thread(generate, orders, customers)
    assert len(cases) >= 2000
    done = 0  # append fields answered with a result (appended or deduplicated)
    failures: list[str] = []
    gate = asyncio.Semaphore(CONCURRENCY)
    outcomes: Counter[tuple[Any, ...]] = Counter()

    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        appended_before = await _metric(http, "appended")

        async def send(query: str, variables: dict[str, Any] | None) -> None:
            nonlocal done
            async with gate:
                response = await http.post("/graphql", json={"query": query, "variables": variables})
            if response.status_code >= 500 or FAILURE.search(response.text):
                failures.append(f"{response.status_code} {response.text[:300]} for {query[:300]!r} "
                                f"{str(variables)[:200]}")
                return
            body = response.json()
            outcomes[response.status_code, *sorted({(e.get("extensions") or {}).get("code")
                                                     for e in body.get("errors", [])})] += 1
            assert all("code" in (e.get("extensions") or {}) for e in body.get("errors", [])), body
            data = body.get("data") or {}
            done += sum(1 for v in data.values() if isinstance(v, dict) and "deduplicated" in v)

        await asyncio.gather(*(send(q, v) for q, v in cases))
        appended = await _metric(http, "appended") - appended_before

    print(f"{len(cases)} operations, {appended:.0f} appended;", outcomes.most_common())  # with -s
    assert not failures, f"{len(failures)} failures, e.g. {failures[:3]}"
    log_after = await db.fetch("select event_id, md5(e::text) from order_events e")
    await db.close()
    assert set(log_before) <= set(log_after)  # nothing recorded changed or went away
    assert len(log_after) - len(log_before) == appended  # only reported appends were recorded
