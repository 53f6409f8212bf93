"""Rate limits per caller: requests and estimated cost per time window, with `limits`.

A caller is its token's subject, or its client address when it has no token (open mode).
Counts are kept in memory (one server) or in Redis (`ORDERGRAPH_RATE_LIMIT_REDIS`), where a
fleet of servers shares them. Windows are fixed: a budget of "100/minute" is 100 requests in
each minute of the clock, and a refused caller is told when the window ends (Retry-After).
When Redis cannot be reached the request goes through and a warning is logged: the limits
protect the service, they must not take it down.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string

from gql.config import Settings
from gql.errors import ConfigurationError, RateLimited

log = logging.getLogger("ordergraph.ratelimits")
_WARN_EVERY = 60.0  # seconds between two warnings that the storage is unreachable
_CALLERS_KEPT = 10_000  # callers whose storage keys are remembered


def _budget(name: str, value: str) -> RateLimitItem | None:
    if not value.strip():
        return None
    try:
        return parse(value)
    except ValueError:
        raise ConfigurationError(f"ORDERGRAPH_{name.upper()} must be a budget such as 100/minute "
                                 f"or 5000 per 10 seconds, not {value!r}") from None


def storage_of(settings: Settings) -> Storage:
    """Memory, or the Redis server the settings name."""
    url = settings.rate_limit_redis.strip()
    if not url:
        return MemoryStorage()
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(f"ORDERGRAPH_RATE_LIMIT_REDIS must be a redis:// URL, not {url!r}")
    prefix = settings.rate_limit_prefix.strip() or "ordergraph"
    storage = storage_from_string(f"async+{url}", key_prefix=prefix)
    if not isinstance(storage, Storage):  # pragma: no cover - limits maps async+ to aio storage
        raise ConfigurationError("ORDERGRAPH_RATE_LIMIT_REDIS: not an asynchronous storage")
    return storage


class Coalescer:
    """Increments of one counter that arrive while its previous increment is on its way go to
    the storage together, as one: the counter ends as it would after one increment each, and
    each caller learns the value just after its own share, as if it had been sent alone. Under
    load this spares a Redis round trip (and its client's CPU) per request."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._waiting: dict[str, list[tuple[int, asyncio.Future[int]]]] = {}
        self._sending: dict[str, asyncio.Task[None]] = {}

    async def incr(self, key: str, expiry: int, amount: int) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append((amount, future))
        if key not in self._sending:
            self._sending[key] = asyncio.create_task(self._send(key, expiry))
        return await future

    async def _send(self, key: str, expiry: int) -> None:
        try:
            while batch := self._waiting.pop(key, None):
                total = sum(amount for amount, _ in batch)
                try:
                    counter = await self.storage.incr(key, expiry, amount=total)
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                value = counter - total
                for amount, future in batch:
                    value += amount
                    if not future.done():  # a caller that left (cancelled) still counted
                        future.set_result(value)
        finally:
            del self._sending[key]


class RateLimits:
    """The budgets of the settings and the counts that spend them."""

    def __init__(self, settings: Settings) -> None:
        self.requests = _budget("rate_limit_requests", settings.rate_limit_requests)
        self.cost = _budget("rate_limit_cost", settings.rate_limit_cost)
        self.limiter = FixedWindowRateLimiter(storage_of(settings))
        storage = self.limiter.storage
        # memory answers at once: coalescing would only add its task and futures
        self._count = storage.incr if isinstance(storage, MemoryStorage) else Coalescer(storage).incr
        self._warned = 0.0
        # each caller's counters: (budget, key in the storage, its name for Retry-After's
        # look-up), worked out once per caller, not per request
        self._keys: dict[str, list[tuple[RateLimitItem, str, str]]] = {}

    def _counters(self, caller: str) -> list[tuple[RateLimitItem, str, str]]:
        found = self._keys.get(caller)
        if found is None:
            if len(self._keys) >= _CALLERS_KEPT:
                self._keys.clear()
            key = hashlib.blake2b(caller.encode(), digest_size=12).hexdigest()  # no subject in Redis
            found = self._keys[caller] = [
                (budget, budget.key_for(what, key), key) for budget, what in (
                    (self.requests, "requests"), (self.cost, "cost")) if budget is not None]
        return found

    @classmethod
    def configured(cls, settings: Settings) -> RateLimits | None:
        """None when the settings set no budget (rate limits are off)."""
        limits = cls(settings)
        return limits if limits.requests or limits.cost else None

    async def charge(self, caller: str, cost: int) -> None:
        """Counts one request of `cost` for `caller`; RATE_LIMITED once a budget is spent."""
        try:
            for budget, stored, key in self._counters(caller):  # as FixedWindowRateLimiter.hit
                what = "requests" if budget is self.requests else "cost"
                spent = 1 if what == "requests" else cost
                if spent <= 0:
                    continue
                counter = await self._count(stored, budget.get_expiry(), spent)
                if counter > budget.amount:
                    stats = await self.limiter.get_window_stats(budget, what, key)
                    wait = max(1, math.ceil(stats.reset_time - time.time()))
                    raise RateLimited(f"too many {'requests' if what == 'requests' else 'fields'}: "
                                      f"the budget is {budget}; try again in {wait} s", wait)
        except RateLimited:
            raise
        except Exception as exc:  # the storage is away: serve, and say so now and then
            now = time.monotonic()
            if now - self._warned > _WARN_EVERY:
                self._warned = now
                log.warning("rate limits not enforced: their storage failed (%s)", exc)
