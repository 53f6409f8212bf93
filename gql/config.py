"""Settings: every knob has a flag and an environment variable (ORDERGRAPH_*)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

from gql.errors import ConfigurationError


@dataclass(frozen=True)
class Settings:
    database_url: str
    max_page_size: int = 100
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 5000
    max_body_bytes: int = 256 * 1024  # also the largest WebSocket message
    max_cost: int = 100_000  # estimated fields per operation (README, "Limits")
    request_timeout: float = 10.0  # seconds a request (and each SQL statement) may take
    allowed_hosts: str = ""  # comma-separated Host names; empty: loopback names only
    allowed_origins: str = ""  # comma-separated browser origins besides the server's own
    introspection: bool = True
    ide: bool = True
    pool_min_size: int = 2
    pool_max_size: int = 10
    max_subscriptions_per_connection: int = 100
    subscription_queue_size: int = 1000
    connection_init_timeout: float = 3.0
    keepalive_interval: float = 15.0
    safety_poll_interval: float = 1.0
    compiled_reads: bool = True  # compiled statements for the queries and appends it knows
    # identity and access (README, "Security"); no keys at all: open mode, loopback only
    jwks: str = ""  # a JWKS file or http(s) URL; keys found by `kid`
    jwt_secret: str = ""  # an HS256 secret, for simple setups
    jwt_issuer: str = ""  # the `iss` tokens must carry, when set
    jwt_audience: str = ""  # the `aud` tokens must carry, when set
    jwt_leeway: float = 5.0  # seconds of clock skew allowed on exp (and when sockets close)
    trust_dev_key: bool = False  # accept tokens minted by `ordergraph token`
    insecure_open: bool = False  # open mode (everyone admin) also for non-loopback clients
    metrics_token: str = ""  # when set, /metrics needs `Authorization: Bearer <it>`


_ALIASES = {"pool_max_size": "ORDERGRAPH_POOL_SIZE"}


def _from_env(name: str, default: bool | int | float | str) -> bool | int | float | str:
    variable = _ALIASES.get(name, f"ORDERGRAPH_{name.upper()}")
    value = os.environ.get(variable)
    if value is None or value.strip() == "":
        return default
    if isinstance(default, bool):
        return value.strip().lower() not in ("0", "false", "no", "off")
    try:
        return type(default)(value)
    except ValueError:
        kind = "a whole number" if isinstance(default, int) else "a number"
        raise ConfigurationError(f"{variable} must be {kind}, not {value!r}") from None


def settings_from_env(database_url: str) -> Settings:
    """Settings for `database_url`; every knob X can be set as ORDERGRAPH_X."""
    defaults = Settings(database_url=database_url)
    return replace(defaults, **{
        f.name: _from_env(f.name, getattr(defaults, f.name))
        for f in fields(Settings) if f.name != "database_url"
    })
