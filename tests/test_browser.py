"""The web app and the offline GraphiQL page, driven in headless Debian Chromium.

Each test records every request the page makes and fails on one that leaves the server: the
pages must work with the network cut to loopback. Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import BrowserContext, Page, Route, WebSocket, async_playwright, expect

from gql.events import EventType, OrderStatus, Position
from tests import factories
from tests.conftest import serving
from tests.test_access import AUDIENCE, ISSUER, Keys

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium; never a downloaded browser. Missing is a failure, not a skip."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser_context(chromium: Path) -> AsyncIterator[BrowserContext]:
    """One Chromium per run, with a fresh profile."""
    with tempfile.TemporaryDirectory(prefix="ordergraph-chromium-") as profile:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile,
                executable_path=str(chromium),
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1440, "height": 900},
            )
            context.set_default_timeout(TIMEOUT_MS)
            yield context
            await context.close()


class Browser:
    """A page on the live server that remembers every URL it requested."""

    def __init__(self, page: Page, origin: str) -> None:
        self.page = page
        self.origin = origin
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def foreign_requests(self) -> list[str]:
        local = (self.origin, self.origin.replace("http://", "ws://"), "data:", "blob:")
        return [url for url in self.requests if not url.startswith(local)]

    async def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        await self.page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


@contextlib.asynccontextmanager
async def opened(browser_context: BrowserContext, origin: str) -> AsyncIterator[Browser]:
    """A new page on the server at `origin`; on leaving, it must have stayed on that server
    and raised no uncaught error."""
    page = await browser_context.new_page()
    session = Browser(page, origin)
    yield session
    await page.close()
    assert session.foreign_requests() == [], "the page reached beyond the server"
    assert session.errors == [], "the page raised uncaught errors"


@pytest.fixture
async def browser(browser_context: BrowserContext, live_server: Any) -> AsyncIterator[Browser]:
    async with opened(browser_context, live_server.url) as session:
        yield session


async def graphql(url: str, query: str, **variables: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


ORDERS = "query { orders(first: 100) { nodes { id status version customer { id } } } }"
PLACE_ORDER = """mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id totalAmount } }
}"""
ADD_ITEM = """mutation($input: AddItemToOrderInput!) {
  addItemToOrder(input: $input) { order { totalAmount } }
}"""
AUTHORIZE = """mutation($input: AuthorizePaymentInput!) {
  authorizePayment(input: $input) { order { status } }
}"""


async def place_order(url: str, customer_id: str) -> dict[str, Any]:
    items = [{"sku": "BROWSER-TEST", "quantity": 2, "unitPrice": "12.50"}]
    data = await graphql(
        url, PLACE_ORDER, input={"customerId": customer_id, "currency": "EUR", "items": items}
    )
    return data["placeOrder"]["order"]


async def active_subscriptions(url: str) -> float:
    async with httpx.AsyncClient(base_url=url) as client:
        metrics = (await client.get("/metrics")).text
    found = re.search(r"^ordergraph_subscriptions (\S+)$", metrics, re.MULTILINE)
    assert found, "the server exports ordergraph_subscriptions"
    return float(found.group(1))


async def until_subscribed(page: Page, url: str, before: float, more: int = 1) -> None:
    """Waits until the server has registered `more` subscriptions: events appended from
    then on reach the page, so a test that appends next does not race the subscription."""
    for _ in range(100):
        if await active_subscriptions(url) >= before + more:
            return
        await page.wait_for_timeout(100)
    raise AssertionError("the page's subscription never reached the server")


class Sockets:
    """The page's WebSockets: those opened, those closed, and the subscribe frames sent."""

    def __init__(self, page: Page) -> None:
        self.opened: list[WebSocket] = []
        self.closed: list[WebSocket] = []
        self.subscribes: list[dict[str, Any]] = []
        page.on("websocket", self._watch)

    def _watch(self, ws: WebSocket) -> None:
        self.opened.append(ws)
        ws.on("close", lambda _: self.closed.append(ws))
        ws.on("framesent", lambda frame: self.subscribes.extend(
            [sent] if (sent := json.loads(frame)).get("type") == "subscribe" else []))


async def after_request(page: Page, document: str, action: Callable[[], Awaitable[None]]) -> None:
    """Runs `action` once the server answered the page's request for `document`, before the
    page sees the answer (then `page.unroute_all`)."""
    async def handle(route: Route) -> None:
        response = await route.fetch()
        if document in (route.request.post_data or ""):
            await action()
        await route.fulfill(response=response)

    await page.route("**/graphql", handle)


def result_window(page: Page) -> Any:
    return page.get_by_role("region", name="Result Window")


def card(page: Page, order_id: str, status: str | None = None) -> Any:
    scope = page.locator(f'.column[data-status="{status}"]') if status else page
    return scope.locator(f'.card[data-order-id="{order_id}"]')


async def test_graphiql_runs_a_query_without_leaving_the_server(browser: Browser, live_server: Any) -> None:
    page = browser.page
    await page.goto(f"{live_server.url}/graphql")
    await expect(page.locator(".graphiql-query-editor")).to_contain_text("query RecentOrders")
    await page.get_by_role("button", name="Execute query").click()
    response = result_window(page)
    await expect(response).to_contain_text('"data"')
    expected = (await graphql(live_server.url, "{ orders(first: 5) { nodes { id } } }"))["orders"]
    await expect(response).to_contain_text(expected["nodes"][0]["id"])
    await browser.screenshot("graphiql")
    assert any(url.endswith("/graphql") for url in browser.requests)


async def test_graphiql_sends_headers_in_the_websocket_connection_init(
    browser: Browser, live_server: Any
) -> None:
    page = browser.page
    # the page records what it sends itself: a `framesent` listener attached once Playwright
    # reports the socket can miss the first frame
    await page.add_init_script("""window.ogSent = [];
        const send = WebSocket.prototype.send;
        WebSocket.prototype.send = function (data) {
            window.ogSent.push(data);
            return send.call(this, data);
        };""")
    await page.goto(f"{live_server.url}/graphql")
    editor = page.locator(".graphiql-query-editor")
    await expect(editor).to_contain_text("query RecentOrders")  # the editor is ready
    await page.get_by_role("tab", name="StatusChanges").click()
    await expect(editor).to_contain_text("subscription StatusChanges")
    await page.get_by_role("button", name="Headers").click()
    await page.locator('[data-uri$="request-headers.json"]').click()
    await page.keyboard.insert_text('{"authorization": "Bearer browser-test"}')
    before = await active_subscriptions(live_server.url)
    await page.get_by_role("button", name="Execute query").click()
    await until_subscribed(page, live_server.url, before)
    sent = [json.loads(frame) for frame in await page.evaluate("window.ogSent")]
    init = [message for message in sent if message.get("type") == "connection_init"]
    assert [message.get("payload") for message in init] == [{"authorization": "Bearer browser-test"}]

    customer_id = (await graphql(live_server.url, ORDERS))["orders"]["nodes"][0]["customer"]["id"]
    order = await place_order(live_server.url, customer_id)
    await expect(result_window(page)).to_contain_text(order["id"])
    await browser.screenshot("graphiql-subscription")


async def test_board_shows_the_seeded_orders(browser: Browser, live_server: Any) -> None:
    orders = (await graphql(live_server.url, ORDERS))["orders"]["nodes"]
    assert orders, "the live server has seeded orders"
    page = browser.page
    await page.goto(live_server.url)
    await expect(page.locator(".card")).to_have_count(len(orders))
    for order in orders:
        await expect(card(page, order["id"], order["status"])).to_be_visible()
    await expect(page.locator(".link-state")).to_have_text("Live")
    await browser.screenshot("board")


async def test_board_shows_a_placed_order_and_its_moves_without_reload(
    browser: Browser, live_server: Any
) -> None:
    page = browser.page
    before = await active_subscriptions(live_server.url)
    await page.goto(live_server.url)
    await until_subscribed(page, live_server.url, before, more=2)  # status changes, item events
    await expect(page.locator(".link-state")).to_have_text("Live")
    await page.evaluate("window.__sameDocument = true")
    customer_id = (await graphql(live_server.url, ORDERS))["orders"]["nodes"][0]["customer"]["id"]

    order = await place_order(live_server.url, customer_id)
    await expect(card(page, order["id"], "PLACED")).to_be_visible()
    await expect(card(page, order["id"], "PLACED")).to_contain_text("€25.00")
    await expect(card(page, order["id"], "PLACED")).to_contain_text("2 items")

    # an item event changes the card's total in place: same column, no reload
    added = await graphql(live_server.url, ADD_ITEM, input={
        "orderId": order["id"], "sku": "BROWSER-EXTRA", "quantity": 1, "unitPrice": "4.50"})
    order["totalAmount"] = added["addItemToOrder"]["order"]["totalAmount"]
    await expect(card(page, order["id"], "PLACED")).to_contain_text("€29.50")
    await expect(card(page, order["id"], "PLACED")).to_contain_text("3 items")
    await expect(card(page, order["id"])).to_have_count(1)

    payment = {
        "orderId": order["id"],
        "amount": order["totalAmount"],
        "paymentProvider": "test",
        "authorizationId": f"auth-{order['id']}",
    }
    await graphql(live_server.url, AUTHORIZE, input=payment)
    await expect(card(page, order["id"], "PAYMENT_AUTHORIZED")).to_be_visible()
    await expect(card(page, order["id"])).to_have_count(1)
    assert await page.evaluate("window.__sameDocument") is True, "the board reloaded"
    await browser.screenshot("board-live")


async def test_board_counts_every_column_and_resumes_across_a_token_expiry_reconnect(
    browser_context: BrowserContext, database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """The board signed in with a token valid for 3 s: orders move between its load and its
    subscriptions, while the first socket lives, while no socket is open (after its 4403 close)
    and on the new socket. Every column then counts what the database holds and shows each
    moved order once, in its column: the subscriptions resumed from their last event."""
    keys = Keys(tmp_path / "jwks.json")
    customer = await factories.customer(pool)
    orders: list[Any] = []

    async def move() -> None:
        """A new order, or the next step of one: PLACED → PAYMENT_AUTHORIZED → PAID."""
        placed = [o for o in orders if o[1] < 3]
        if len(placed) < 3:
            order_id = uuid.uuid4()
            await factories.append(pool, order_id, EventType.ORDER_PLACED,
                                   factories.payload_for(EventType.ORDER_PLACED, customer))
            orders.append([order_id, 1])
            return
        step = placed[0]
        event_type = [EventType.PAYMENT_AUTHORIZED, EventType.PAYMENT_CAPTURED][step[1] - 1]
        await factories.append(pool, step[0], event_type, factories.payload_for(event_type))
        step[1] += 1

    await move()
    async with serving(database_url, jwks=str(keys.path), jwt_issuer=ISSUER,
                       jwt_audience=AUDIENCE, jwt_leeway=1.0) as server, \
            opened(browser_context, server.url) as browser:
        page = browser.page
        sockets = Sockets(page)
        # the first screen has read the board; the page subscribes only after this move
        await after_request(page, "query Board(", move)
        before = await active_subscriptions(server.url)
        short, fresh = keys.token(ttl=3, role="staff", sub="ann@shop"), keys.token(role="staff")
        await page.goto(f"{server.url}/?token={short}#/")
        await until_subscribed(page, server.url, before, more=2)
        await page.unroute_all(behavior="wait")
        await page.evaluate("token => sessionStorage.setItem('ordergraph.token', token)", fresh)
        async with asyncio.timeout(10):  # while the first socket lives, until its 4403 close
            while not sockets.closed:
                await move()
                await page.wait_for_timeout(300)
        for _ in range(3):  # while no socket is open
            await move()
        assert len(sockets.opened) == 1, "graphql-ws reconnected before the moves"
        await expect(page.locator(".link-state")).to_have_text("Live")
        for _ in range(3):  # on the new socket
            await move()

        counts = {r["status"]: r["count"] for r in await pool.fetch(
            "select status, count(*) from orders_current group by status")}
        for status in OrderStatus:
            await expect(page.locator(f'.column[data-status="{status.name}"] .column-count')
                         ).to_have_text(str(counts.get(status.name, 0)))
        for order_id, _ in orders:
            status = await pool.fetchval("select status from orders_current where order_id = $1",
                                         order_id)
            await expect(card(page, str(order_id), status)).to_be_visible()
            await expect(card(page, str(order_id))).to_have_count(1)
        assert len(sockets.opened) == 2
        # both resubscriptions continued from the last event the first socket delivered
        assert [s["payload"]["variables"]["after"] is not None for s in sockets.subscribes] == [True] * 4
        await browser.screenshot("board-resumed")


async def test_the_demo_moves_orders_through_every_status_on_the_board(
    browser_context: BrowserContext, database_url: str
) -> None:
    """`serve --demo`: within a minute, orders arrive and move into every column while the
    board is open, and a refund shows on a card."""
    from tests.conftest import seeded_server

    async with seeded_server(database_url, demo_rate=3.0) as server, \
            opened(browser_context, server.url) as browser:
        page = browser.page
        await page.goto(server.url)
        await expect(page.locator(".link-state")).to_have_text("Live")
        for status in OrderStatus:  # a card that arrived live in each column
            await expect(page.locator(f'.column[data-status="{status.name}"] .card-fresh').first
                         ).to_be_visible(timeout=60_000)
        await expect(page.locator(".card-meta", has_text="refunded").first).to_be_visible(
            timeout=60_000)
        await browser.screenshot("board-demo")


async def test_order_page_shows_the_timeline_and_the_slider_changes_the_state(
    browser: Browser, live_server: Any
) -> None:
    orders = (await graphql(live_server.url, ORDERS))["orders"]["nodes"]
    order = max(orders, key=lambda node: node["version"])
    assert order["version"] >= 3, "the seed has orders with a few events"
    first = (
        await graphql(
            live_server.url,
            "query($id: UUID!) { order(id: $id) { stateAt(version: 1) { status } } }",
            id=order["id"],
        )
    )["order"]["stateAt"]

    page = browser.page
    await page.goto(f"{live_server.url}/#/orders/{order['id']}")
    events = page.locator(".events > .event")
    await expect(events).to_have_count(order["version"])
    await expect(events.first).to_contain_text("Order placed")
    await expect(page.locator(".axes .axis-event")).to_have_count(order["version"])
    state = page.locator(".state")
    await expect(state).to_have_attribute("data-version", str(order["version"]))
    await expect(state.locator(".badge")).to_have_text(re.compile(order["status"].replace("_", " "), re.I))
    latest = await state.inner_text()
    await browser.screenshot("timeline")

    slider = page.get_by_role("slider", name="Stream version")
    await slider.focus()
    await page.keyboard.press("Home")
    await expect(state).to_have_attribute("data-version", "1")
    await expect(state.locator(".badge")).to_have_text(re.compile(first["status"].replace("_", " "), re.I))
    assert await state.inner_text() != latest
    await expect(events.nth(1)).to_have_class(re.compile(r"\bis-after\b"))
    assert page.url.endswith("?version=1")
    await browser.screenshot("timeline-version-1")


async def test_order_timeline_misses_nothing_across_a_token_expiry_reconnect(
    browser_context: BrowserContext, database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """The order page signed in with a token valid for 3 s: its socket is closed with 4403,
    graphql-ws reconnects with the fresh token put into session storage, and the timeline shows
    every event of the order once and in order: one appended between the page's load and its
    subscription, others while the first socket lives, while no socket is open, and after."""
    keys = Keys(tmp_path / "jwks.json")
    order_id = await factories.order_in(pool, OrderStatus.PLACED)

    async def add_item() -> None:
        await factories.append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
                               factories.payload_for(EventType.ITEM_ADDED_TO_ORDER))

    await add_item()
    async with serving(database_url, jwks=str(keys.path), jwt_issuer=ISSUER,
                       jwt_audience=AUDIENCE, jwt_leeway=1.0) as server, \
            opened(browser_context, server.url) as browser:
        page = browser.page
        sockets = Sockets(page)
        # the timeline's load has read the log; the page subscribes only after this append
        await after_request(page, "query Timeline", add_item)
        before = await active_subscriptions(server.url)
        expires = time.time() + 3
        short, fresh = keys.token(ttl=3, role="staff", sub="ann@shop"), keys.token(role="staff")
        await page.goto(f"{server.url}/?token={short}#/orders/{order_id}")
        await until_subscribed(page, server.url, before)
        await page.unroute_all(behavior="wait")  # lets a request in its handler finish
        await page.evaluate("token => sessionStorage.setItem('ordergraph.token', token)", fresh)

        async with asyncio.timeout(10):  # while the first socket lives, until its 4403 close
            while not sockets.closed:
                await add_item()
                await page.wait_for_timeout(300)
        assert expires <= time.time() <= expires + 1.0 + 1.0 + 1.0  # leeway + 1 s (+ scheduling)
        for _ in range(2):  # while no socket is open (graphql-ws waits over a second to retry)
            await add_item()
        assert len(sockets.opened) == 1, "graphql-ws reconnected before the appends"
        await expect(page.locator(".link-state")).to_have_text("Live")
        for _ in range(2):  # on the new socket
            await add_item()

        logged = [str(row["event_id"]) for row in await pool.fetch(
            "select event_id from order_events where order_id = $1 "
            "order by log_xid, global_position", order_id)]
        shown = page.locator(".events > .event")
        await expect(shown).to_have_count(len(logged))
        ids = await shown.evaluate_all("items => items.map((item) => item.id)")
        assert ids == [f"event-{event_id}" for event_id in logged]
        versions = await shown.evaluate_all("items => items.map((item) => item.dataset.version)")
        assert versions == [str(version) for version in range(1, len(logged) + 1)]
        assert len(sockets.opened) == 2 and len(sockets.subscribes) == 2
        # the resubscription continued from the last event the first socket delivered
        assert sockets.subscribes[1]["payload"]["variables"]["after"] is not None
        text = await page.locator(".timeline").inner_text()  # the cursor is not shown
        positions = [Position(row["log_xid"], row["global_position"]).encode()
                     for row in await pool.fetch("select log_xid, global_position from "
                                                 "order_events where order_id = $1", order_id)]
        assert "Global position" not in text and not [p for p in positions if p in text]
        await browser.screenshot("timeline-resumed")
