"""Settings are checked at start: one line naming the variable, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gql.config import Settings, settings_from_env
from gql.errors import ConfigurationError
from tests.test_cli import _one_clean_line, run

BAD = [
    ("ORDERGRAPH_REQUEST_TIMEOUT", "-1"), ("ORDERGRAPH_REQUEST_TIMEOUT", "nan"),
    ("ORDERGRAPH_REQUEST_TIMEOUT", "inf"), ("ORDERGRAPH_REQUEST_TIMEOUT", "0"),
    ("ORDERGRAPH_POOL_SIZE", "0"), ("ORDERGRAPH_MAX_BODY_BYTES", "-5"),
    ("ORDERGRAPH_MAX_COST", "-1"), ("ORDERGRAPH_MAX_PAGE_SIZE", "ten"),
    ("ORDERGRAPH_MAX_DEPTH", "1.5"), ("ORDERGRAPH_INTROSPECTION", "maybe"),
    ("ORDERGRAPH_JWT_LEEWAY", "-5"), ("ORDERGRAPH_KEEPALIVE_INTERVAL", "0"),
    ("ORDERGRAPH_MAX_CONNECTIONS", "0"), ("ORDERGRAPH_HEADER_TIMEOUT", "-1"),
    ("ORDERGRAPH_JWKS", "/nonexistent/jwks.json"),
]


@pytest.mark.parametrize(("variable", "value"), BAD)
def test_settings_refuse_a_bad_value_naming_its_variable(
        monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=f"^{variable}"):
        settings_from_env("postgresql://localhost/x")


@pytest.mark.parametrize(("variable", "value"), [BAD[0], BAD[1], BAD[4], BAD[5], BAD[9], BAD[14]])
def test_serve_with_a_bad_setting_is_one_line_before_the_banner(variable: str, value: str) -> None:
    result = run("serve", "--database-url", "postgresql://127.0.0.1:1/x", env={variable: value})
    assert result.returncode == 1
    assert result.stdout == ""  # no banner: nothing started
    assert variable in _one_clean_line(result.stderr)


def test_settings_accept_good_values(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "jwks.json").write_text('{"keys": []}')
    for variable, value in [("ORDERGRAPH_REQUEST_TIMEOUT", "2.5"), ("ORDERGRAPH_POOL_SIZE", "1"),
                            ("ORDERGRAPH_INTROSPECTION", "off"), ("ORDERGRAPH_JWT_LEEWAY", "0"),
                            ("ORDERGRAPH_JWKS", str(tmp_path / "jwks.json"))]:
        monkeypatch.setenv(variable, value)
    settings = settings_from_env("postgresql://localhost/x")
    assert (settings.request_timeout, settings.pool_max_size, settings.introspection) == (2.5, 1, False)
    assert settings.pool_min_size == 1  # never above the pool's size


def test_settings_made_in_code_are_checked_too() -> None:
    with pytest.raises(ConfigurationError, match="ORDERGRAPH_MAX_COST"):
        Settings(database_url="", max_cost=0)
