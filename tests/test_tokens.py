"""Development tokens and the key that signs them: kept in the data directory, owner only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gql.config import Settings
from gql.errors import ConfigurationError
from gql.http.app import create_app
from gql.tokens import Verifier, dev_key_path, mint
from tests import factories
from tests.test_cli import _one_clean_line, run


def _plant_key(path: Path, mode: int, owner: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(mode)
    if owner is not None:
        os.chown(path, owner, owner)


def test_token_key_is_made_inside_the_data_directory_for_its_owner_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "x"
    minted = run("token", "--role", "admin", env={"ORDERGRAPH_DATA_DIR": str(data_dir)})
    assert minted.returncode == 0, minted.stderr
    key = data_dir / "token-key.pem"
    assert dev_key_path(data_dir) == key and key.is_file()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not (tmp_path / "token-key.pem").exists()  # nothing shared with sibling directories
    again = run("token", "--role", "admin", env={"ORDERGRAPH_DATA_DIR": str(tmp_path / "y")})
    assert (tmp_path / "y" / "token-key.pem").read_bytes() != key.read_bytes()
    assert again.returncode == 0


def test_token_key_others_can_read_is_refused_in_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "x"
    _plant_key(data_dir / "token-key.pem", 0o644)
    result = run("token", "--role", "admin", env={"ORDERGRAPH_DATA_DIR": str(data_dir)})
    assert result.returncode == 1 and result.stdout == ""
    assert "may be read by other users" in _one_clean_line(result.stderr)
    with pytest.raises(ConfigurationError, match="may be read by other users"):
        Verifier(Settings(database_url="", trust_dev_key=True), data_dir)


@pytest.mark.skipif(os.geteuid() != 0, reason="planting another user's file needs root")
def test_token_key_another_user_owns_is_refused_by_the_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "x"
    _plant_key(data_dir / "token-key.pem", 0o600, owner=65534)  # nobody's
    with pytest.raises(ConfigurationError, match="belongs to another user"):
        Verifier(Settings(database_url="", trust_dev_key=True), data_dir)
    result = run("serve", "--trust-dev-key", "--port", "1",
                 env={"ORDERGRAPH_DATA_DIR": str(data_dir), "DATABASE_URL": "postgresql://nowhere/x"})
    assert result.returncode == 1
    assert "belongs to another user" in _one_clean_line(result.stderr)


def test_token_key_behind_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    _plant_key(tmp_path / "elsewhere.pem", 0o600)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "token-key.pem").symlink_to(tmp_path / "elsewhere.pem")
    with pytest.raises(ConfigurationError, match="symbolic link"):
        Verifier(Settings(database_url="", trust_dev_key=True), tmp_path / "x")


SECRET = "a-secret-of-at-least-32-bytes-length"


@pytest.mark.parametrize("subject", ["ann\x00", "ann\nbob", "x" * 201, 42])
async def test_a_signed_token_whose_claims_are_not_text_is_unauthenticated(
        database_url: str, pool: asyncpg.Pool, subject: object) -> None:
    customer_id = await factories.customer(pool)
    before = await factories.snapshot(pool)
    token = mint(SECRET, {"role": "admin", "sub": subject}, 300, algorithm="HS256", kid=None)
    app = create_app(Settings(database_url=database_url, jwt_secret=SECRET), pool=pool)
    mutation = ('mutation { placeOrder(input: { customerId: "%s", currency: "EUR", items: [] }) '
                "{ order { id } } }" % customer_id)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://localhost") as http:
        response = await http.post("/graphql", json={"query": mutation},
                                   headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await factories.snapshot(pool) == before


@pytest.mark.parametrize("ttl", ["99999999999d", "366d", "9000h", "0m", "15x", "\u0661\u0665m"])
def test_token_ttl_is_a_duration_of_at_most_a_year(tmp_path: Path, ttl: str) -> None:
    result = run("token", "--role", "admin", "--ttl", ttl,
                 env={"ORDERGRAPH_DATA_DIR": str(tmp_path / "x")})
    assert result.returncode == 2 and result.stdout == ""
    assert "--ttl" in _one_clean_line(result.stderr)


def test_token_ttl_of_a_year_is_accepted(tmp_path: Path) -> None:
    result = run("token", "--role", "admin", "--ttl", "365d",
                 env={"ORDERGRAPH_DATA_DIR": str(tmp_path / "x")})
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 365 * 86_400
