"""Settings: every knob has a flag and an environment variable (ORDERGRAPH_*), checked at start."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

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
    header_timeout: float = 10.0  # seconds from a connection's (or request's) first byte to its headers
    body_timeout: float = 10.0  # seconds from a request's headers to the end of its body
    max_header_bytes: int = 64 * 1024  # a request line and its headers together
    max_connections: int = 1000  # open HTTP and WebSocket connections per process
    allowed_hosts: str = ""  # comma-separated Host names; empty: loopback names only
    allowed_origins: str = ""  # comma-separated browser origins besides the server's own
    introspection: bool = True
    ide: bool = True
    pool_min_size: int = 2
    pool_max_size: int = 10
    max_subscriptions_per_connection: int = 100
    subscription_queue_size: int = 1000
    connection_init_timeout: float = 3.0  # both WebSocket subprotocols
    keepalive_interval: float = 15.0
    safety_poll_interval: float = 1.0
    tally_interval: float = 10.0  # seconds between foldings of the tallies behind counts
    demo_rate: float = 0.0  # new orders a second the demo shop places (serve --demo); 0: none
    compiled_reads: bool = True  # compiled statements for the queries and appends it knows
    # streaming replicas that answer reads (README, "Running a fleet"): URLs separated by
    # spaces or commas; writes and the live hub stay on the primary
    replica_urls: str = ""
    replica_wait: float = 0.5  # seconds a read with a position token waits for a replica
    replica_max_lag: float = 5.0  # seconds behind the primary before a replica leaves the rotation
    replica_check_interval: float = 0.5  # seconds between measurements of each replica's lag
    # identity and access (README, "Security"); no keys at all: open mode, loopback only
    jwks: str = ""  # a JWKS file or http(s) URL; keys found by `kid`
    jwt_secret: str = ""  # an HS256 secret, for simple setups
    jwt_issuer: str = ""  # the `iss` tokens must carry, when set
    jwt_audience: str = ""  # the `aud` tokens must carry, when set
    jwt_leeway: float = 5.0  # seconds of clock skew allowed on exp (and when sockets close)
    trust_dev_key: bool = False  # accept tokens minted by `ordergraph token`
    insecure_open: bool = False  # open mode (everyone admin) also for non-loopback clients
    metrics_token: str = ""  # when set, /metrics needs `Authorization: Bearer <it>`
    # relays run beside the server (README, "Streaming out"): a NATS JetStream relay when a
    # stream is named, a webhook relay when a URL is; each a durable consumer of that name
    relay_nats_stream: str = ""
    relay_nats_url: str = "nats://127.0.0.1:4222"
    relay_nats_subject: str = "orders.{type}"
    relay_nats_consumer: str = "nats"
    relay_nats_types: str = ""  # comma-separated EventType names; empty: every type
    webhook_url: str = ""
    webhook_secret: str = ""  # whsec_…
    webhook_consumer: str = "webhook"
    webhook_types: str = ""
    webhook_max_attempts: int = 8
    webhook_backoff: float = 1.0  # seconds before the first retry, doubled after each failure
    webhook_max_backoff: float = 300.0
    webhook_on_failure: str = "park"  # or "stop"
    # logs (README, "Observing and controlling it")
    log_format: str = "auto"  # json, console, or auto: console on a terminal, else JSON lines
    log_level: str = "info"
    log_requests: bool = False  # one line per HTTP request at INFO
    # trusted documents: a directory of .graphql files, each known by the sha256 of its text
    documents: str = ""
    trusted_documents_only: bool = False  # refuse every other document …
    trusted_documents_roles: str = ""  # … except from these roles (comma-separated), e.g. admin
    # rate limits per caller (token subject, else client address), e.g. "100/minute"; empty: none
    rate_limit_requests: str = ""
    rate_limit_cost: str = ""  # of estimated cost (as ORDERGRAPH_MAX_COST counts it) per window
    rate_limit_redis: str = ""  # redis://host:port/db: a fleet shares the counts; empty: memory
    rate_limit_prefix: str = "ordergraph"  # the Redis keys' prefix

    @property
    def replica_list(self) -> list[str]:
        return self.replica_urls.replace(",", " ").split()

    def __post_init__(self) -> None:
        for name, (low, high) in _RANGES.items():
            _check_range(name, getattr(self, name), low, high)
        for name, allowed in _CHOICES.items():
            given = getattr(self, name)
            if given.strip().lower() not in allowed:
                raise ConfigurationError(f"{variable(name)} must be one of {', '.join(allowed)}, "
                                         f"not {given!r}")
            object.__setattr__(self, name, given.strip().lower())
        if self.pool_min_size > self.pool_max_size:  # a smaller pool keeps fewer idle
            object.__setattr__(self, "pool_min_size", self.pool_max_size)


_CHOICES = {"log_format": ("auto", "json", "console"),
            "log_level": ("debug", "info", "warning", "error")}
_DAY = 86_400.0
# (lowest, highest) of each number
_RANGES: dict[str, tuple[float, float]] = {
    "max_page_size": (1, 10_000),
    "max_depth": (1, 1_000),
    "max_aliases": (1, 100_000),
    "max_tokens": (1, 10_000_000),
    "max_body_bytes": (1_024, 1 << 30),
    "max_cost": (1, 10**15),
    "request_timeout": (0, _DAY),
    "header_timeout": (0, _DAY),
    "body_timeout": (0, _DAY),
    "max_header_bytes": (1_024, 1 << 24),
    "max_connections": (1, 1_000_000),
    "pool_min_size": (0, 1_000),
    "pool_max_size": (1, 1_000),
    "max_subscriptions_per_connection": (1, 1_000_000),
    "subscription_queue_size": (1, 10_000_000),
    "connection_init_timeout": (0, _DAY),
    "keepalive_interval": (0, _DAY),
    "safety_poll_interval": (0, _DAY),
    "jwt_leeway": (0, _DAY),
    "tally_interval": (0, _DAY),
    "demo_rate": (0, 100),
    "replica_wait": (0, 60),
    "replica_max_lag": (0, _DAY),
    "replica_check_interval": (0, 3_600),
}
# durations that must be above their lowest value, not equal to it
_ABOVE = frozenset({"request_timeout", "header_timeout", "body_timeout", "connection_init_timeout",
                    "keepalive_interval", "safety_poll_interval", "tally_interval",
                    "replica_max_lag", "replica_check_interval"})
_ALIASES = {"pool_max_size": "ORDERGRAPH_POOL_SIZE"}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def variable(name: str) -> str:
    """The environment variable of setting `name`."""
    return _ALIASES.get(name, f"ORDERGRAPH_{name.upper()}")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, float):
        above = name in _ABOVE
        wanted = f"a number of seconds {'above' if above else 'from'} {low:g} up to {high:g}"
        fits = math.isfinite(value) and (value > low if above else value >= low) and value <= high
    else:
        wanted = f"a whole number from {low:,} up to {high:,}"
        fits = low <= value <= high
    if not fits:
        raise ConfigurationError(f"{variable(name)} must be {wanted}, not {value!r}")


def _from_env(name: str, default: bool | int | float | str) -> bool | int | float | str:
    key = variable(name)
    value = os.environ.get(key)
    if value is None or value.strip() == "":
        return default
    text = value.strip()
    if isinstance(default, bool):
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ConfigurationError(f"{key} must be one of {', '.join(_TRUE + _FALSE)}, not {value!r}")
    if isinstance(default, str):
        return value
    try:
        return type(default)(text)
    except ValueError:
        kind = "a whole number" if isinstance(default, int) else "a number"
        raise ConfigurationError(f"{key} must be {kind}, not {value!r}") from None


def _check_files(settings: Settings) -> None:
    """Files a setting names must exist and hold what it says, before anything starts."""
    jwks = settings.jwks
    if jwks and not jwks.startswith(("https://", "http://")):
        try:
            keys = json.loads(Path(jwks).read_text())
        except OSError as exc:
            raise ConfigurationError(f"ORDERGRAPH_JWKS: cannot read {jwks} ({exc.strerror})") from None
        except ValueError:
            raise ConfigurationError(f"ORDERGRAPH_JWKS: {jwks} is not JSON") from None
        if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
            raise ConfigurationError(f'ORDERGRAPH_JWKS: {jwks} is not a JWKS ({{"keys": [...]}})')


def _check_replicas(settings: Settings) -> None:
    """Each replica URL names a database, as the primary's must."""
    from gql.store.connection import target

    for url in settings.replica_list:
        try:
            target(url)
        except ConfigurationError as exc:
            raise ConfigurationError(f"ORDERGRAPH_REPLICA_URLS: {exc}") from None


def settings_from_env(database_url: str) -> Settings:
    """Settings for `database_url`; every knob X can be set as ORDERGRAPH_X. A value out of
    its range, of the wrong type, or a file that is not there is one ConfigurationError
    naming the variable."""
    defaults = Settings(database_url=database_url)
    settings = replace(defaults, **{
        f.name: _from_env(f.name, getattr(defaults, f.name))
        for f in fields(Settings) if f.name != "database_url"
    })
    _check_files(settings)
    _check_replicas(settings)
    return settings
