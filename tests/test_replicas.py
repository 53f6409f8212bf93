"""The read router without a fleet: position tokens, the settings, and a server with no replica."""

from __future__ import annotations

import httpx
import pytest

from gql.config import settings_from_env
from gql.errors import ConfigurationError
from gql.store.replicas import format_position, parse_position
from tests.test_cli import _one_clean_line, run


@pytest.mark.parametrize("text", ["0/0", "0/16B3748", "1A/FF", "FFFFFFFF/FFFFFFFF"])
def test_replicas_a_position_token_reads_back_as_it_was_written(text: str) -> None:
    assert format_position(parse_position(text)) == text


def test_replicas_position_tokens_order_as_the_wal_does() -> None:
    assert parse_position("0/FFFFFFFF") < parse_position("1/0") < parse_position("1/10")


@pytest.mark.parametrize("text", ["", "16B3748", "0/", "/1", "0/xyz", "123456789/0", "0/1/2"])
def test_replicas_a_malformed_token_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_position(text)


def test_replicas_urls_are_separated_by_spaces_or_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERGRAPH_REPLICA_URLS", "postgresql://r1/db, postgresql://r2/db")
    assert settings_from_env("postgresql://p/db").replica_list == [
        "postgresql://r1/db", "postgresql://r2/db"]


@pytest.mark.parametrize(("variable", "value"), [
    ("ORDERGRAPH_REPLICA_URLS", "mysql://r/db"), ("ORDERGRAPH_REPLICA_URLS", "postgresql://r"),
    ("ORDERGRAPH_REPLICA_WAIT", "-1"), ("ORDERGRAPH_REPLICA_WAIT", "61"),
    ("ORDERGRAPH_REPLICA_MAX_LAG", "0"), ("ORDERGRAPH_REPLICA_CHECK_INTERVAL", "0")])
def test_replicas_settings_refuse_a_bad_value_naming_its_variable(
        monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=f"^{variable}"):
        settings_from_env("postgresql://p/db")


def test_replicas_serve_with_a_bad_replica_url_is_one_line_before_the_banner() -> None:
    result = run("serve", "--database-url", "postgresql://127.0.0.1:1/x",
                 "--replica-url", "postgresql://127.0.0.1:2")
    assert result.returncode == 1 and result.stdout == ""
    line = _one_clean_line(result.stderr)
    assert "ORDERGRAPH_REPLICA_URLS" in line and "names no database" in line


async def test_replicas_none_configured_the_primary_serves_and_writes_need_no_token(
        client: httpx.AsyncClient) -> None:
    """Without a replica every read sees every write: a mutation answers without a token (and
    reads none), and a read that sends one from elsewhere is answered by the primary."""
    register = """mutation { registerCustomer(input: {name: "Ada", email: "ada@example.com"}) { id } }"""
    wrote = await client.post("/graphql", json={"query": register})
    assert "extensions" not in wrote.json() and "x-ordergraph-position" not in wrote.headers
    assert wrote.headers["x-ordergraph-served-by"] == "primary"
    for _ in range(2):  # through the resolvers, then compiled
        read = await client.post("/graphql", json={"query": "{ orders(first: 1) { totalCount } }"},
                                 headers={"X-Ordergraph-Position": "0/16B3748"})
        assert read.status_code == 200 and "errors" not in read.json()
        assert read.headers["x-ordergraph-served-by"] == "primary"
    refused = await client.get("/graphql", params={"query": "{ __typename }"},
                               headers={"X-Ordergraph-Position": "soon"})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
