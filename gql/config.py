"""Settings: every knob has a flag and an environment variable (ORDERGRAPH_*)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Settings:
    database_url: str
    max_page_size: int = 100
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 5000
    max_body_bytes: int = 256 * 1024
    introspection: bool = True
    ide: bool = True
    pool_min_size: int = 2
    pool_max_size: int = 10
    max_subscriptions_per_connection: int = 100
    subscription_queue_size: int = 1000
    connection_init_timeout: float = 3.0
    keepalive_interval: float = 15.0
    safety_poll_interval: float = 1.0
    compiled_reads: bool = True  # the one-statement fast path for queries it knows


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("0", "false", "no", "off", "")


def settings_from_env(database_url: str) -> Settings:
    """Settings for `database_url` with the ORDERGRAPH_* switches of the environment."""
    defaults = Settings(database_url=database_url)
    return replace(
        defaults,
        introspection=_flag("ORDERGRAPH_INTROSPECTION", defaults.introspection),
        ide=_flag("ORDERGRAPH_IDE", defaults.ide),
        compiled_reads=_flag("ORDERGRAPH_COMPILED_READS", defaults.compiled_reads),
        max_page_size=int(os.environ.get("ORDERGRAPH_MAX_PAGE_SIZE", defaults.max_page_size)),
        max_depth=int(os.environ.get("ORDERGRAPH_MAX_DEPTH", defaults.max_depth)),
        pool_max_size=int(os.environ.get("ORDERGRAPH_POOL_SIZE", defaults.pool_max_size)),
    )
