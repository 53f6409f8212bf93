"""Structured logs of a real `ordergraph serve`: JSON lines, one per request when asked, with
its id, operation, caller, status, code and duration; never a token or an e-mail address."""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from gql.config import Settings
from gql.logs import configure_logging, scrub
from tests.processes import free_port, serve_process
from tests.ws import client, until_subscribed

ROOT = Path(__file__).resolve().parents[1]
SECRET = "a-test-secret-that-is-long-enough-for-hs256"
REGISTER = """mutation Register($input: RegisterCustomerInput!) {
  registerCustomer(input: $input) { id name email } }"""


def _token(subject: str, role: str = "admin") -> str:
    return jwt.encode({"role": role, "sub": subject, "exp": int(time.time()) + 300}, SECRET,
                      algorithm="HS256")


@contextlib.asynccontextmanager
async def _server(database_url: str, log: Path) -> AsyncIterator[str]:
    """`ordergraph serve` logging requests, its standard error into `log` (not a terminal)."""
    port = free_port()
    env = {"ORDERGRAPH_LOG_REQUESTS": "1", "ORDERGRAPH_JWT_SECRET": SECRET}
    with log.open("wb") as err:
        async with serve_process(database_url, port, env, stderr=err):
            yield f"http://127.0.0.1:{port}"


async def test_logs_are_json_lines_without_tokens_or_emails(database_url: str, tmp_path: Path) -> None:
    admin = _token("ops.lead@example.com")
    forged = admin[:-4] + "AAAA"
    email = f"grace.{uuid.uuid4().hex[:6]}@example.com"
    log = tmp_path / "serve.log"
    async with _server(database_url, log) as url, httpx.AsyncClient(base_url=url, timeout=15) as http:
        auth = {"Authorization": f"Bearer {admin}"}
        registered = await http.post("/graphql", headers={**auth, "X-Request-ID": "req-42"}, json={
            "query": REGISTER, "variables": {"input": {"name": "Grace Hopper", "email": email}}})
        customer_id = registered.json()["data"]["registerCustomer"]["id"]
        read = await http.post("/graphql", headers=auth, json={
            "query": "query Who($id: UUID!) { customer(id: $id) { email } }",
            "variables": {"id": customer_id}})
        refused = await http.post("/graphql", headers={"Authorization": f"Bearer {forged}"},
                                  json={"query": "{ __typename }"})
        invalid = await http.post("/graphql", headers=auth, json={
            "query": f'{{ customer(id: "{email}") {{ id }} }}'})
        ws_url = url.replace("http://", "ws://") + "/graphql"
        async with client(ws_url, payload={"Authorization": f"Bearer {admin}"}) as ws:
            await ws.subscribe("subscription Live { orderEvents { id } }")
            await until_subscribed(url, 1)
    assert registered.headers["x-request-id"] == "req-42"
    assert read.json()["data"]["customer"]["email"] == email
    assert refused.status_code == 401
    assert invalid.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # each one JSON
    for secret in (admin, forged, email, "ops.lead@example.com", "@example.com"):
        assert secret not in text
    requests = [line for line in lines if line.get("event") == "request"]
    by_id = {line["request_id"]: line for line in requests}
    first = by_id["req-42"]
    assert first["operation"] == "Register" and first["role"] == "admin" and first["status"] == 200
    assert first["subject"].startswith("sha256:") and first["code"] is None
    assert first["level"] == "info" and isinstance(first["duration_ms"], float)
    assert {(r["status"], r["code"]) for r in requests if r["path"] == "/graphql"} >= {
        (200, None), (401, "UNAUTHENTICATED"), (200, "BAD_USER_INPUT")}
    live = next(line for line in lines if line.get("event") == "subscribe")
    assert (live["operation"], live["role"], live["code"]) == ("Live", "admin", None)
    assert live["subject"] == first["subject"]
    who = next(r for r in requests if r.get("operation") == "Who")
    assert who["request_id"] == read.headers["x-request-id"] and len(who["request_id"]) == 32


def test_logs_scrub_removes_emails_and_tokens() -> None:
    token = _token("x")
    assert scrub(f"mail ada@example.org with {token}!") == "mail <email> with <token>!"


def test_logs_console_format_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    """A readable line, not JSON, when the console format is asked for (a terminal's default)."""
    configure_logging(Settings(database_url="", log_format="console"))
    try:
        logging.getLogger("ordergraph.test").warning("listener lost for %s", "ada@example.org")
        err = capsys.readouterr().err
    finally:
        _restore()
    assert "listener lost for <email>" in err and "warning" in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.strip().splitlines()[-1])


def _restore() -> None:
    """Gives the test process its plain logging back."""
    import structlog

    root: Any = logging.getLogger()
    root.handlers[:] = []
    root.setLevel(logging.WARNING)
    structlog.reset_defaults()
