"""`ordergraph serve` as its own process, for tests that kill it, read its log or run two."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from typing import IO

import httpx

from gql.store.connection import APP_ROLE, as_role
from tests.test_cli import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def serve_process(database_url: str, port: int, env: dict[str, str] | None = None,
                        stderr: IO[bytes] | int = asyncio.subprocess.DEVNULL,
                        ) -> AsyncIterator[asyncio.subprocess.Process]:
    """The server on `port` as the app's role, with `env` added, once /readyz says ready;
    terminated after the block unless the test already ended it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gql", "serve", "--port", str(port),
        "--database-url", as_role(database_url, APP_ROLE), cwd=ROOT,
        env={**os.environ, **(env or {})}, stdout=asyncio.subprocess.DEVNULL, stderr=stderr)
    try:
        async with httpx.AsyncClient(timeout=1) as http:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        break
                assert process.returncode is None, "serve exited"
                assert time.monotonic() < deadline, "serve did not come up"
                await asyncio.sleep(0.1)
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 15)
