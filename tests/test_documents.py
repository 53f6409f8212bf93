"""Trusted documents: known by their sha256 over HTTP (POST, GET) and WebSocket; trusted-only
mode refuses every other document with a code; `ordergraph documents check` for CI."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from gql.events import EventType
from gql.schema.documents import document_id
from tests.conftest import LiveServer, serving
from tests.factories import append, customer, payload_for, snapshot
from tests.ws import LEGACY, client, until_subscribed

ROOT = Path(__file__).resolve().parents[1]
ORDER = """query OrderById($id: UUID!) {
  order(id: $id) { id status customer { id } }
}
"""
EVENTS = """subscription Watch($orderId: UUID) {
  orderEvents(orderId: $orderId) { id type orderId }
}
"""
PLACE = """mutation Place($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id } }
}
"""
UNTRUSTED = "query Other($id: UUID!) { order(id: $id) { id } }"
GRAPHQL_RESPONSE = "application/graphql-response+json"


def _documents(directory: Path) -> dict[str, str]:
    """The app's documents written into `directory`; their ids by name."""
    (directory / "screens").mkdir(parents=True)
    written = {"order": (directory / "order.graphql", ORDER),
               "events": (directory / "screens" / "events.graphql", EVENTS)}
    for path, text in written.values():
        path.write_text(text)
    return {name: document_id(text) for name, (_, text) in written.items()}


@contextlib.asynccontextmanager
async def _server(database_url: str, directory: Path, **settings: Any) -> AsyncIterator[LiveServer]:
    async with serving(database_url, documents=str(directory), **settings) as server:
        yield server


async def _order(pool: asyncpg.Pool) -> uuid.UUID:
    order_id = uuid.uuid4()
    await append(pool, order_id, EventType.ORDER_PLACED,
                 payload_for(EventType.ORDER_PLACED, await customer(pool)))
    return order_id


async def _compiled_reads(http: httpx.AsyncClient) -> float:
    text = (await http.get("/metrics")).text
    line = next(line for line in text.splitlines() if line.startswith(
        'ordergraph_compiled_operations_total{operation="read",outcome="answered"}'))
    return float(line.split()[-1])


def _codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def test_documents_known_ones_are_served_by_id_over_post_and_get(
        database_url: str, pool: asyncpg.Pool, tmp_path: Path) -> None:
    ids = _documents(tmp_path)
    order_id = await _order(pool)
    variables = {"id": str(order_id)}
    async with _server(database_url, tmp_path, trusted_documents_only=True) as server, \
            httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        compiled = await _compiled_reads(http)
        by_id = await http.post("/graphql", json={"documentId": ids["order"], "variables": variables})
        # learnt at start: the very first request is answered by its compiled statement
        assert await _compiled_reads(http) == compiled + 1
        apollo = await http.post("/graphql", json={"variables": variables, "extensions": {
            "persistedQuery": {"version": 1, "sha256Hash": ids["order"]}}})
        by_get = await http.get("/graphql", params={"documentId": ids["order"],
                                                    "variables": json.dumps(variables)})
        as_text = await http.post("/graphql", json={"query": ORDER, "variables": variables})
        again = await http.post("/graphql", json={"documentId": ids["order"], "variables": variables})
    for response in (by_id, apollo, by_get, as_text, again):
        assert response.status_code == 200, response.text
        assert response.json() == {"data": {"order": {
            "id": str(order_id), "status": "PLACED", "customer": {"id": response.json()[
                "data"]["order"]["customer"]["id"]}}}}


async def test_documents_trusted_only_refuses_other_documents_over_http(
        database_url: str, pool: asyncpg.Pool, tmp_path: Path) -> None:
    _documents(tmp_path)
    order_id, customer_id = await _order(pool), await customer(pool)
    before = await snapshot(pool)
    place = {"query": PLACE, "variables": {"input": {"customerId": str(customer_id),
                                                     "currency": "EUR", "items": []}}}
    async with _server(database_url, tmp_path, trusted_documents_only=True) as server, \
            httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        read = await http.post("/graphql", json={"query": UNTRUSTED, "variables": {"id": str(order_id)}})
        spec = await http.post("/graphql", json={"query": UNTRUSTED, "variables": {"id": str(order_id)}},
                               headers={"Accept": GRAPHQL_RESPONSE})
        got = await http.get("/graphql", params={"query": "{ __typename }"})
        write = await http.post("/graphql", json=place)
    assert (read.status_code, _codes(read.json())) == (200, ["DOCUMENT_NOT_TRUSTED"])
    assert (spec.status_code, _codes(spec.json())) == (400, ["DOCUMENT_NOT_TRUSTED"])
    assert _codes(got.json()) == ["DOCUMENT_NOT_TRUSTED"]
    assert _codes(write.json()) == ["DOCUMENT_NOT_TRUSTED"] and "data" not in write.json()
    assert await snapshot(pool) == before  # the refused mutation appended nothing


async def test_documents_unknown_id_is_a_client_error(database_url: str, tmp_path: Path) -> None:
    _documents(tmp_path)
    unknown = document_id("query Gone { __typename }")
    async with _server(database_url, tmp_path) as server, \
            httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        posted = await http.post("/graphql", json={"documentId": unknown})
        spec = await http.post("/graphql", json={"documentId": unknown},
                               headers={"Accept": GRAPHQL_RESPONSE})
        got = await http.get("/graphql", params={"extensions": json.dumps(
            {"persistedQuery": {"version": 1, "sha256Hash": unknown}})})
        malformed = await http.post("/graphql", json={"documentId": 42})
    for response in (posted, got):
        assert (response.status_code, _codes(response.json())) == (200, ["PERSISTED_QUERY_NOT_FOUND"])
    assert (spec.status_code, _codes(spec.json())) == (400, ["PERSISTED_QUERY_NOT_FOUND"])
    assert (malformed.status_code, _codes(malformed.json())) == (400, ["BAD_REQUEST"])


async def test_documents_allowed_roles_may_send_their_own(database_url: str, tmp_path: Path) -> None:
    """Open mode makes everyone admin: with admin allowed, any document runs (GraphiQL)."""
    _documents(tmp_path)
    async with _server(database_url, tmp_path, trusted_documents_only=True,
                       trusted_documents_roles="admin") as server, \
            httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        response = await http.post("/graphql", json={"query": "{ __typename }"})
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_documents_trusted_only_over_websocket(
        database_url: str, pool: asyncpg.Pool, tmp_path: Path) -> None:
    ids = _documents(tmp_path)
    order_id = await _order(pool)
    async with _server(database_url, tmp_path, trusted_documents_only=True) as server, \
            client(server.ws_url) as ws:
        await ws.ws.send(json.dumps({"id": "text", "type": "subscribe", "payload": {
            "query": "subscription { orderEvents { id } }"}}))
        refused = await ws.message("text")
        await ws.ws.send(json.dumps({"id": "unknown", "type": "subscribe", "payload": {
            "documentId": "0" * 64}}))
        unknown = await ws.message("unknown")
        await ws.ws.send(json.dumps({"id": "known", "type": "subscribe", "payload": {
            "documentId": ids["events"], "variables": {"orderId": str(order_id)}}}))
        await until_subscribed(server.url, 1)
        await append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
                     payload_for(EventType.ITEM_ADDED_TO_ORDER))
        delivered = await ws.data("known")
    assert refused["type"] == "error" and _codes({"errors": refused["payload"]}) == ["DOCUMENT_NOT_TRUSTED"]
    assert unknown["type"] == "error"
    assert _codes({"errors": unknown["payload"]}) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert delivered["orderEvents"]["type"] == "ITEM_ADDED_TO_ORDER"
    assert delivered["orderEvents"]["orderId"] == str(order_id)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gql", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, **(env or {})})


def test_documents_check_fails_on_a_document_that_no_longer_validates(tmp_path: Path) -> None:
    ids = _documents(tmp_path)
    (tmp_path / "schema.graphql").write_text("type Query { hello: String }\n")  # no document
    (tmp_path / "node_modules" / "lib").mkdir(parents=True)  # a package's files are not the app's
    (tmp_path / "node_modules" / "lib" / "x.graphql").write_text("{ nothing }")
    passing = _cli("documents", "check", str(tmp_path))
    assert passing.returncode == 0, passing.stderr
    assert ids["order"] in passing.stdout and "2 document(s) valid" in passing.stdout
    (tmp_path / "stale.graphql").write_text("query Stale {\n  orders { nodes { id shippedBy } } }\n")
    failing = _cli("documents", "check", str(tmp_path))
    assert failing.returncode == 1
    problems = [line for line in failing.stdout.splitlines() if line.startswith(str(tmp_path / "stale"))]
    assert problems == [f"{tmp_path / 'stale.graphql'}:2:23: Cannot query field 'shippedBy' on type 'Order'."]
    assert failing.stderr.strip().startswith("ordergraph: error: 1 problem(s)")
    assert "Traceback" not in failing.stderr


def test_documents_serve_refuses_a_bad_directory_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken.graphql").write_text("query { order(id: 1 { id } }")
    done = _cli("serve", "--port", "0", env={"ORDERGRAPH_DOCUMENTS": str(tmp_path)})
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"ordergraph: error: ORDERGRAPH_DOCUMENTS: {tmp_path / 'broken.graphql'}:1:")


@pytest.mark.parametrize("settings", [{"trusted_documents_only": "1"}, {"trusted_documents_roles": "root"}])
def test_documents_settings_are_checked_at_start(settings: dict[str, str], tmp_path: Path) -> None:
    env = {f"ORDERGRAPH_{k.upper()}": v for k, v in settings.items()}
    if "trusted_documents_roles" in settings:
        _documents(tmp_path)
        env["ORDERGRAPH_DOCUMENTS"] = str(tmp_path)
    done = _cli("serve", "--port", "0", env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.strip()]) == 1, done.stderr


async def test_documents_trusted_only_over_legacy_graphql_ws(
        database_url: str, pool: asyncpg.Pool, tmp_path: Path) -> None:
    ids = _documents(tmp_path)
    order_id = await _order(pool)
    async with _server(database_url, tmp_path, trusted_documents_only=True) as server, \
            client(server.ws_url, LEGACY) as ws:
        await ws.ws.send(json.dumps({"id": "text", "type": "start", "payload": {
            "query": "subscription { orderEvents { id } }"}}))
        refused = await ws.message("text")
        await ws.ws.send(json.dumps({"id": "known", "type": "start", "payload": {
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": ids["events"]}},
            "variables": {"orderId": str(order_id)}}}))
        await until_subscribed(server.url, 1)
        await append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
                     payload_for(EventType.ITEM_ADDED_TO_ORDER))
        delivered = await ws.data("known")
    assert refused["type"] == "error"
    assert refused["payload"]["extensions"]["code"] == "DOCUMENT_NOT_TRUSTED"
    assert delivered["orderEvents"]["type"] == "ITEM_ADDED_TO_ORDER"
