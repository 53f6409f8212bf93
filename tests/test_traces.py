"""OpenTelemetry traces, end to end on a real server: the spans of a compiled read, a
resolver read, a mutation and a subscription delivery, and their parents; a caller's
`traceparent` continued; the trace id kept with each appended event (GraphQL `traceId` and
the row); a relay's span in the appending request's trace, and the traceparent it sends on;
and, with tracing off, no span, nothing stored, and a server that still answers.

The spans are captured in-process: the test installs an SDK provider with an in-memory
exporter (gql.traces.install) before the server (a uvicorn thread of this process) starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
import structlog
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gql import traces
from gql.config import Settings
from gql.errors import ConfigurationError
from gql.events import Position
from gql.logs import configure_logging
from gql.outbound import jetstream
from gql.outbound.consumer import ConsumerRunner, OutEvent
from gql.outbound.webhooks import Retry, WebhookSink
from gql.store.connection import APP_ROLE, as_role, create_pool
from tests.conftest import LiveServer, seeded_server
from tests.graphql import data
from tests.test_logs import _restore
from tests.test_relay_webhooks import SECRET, Receiver
from tests.ws import STATUS_CHANGED, client, eventually, until_subscribed

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
RECENT = "query Recent { orders(first: 2) { nodes { id status } } }"
PLACE = """mutation Place($input: PlaceOrderInput!) {
  placeOrder(input: $input) { event { id traceId } order { id } } }"""


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traces.install(provider)
    try:
        yield exporter
    finally:
        traces.uninstall()


@contextlib.asynccontextmanager
async def server(database_url: str) -> AsyncIterator[tuple[LiveServer, httpx.AsyncClient, str]]:
    async with (seeded_server(database_url) as live,
                httpx.AsyncClient(base_url=live.url, timeout=15) as http):
        customer_id = (await data(http, "{ orders(first: 1) { nodes { customer { id } } } }")
                       )["orders"]["nodes"][0]["customer"]["id"]
        yield live, http, customer_id


def hex_trace(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.trace_id:032x}"


def requests(exporter: InMemorySpanExporter, operation: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans()
            if s.kind == SpanKind.SERVER and (s.attributes or {}).get("graphql.operation.name") == operation]


def children(exporter: InMemorySpanExporter, parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in exporter.get_finished_spans()
            if s.parent is not None and s.parent.span_id == parent.context.span_id]


async def settle(exporter: InMemorySpanExporter, check: Callable[[], bool]) -> None:
    """SQL spans are reported just after their statement: wait until `check()` holds."""
    async def holds() -> bool:
        return check()

    await eventually(holds, within=5.0)


async def test_reads_have_request_and_sql_spans_and_continue_the_callers_trace(
        database_url: str, spans: InMemorySpanExporter) -> None:
    async with server(database_url) as (_, http, _):
        first = await http.post("/graphql", json={"query": RECENT},
                                headers={"traceparent": TRACEPARENT})
        second = await http.post("/graphql", json={"query": RECENT})  # compiled by now
        assert first.status_code == second.status_code == 200
        assert first.json() == second.json()
        await settle(spans, lambda: len(requests(spans, "Recent")) == 2 and all(
            children(spans, s) for s in requests(spans, "Recent")))
    resolved, compiled = sorted(requests(spans, "Recent"), key=lambda s: s.start_time or 0)
    for span in (resolved, compiled):
        assert span.name == "POST /graphql"
        assert span.attributes is not None
        assert span.attributes["http.response.status_code"] == 200
        assert span.attributes["graphql.operation.type"] == "query"
        assert span.attributes["http.route"] == "/graphql"
        sql = children(spans, span)
        assert sql and all(s.name.startswith("sql ") and s.kind == SpanKind.CLIENT for s in sql)
        assert all(hex_trace(s) == hex_trace(span) for s in sql)
    assert resolved.attributes is not None and compiled.attributes is not None
    assert resolved.attributes["graphql.executor"] == "resolvers"
    assert compiled.attributes["graphql.executor"] == "compiled"
    # the resolvers' statements are the store's named queries; the compiled one is one statement
    assert {s.name for s in children(spans, resolved)} >= {"sql LIST_ORDERS"}
    assert [s.name for s in children(spans, compiled)] == ["sql compiled"]
    # the caller's trace, continued: same trace id, the caller's span as parent
    assert hex_trace(resolved) == CALLER_TRACE
    assert resolved.parent is not None and f"{resolved.parent.span_id:016x}" == CALLER_SPAN
    assert hex_trace(compiled) != CALLER_TRACE  # no traceparent: a trace of its own


async def test_appends_keep_their_trace_and_deliveries_continue_it(
        database_url: str, spans: InMemorySpanExporter) -> None:
    upgrade_trace = uuid.uuid4().hex
    async with server(database_url) as (live, http, customer_id):
        async with client(live.ws_url, headers={"traceparent": f"00-{upgrade_trace}-{CALLER_SPAN}-01"}
                          ) as ws:
            await ws.subscribe(STATUS_CHANGED)
            await until_subscribed(live.url, 1)
            placed = []
            for _ in range(2):  # the resolvers, then the compiled append
                placed.append((await data(http, PLACE, input={
                    "customerId": customer_id, "currency": "EUR", "items": []}))["placeOrder"])
                change = (await ws.data())["orderStatusChanged"]
                assert change["order"]["id"] == placed[-1]["order"]["id"]
        # the field reads the stored column on both executors: the resolvers, then compiled
        for _ in range(2):
            read = await data(http, "query Ev($id: UUID!) { event(id: $id) { id traceId } }",
                              id=placed[0]["event"]["id"])
            assert read["event"] == placed[0]["event"]
        pool = await create_pool(database_url, min_size=1, max_size=1)
        try:
            stored = {str(r["event_id"]): r["trace_parent"] for r in await pool.fetch(
                "select event_id, trace_parent from order_events where event_id = any($1::uuid[])",
                [p["event"]["id"] for p in placed])}
        finally:
            await pool.close()
        await settle(spans, lambda: len([s for s in spans.get_finished_spans()
                                         if s.name == "live deliver"]) >= 2)
    appends = sorted(requests(spans, "Place"), key=lambda s: s.start_time or 0)
    assert [(s.attributes or {}).get("graphql.executor") for s in appends] == ["resolvers", "compiled"]
    assert all((s.attributes or {}).get("graphql.operation.type") == "mutation" for s in appends)
    for request, event in zip(appends, placed, strict=True):
        assert request.context is not None
        # the event's traceId is its appending request's trace; the row keeps the traceparent
        assert event["event"]["traceId"] == hex_trace(request)
        kept = stored[event["event"]["id"]]
        assert kept[:-3] == f"00-{hex_trace(request)}-{request.context.span_id:016x}"
        assert int(kept[-2:], 16) & 1  # sampled
        assert any(s.name == "sql APPEND" or s.name == "sql compiled" for s in children(spans, request))
        # the delivery to the subscriber continues the appending request's trace, linked to
        # the subscription's span (whose trace the WebSocket's upgrade request named)
        delivered = [s for s in spans.get_finished_spans() if s.name == "live deliver"
                     and (s.attributes or {}).get("ordergraph.event.id") == event["event"]["id"]]
        assert len(delivered) == 1
        assert hex_trace(delivered[0]) == hex_trace(request)
        assert delivered[0].parent is not None and delivered[0].parent.span_id == request.context.span_id
        assert [f"{link.context.trace_id:032x}" for link in delivered[0].links] == [upgrade_trace]
    # the hub's reads of the log, each with its statement inside
    reads = [s for s in spans.get_finished_spans() if s.name == "live read_log"]
    assert reads and any("sql READ_LOG" in {c.name for c in children(spans, r)} for r in reads)
    sockets = [s for s in spans.get_finished_spans() if s.name == "WS /graphql"]
    assert [hex_trace(s) for s in sockets] == [upgrade_trace]
    assert [(s.attributes or {}).get("graphql.executor") for s in requests(spans, "Ev")] == [
        "resolvers", "compiled"]


async def test_a_relay_continues_the_appending_trace_and_sends_traceparent_on(
        database_url: str, spans: InMemorySpanExporter) -> None:
    receiver = Receiver()
    listening = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    receiver.url = f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}/hooks"
    async with listening, server(database_url) as (_, http, customer_id):
        placed = (await data(http, PLACE, input={
            "customerId": customer_id, "currency": "EUR", "items": []}))["placeOrder"]
        runner = ConsumerRunner(as_role(database_url, APP_ROLE), "traced",
                                WebhookSink(receiver.url, SECRET, retry=Retry(attempts=2, first=0.01)),
                                types=["OrderPlaced"], poll_interval=0.1)
        task = asyncio.create_task(runner.run())
        try:
            async def delivered() -> bool:
                return any(c[0] == placed["event"]["id"] for c in receiver.confirmed)

            await eventually(delivered)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    request = requests(spans, "Place")[0]
    posted = [s for s in spans.get_finished_spans() if s.name == "webhook POST"
              and (s.attributes or {}).get("messaging.message.id") == placed["event"]["id"]]
    assert len(posted) == 1 and posted[0].context is not None
    assert hex_trace(posted[0]) == hex_trace(request) == placed["event"]["traceId"]
    headers = next(h for event_id, h, _ in receiver.confirmed if event_id == placed["event"]["id"])
    assert headers["traceparent"][:-3] == f"00-{hex_trace(request)}-{posted[0].context.span_id:016x}"
    # an event appended untraced (the seed's) is delivered in a trace of its own
    seeded = [s for s in spans.get_finished_spans() if s.name == "webhook POST" and s is not posted[0]]
    assert seeded and all(s.parent is None for s in seeded)


async def test_tracing_off_makes_no_spans_and_stores_nothing(database_url: str) -> None:
    assert traces.TRACER is None
    exporter = InMemorySpanExporter()  # never installed: proves nothing reaches a provider
    async with server(database_url) as (_, http, customer_id):
        for _ in range(2):
            placed = (await data(http, PLACE, input={
                "customerId": customer_id, "currency": "EUR", "items": []}))["placeOrder"]
            assert placed["event"]["traceId"] is None
            assert (await data(http, RECENT))["orders"]["nodes"]
        response = await http.post("/graphql", json={"query": RECENT}, headers={"traceparent": TRACEPARENT})
        assert response.status_code == 200 and "traceparent" not in response.headers
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        assert await pool.fetchval("select count(*) from order_events where trace_parent is not null") == 0
    finally:
        await pool.close()
    assert exporter.get_finished_spans() == ()


def test_tracing_is_off_unless_an_exporter_is_named() -> None:
    assert traces.wanted({}) is None
    assert traces.wanted({"OTEL_SERVICE_NAME": "x"}) is None
    assert traces.wanted({"OTEL_TRACES_EXPORTER": "otlp"}) == "otlp"
    assert traces.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}) == "otlp"
    assert traces.wanted({"OTEL_TRACES_EXPORTER": "none",
                          "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}) is None
    assert traces.wanted({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}) is None
    for name, value in (("OTEL_TRACES_EXPORTER", "zipkin"), ("OTEL_TRACES_SAMPLER", "sometimes"),
                        ("OTEL_TRACES_SAMPLER_ARG", "2")):
        with pytest.raises(ConfigurationError, match=name):
            traces.wanted({"OTEL_TRACES_EXPORTER": "otlp", name: value})
    assert Settings(database_url="postgresql://x/y")  # tracing is no ORDERGRAPH_* setting


def test_log_lines_carry_the_trace_inside_a_span(spans: InMemorySpanExporter,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(database_url="", log_format="json"))
    try:
        logging.getLogger("ordergraph.test").warning("outside")
        assert traces.TRACER is not None
        with traces.TRACER.start_as_current_span("inside") as span:
            logging.getLogger("ordergraph.test").warning("inside")
            structlog.get_logger("ordergraph.test").warning("inside, structlog")
        lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    finally:
        _restore()
    context = span.get_span_context()
    assert [(line["event"], line.get("trace_id"), line.get("span_id")) for line in lines] == [
        ("outside", None, None),
        ("inside", f"{context.trace_id:032x}", f"{context.span_id:016x}"),
        ("inside, structlog", f"{context.trace_id:032x}", f"{context.span_id:016x}")]


def test_a_nats_message_carries_the_publishing_spans_traceparent(spans: InMemorySpanExporter) -> None:
    event = OutEvent(Position(1, 2), uuid.uuid4(), uuid.uuid4(), 1, "OrderPlaced", None, None, b"{}",
                     f"00-{CALLER_TRACE}-{CALLER_SPAN}-01")
    assert "traceparent" not in jetstream.headers(event)  # outside a span: nothing to continue
    with traces.continuing("publish ORDERS", event.trace_parent) as span:
        found = jetstream.headers(event)
    context = span.get_span_context()
    assert f"{context.trace_id:032x}" == CALLER_TRACE  # the appending request's trace, continued
    assert found["traceparent"] == f"00-{CALLER_TRACE}-{context.span_id:016x}-01"
    assert found["Nats-Msg-Id"] == str(event.event_id)
