"""A small Relay app (tests/relay/src) compiles against schema.graphql with the npm
relay-compiler, configured for `nodeId`, and the documents it writes run on ordergraph: the
refetch through `node(nodeId:)`, the paginated board with counts, on both executors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gql.config import Settings
from gql.schema import build_schema
from gql.schema.node import node_id
from gql.seed import seed
from tests.equivalence import answer_both

RELAY = Path(__file__).parent / "relay"
COMPILER = RELAY / "node_modules" / ".bin" / "relay-compiler"
GENERATED = RELAY / "__generated__"


@pytest.fixture(scope="module")
def operations() -> dict[str, str]:
    """The text of each operation relay-compiler wrote, by name."""
    if not COMPILER.exists():
        pytest.fail("relay-compiler is missing: run `npm --prefix tests/relay ci`")
    shutil.rmtree(GENERATED, ignore_errors=True)
    GENERATED.mkdir()
    run = subprocess.run([str(COMPILER)], cwd=RELAY, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    texts = {}
    for artifact in GENERATED.glob("*.graphql.ts"):
        found = re.search(r'"text": (".*?(?<!\\)")', artifact.read_text(), re.DOTALL)
        if found:
            texts[artifact.name.removesuffix(".graphql.ts")] = json.loads(found[1])
    return texts


def test_relay_compiles_the_apps_documents(operations: dict[str, str]) -> None:
    assert {"BoardQuery", "BoardOrderCardRefetchQuery", "BoardColumnPaginationQuery",
            "BoardEventQuery", "BoardMovesSubscription"} <= set(operations)


async def test_relay_documents_run_on_both_executors(
        operations: dict[str, str], pool: asyncpg.Pool, settings: Settings) -> None:
    await seed(pool, orders=12, customers=3, seed=9)
    schema = build_schema(settings)

    async def run(name: str, **variables: Any) -> Any:
        answers = await answer_both(schema, pool, settings, operations[name], variables)
        assert answers.compiled == answers.resolvers["data"], (name, answers.reason)
        return answers.compiled

    board = await run("BoardQuery", status=["PAID", "SHIPPED"])
    edges = board["orders"]["edges"]
    assert edges and board["orders"]["totalCount"] == board["orderStatistics"]["count"]
    first = edges[0]["node"]
    assert first["nodeId"] == node_id("Order", first["id"])
    refetched = (await run("BoardOrderCardRefetchQuery", nodeId=first["nodeId"]))["node"]
    assert {k: refetched[k] for k in first} == first
    page = await run("BoardColumnPaginationQuery", count=2, status=["PAID", "SHIPPED"],
                     cursor=board["orders"]["pageInfo"]["endCursor"])
    assert page["orders"]["totalCount"] == board["orders"]["totalCount"]
    event = await pool.fetchrow("select event_id, event_type from order_events limit 1")
    through = await run("BoardEventQuery", nodeId=node_id(event["event_type"], event["event_id"]))
    assert through["node"]["nodeId"] == node_id(event["event_type"], event["event_id"])
