"""A team's own event type and read-model field, declared and nothing else: run as a script
(its own process, so that everything is derived from the extended catalogue) by
tests/test_declaration.py. Prints one JSON object of what each surface showed.

    python -m tests.declared_type DATABASE_URL
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from typing import Any

# The declaration: the only thing a team writes (gql/catalogue.py would hold it).
import gql.catalogue as catalogue
from gql.declaration import EventDeclaration, Grant, ReadModelField, Rule, text

GIFT_WRAPPED = EventDeclaration(
    "GiftWrapped", "wrapAsGift", "The order was wrapped as a gift.",
    data=(text("paper", "The wrapping paper."), text("note", "A card to go with it.",
                                                      required=False)),
    from_statuses=("PAID",),
    rules=(Rule("d.paper <> 'newspaper'", "paper", "'we do not wrap in newspaper'"),),
    evolve={"gift_paper": "d.paper"},
    grants=(Grant("service", "fulfilment"),),
)
catalogue.CATALOGUE = catalogue.Catalogue(
    catalogue.STATUSES,
    (*catalogue.READ_MODEL, ReadModelField("gift_paper", "text", "giftPaper",
                                           description="The paper it was wrapped in.")),
    (*catalogue.EVENTS, GIFT_WRAPPED))

# Everything below is the product and its tests' helpers, unchanged.
import httpx  # noqa: E402

from gql.config import Settings  # noqa: E402
from gql.events import ORIGIN, EventType, OrderStatus  # noqa: E402
from gql.schema import build_schema, sdl  # noqa: E402
from gql.store.connection import connect, create_pool  # noqa: E402
from gql.store.migrations import migrate  # noqa: E402
from gql.transfer import export_to  # noqa: E402
from tests.conftest import serving  # noqa: E402
from tests.equivalence import answer_both  # noqa: E402
from tests.factories import order_in  # noqa: E402
from tests.ws import client, subscriptions_gauge, until_subscribed  # noqa: E402

WRAP = """mutation($input: WrapAsGiftInput!) { wrapAsGift(input: $input) {
  event { type ... on GiftWrapped { paper note } } order { status giftPaper } } }"""
READ = """query($id: UUID!) { order(id: $id) { giftPaper stateAt { status }
  events(types: [GIFT_WRAPPED]) { nodes { type ... on GiftWrapped { paper note } } } } }"""
LIVE = """subscription($id: UUID!) { orderEvents(orderId: $id, types: [GIFT_WRAPPED]) {
  type ... on GiftWrapped { paper note } order { giftPaper } } }"""


async def main(url: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    conn = await connect(url)
    await migrate(conn)
    await conn.close()
    schema_text = sdl()
    seen["sdl"] = all(part in schema_text for part in (
        "type GiftWrapped implements OrderEvent", "wrapAsGift(input: WrapAsGiftInput!)",
        "GIFT_WRAPPED", "giftPaper: String"))
    pool = await create_pool(url, min_size=1, max_size=4)
    seen["grants"] = [tuple(r) for r in await pool.fetch(
        "select role, scope from append_grants where event_type = 'GiftWrapped' order by 1, 2")]
    order_id = await order_in(pool, OrderStatus.PAID)
    async with serving(url) as server:
        baseline = await subscriptions_gauge(server.url)
        async with client(server.ws_url) as ws, httpx.AsyncClient(base_url=server.url) as http:
            await ws.subscribe(LIVE, id=str(order_id))
            await until_subscribed(server.url, baseline + 1)
            refused = (await http.post("/graphql", json={"query": WRAP, "variables": {"input": {
                "orderId": str(order_id), "paper": "newspaper"}}})).json()
            seen["refused"] = refused["errors"][0]["extensions"]
            wrapped = (await http.post("/graphql", json={"query": WRAP, "variables": {"input": {
                "orderId": str(order_id), "paper": "gold", "note": "happy birthday"}}})).json()
            seen["mutation"] = wrapped["data"]["wrapAsGift"]
            seen["subscription"] = (await ws.data())["orderEvents"]
    answers = await answer_both(build_schema(), pool, Settings(database_url=url), READ,
                                {"id": str(order_id)})
    seen["compiled"] = answers.compiled
    seen["resolvers"] = answers.resolvers["data"]
    out = io.BytesIO()
    async with pool.acquire() as export:
        await export_to(export, out, after=ORIGIN, types=[EventType.GIFT_WRAPPED.value])
    seen["export"] = [json.loads(line)["payload"] for line in out.getvalue().splitlines()]
    seen["rebuilt_equal"] = await pool.fetchval(
        "select count(*) = 0 from (select * from orders_current except "
        "select (og_fold(e order by e.stream_version)).* from order_events e group by e.order_id) d")
    await pool.close()
    return seen


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1])), default=str))
