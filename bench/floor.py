"""The HTTP floor: the raw json statements behind the smallest ASGI app uvicorn can serve.

    OG_BENCH_DATABASE_URL=… OG_BENCH_POOL=10 python -m uvicorn bench.floor:app --port 8832

Run by bench/compare.py as the contender "bare HTTP": it takes our request bodies, runs the
raw limit's JSON statement for them (bench/workloads.py, RAW_JSON_SQL) through an asyncpg pool
and sends PostgreSQL's document back. No GraphQL, no validation, no routing: what any Python
server on this HTTP stack pays before doing anything, so ours / it shows what our GraphQL
layer costs and raw / it what the HTTP hop costs.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from bench.workloads import RAW_JSON_SQL
from gql.http.graphql import read_body
from gql.store.connection import create_pool

_state: dict[str, Any] = {}


def _statement(variables: dict[str, Any]) -> tuple[str, list[Any]]:
    if "id" in variables:
        return RAW_JSON_SQL["Q1"], [uuid.UUID(variables["id"])]
    if "status" in variables:
        return RAW_JSON_SQL["Q3"], [variables["status"]]
    if "first" in variables:
        return RAW_JSON_SQL["Q5"], []
    return RAW_JSON_SQL["Q2"], []


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                size = int(os.environ.get("OG_BENCH_POOL", "10"))
                _state["pool"] = await create_pool(os.environ["OG_BENCH_DATABASE_URL"],
                                                   min_size=size, max_size=size)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await _state["pool"].close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = await read_body(receive)
    if body is None:
        return
    sql, params = _statement(orjson.loads(body).get("variables") or {})
    document = (await _state["pool"].fetchval(sql, *params)).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(document)).encode())]})
    await send({"type": "http.response.body", "body": document})
