"""The HTTP connection: read deadlines for headers and bodies, and a cap on open connections."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx

from tests.conftest import LiveServer, serving

QUICK = {"header_timeout": 0.5, "body_timeout": 0.8}


@contextlib.asynccontextmanager
async def raw(server: LiveServer) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    parts = urlsplit(server.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _answer_and_close(reader: asyncio.StreamReader, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started = time.monotonic()
    async with asyncio.timeout(within):
        data = await reader.read()  # until EOF
    return data, time.monotonic() - started


async def test_headers_that_never_end_are_answered_408_and_closed(database_url: str) -> None:
    async with serving(database_url, **QUICK) as server, raw(server) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        await writer.drain()
        data, took = await _answer_and_close(reader, 5)
    assert data.startswith(b"HTTP/1.1 408 ") and b"BAD_REQUEST" in data
    assert 0.4 < took < 2


async def test_a_connection_that_sends_nothing_is_closed(database_url: str) -> None:
    async with serving(database_url, **QUICK) as server:
        sockets = [await asyncio.open_connection(*urlsplit(server.url).netloc.split(":"))
                   for _ in range(200)]
        started = time.monotonic()
        for reader, writer in sockets:
            await _answer_and_close(reader, 5)
            writer.close()
        assert time.monotonic() - started < 3  # all of them, at their deadline


async def test_a_body_sent_a_byte_at_a_time_is_cut_at_its_deadline(database_url: str) -> None:
    async with serving(database_url, **QUICK) as server, raw(server) as (reader, writer):
        writer.write(b"POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 200\r\n\r\n")
        started = time.monotonic()

        async def trickle() -> None:
            with contextlib.suppress(OSError):
                for byte in b'{"query": "{ __typename }"}':
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.1)

        trickling = asyncio.create_task(trickle())
        data, _ = await _answer_and_close(reader, 5)
        trickling.cancel()
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert time.monotonic() - started < 2


async def test_oversized_headers_are_431(database_url: str) -> None:
    async with serving(database_url, max_header_bytes=4096) as server, raw(server) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + b"X-Big: " + b"a" * 8000)
        await writer.drain()
        data, _ = await _answer_and_close(reader, 5)
    assert data.startswith(b"HTTP/1.1 431 ")


async def test_keep_alive_requests_still_work(database_url: str) -> None:
    async with serving(database_url, **QUICK) as server, \
            httpx.AsyncClient(base_url=server.url) as http:
        for _ in range(3):  # one connection, requests apart by more than nothing
            assert (await http.get("/healthz")).status_code == 200
            await asyncio.sleep(0.2)
        body = {"query": "{ __typename }"}
        assert (await http.post("/graphql", json=body)).json() == {"data": {"__typename": "Query"}}


async def test_connections_beyond_the_cap_get_503_and_the_rest_are_served(database_url: str) -> None:
    async with serving(database_url, max_connections=20, header_timeout=10) as server:
        host, port = urlsplit(server.url).netloc.split(":")
        held = [await asyncio.open_connection(host, port) for _ in range(20)]
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data, _ = await _answer_and_close(reader, 5)
        writer.close()
        assert data.startswith(b"HTTP/1.1 503 "), data
        assert b"retry-after: 1" in data and b"SERVICE_UNAVAILABLE" in data
        for _, w in held:
            w.close()
        await asyncio.sleep(0.3)
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/healthz")).status_code == 200
