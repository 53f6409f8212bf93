"""Generated queries (hypothesis-graphql, from the SDL) give the same JSON on both executors.

A fixed seed in CI; ORDERGRAPH_GENERATED_EXAMPLES=10000 runs more on demand.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from typing import Any

import asyncpg
import pytest
from graphql import print_ast
from hypothesis import HealthCheck, given, settings, strategies
from hypothesis_graphql import nodes, queries

from gql.config import Settings
from gql.schema import build_schema
from gql.schema.node import node_id
from gql.seed import seed
from tests.equivalence import answer_both

EXAMPLES = int(os.environ.get("ORDERGRAPH_GENERATED_EXAMPLES", "1000"))
SETTINGS = Settings(database_url="")


def generate(sdl: str, ids: list[str], count: int) -> list[str]:
    """`count` valid query documents, the same ones on every run (derandomized)."""
    documents: list[str] = []
    scalars = {
        "UUID": strategies.sampled_from(ids).map(nodes.String),
        "DateTime": strategies.sampled_from(["2026-01-01T00:00:00Z", "2026-06-30T12:00:00+02:00",
                                             "2030-01-01T00:00:00Z"]).map(nodes.String),
        "Decimal": strategies.just("1.00").map(nodes.String),
        "JSON": strategies.just(nodes.Null),
        # Relay's ids, of the objects behind the ids above
        "ID": strategies.sampled_from([node_id(kind, uuid.UUID(id)) for id in ids
                                       for kind in ("Order", "Customer")]).map(nodes.String),
    }

    @settings(max_examples=count, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(queries(sdl, custom_scalars=scalars, print_ast=print_ast, allow_null=False))
    def collect(document: str) -> None:
        documents.append(document)

    collect()
    return documents


@pytest.fixture
async def ids(pool: asyncpg.Pool) -> list[str]:
    await seed(pool, orders=10, customers=3, seed=7)
    rows = await pool.fetch(
        "(select order_id::text as id from orders_current order by order_id limit 3) union all "
        "(select customer_id::text from customers order by customer_id limit 2) union all "
        "(select event_id::text from order_events order by event_id limit 3)")
    return [row["id"] for row in rows]


@pytest.mark.slow
async def test_generated_queries_answer_alike(pool: asyncpg.Pool, ids: list[str]) -> None:
    schema = build_schema(SETTINGS)
    documents = generate(schema.as_str(), ids, EXAMPLES)
    assert len(documents) >= EXAMPLES
    outcome: Counter[str] = Counter()
    for document in documents:
        answers = await answer_both(schema, pool, SETTINGS, document)
        if not answers.comparable:
            outcome["refused by the resolvers"] += 1
        elif answers.compiled is None and answers.lasting:
            outcome[f"declined: {answers.reason}"] += 1
        elif answers.compiled is None:  # e.g. first: -1 under an order that does not exist
            outcome["left to the resolvers for these values"] += 1
        else:
            assert answers.compiled == answers.resolvers["data"], document
            outcome["compiled, same JSON"] += 1
    print(f"\n{len(documents)} generated documents: {dict(outcome)}")
    assert outcome["compiled, same JSON"] >= len(documents) // 2, outcome
    declined: dict[str, Any] = {k: v for k, v in outcome.items() if k.startswith("declined")}
    assert not declined, declined
